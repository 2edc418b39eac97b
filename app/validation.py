"""Request bodies and query strings parsed into pydantic models that forbid unknown fields.

Every hostile input is refused here, before any view or database sees it: JSON bodies are
capped in size (413) and nesting depth, and no string (body or query) may carry a NUL or a
lone surrogate, which PostgreSQL cannot store (it would answer a 500 DataError).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from flask import Flask, Request, request
from flask.json.provider import DefaultJSONProvider
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException

from app.problems import Problem, validation_problem
from portcullis.accounts.passwords import MAX_LENGTH as PASSWORD_MAX
from portcullis.accounts.passwords import MIN_LENGTH as PASSWORD_MIN

M = TypeVar("M", bound=BaseModel)

JSON_MAX_BYTES = 64 * 1024  # far above any real body; uploads (multipart) have their own cap
JSON_MAX_DEPTH = 32  # the deepest real body nests 3 levels
MULTIPART = "multipart/form-data"

def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text (no control or bidi characters)")
    return value


# Free text kept in audit events and exports (a label, a payment reference, a reason).
Printable = AfterValidator(_printable)

# An emailed token (verification, invitation, reset): secrets.token_urlsafe(32) or longer.
EmailToken = Annotated[str, Field(min_length=43, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")]
# A password being set: the policy answers ``weak_password`` (400) outside these lengths, so
# the model only caps the size and the document states the policy.
NewPassword = Annotated[str, Field(min_length=1, max_length=1024, json_schema_extra={
    "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX,
    "description": f"{PASSWORD_MIN} to {PASSWORD_MAX} characters, not a common password "
                   "(else 400 weak_password)."})]


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are a 400, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JSONTooDeep(ValueError):
    """The decoder ran out of stack: the body nests far deeper than any real one."""


class JSONProvider(DefaultJSONProvider):
    """Flask's provider, except that bodies are UTF-8 only (the contract; json.loads would
    guess UTF-16 or 32) and a too-deep document is a ValueError like any bad JSON (the C
    decoder raises RecursionError, which nothing would catch: a 500)."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s.decode("utf-8") if isinstance(s, bytes) else s, **kwargs)
        except RecursionError:
            raise JSONTooDeep("nested too deeply") from None


def _too_deep(location: str) -> Problem:
    return Problem(400, "validation_error", "The request is not valid.", errors=[
        {"loc": [location], "msg": f"Nested more than {JSON_MAX_DEPTH} levels deep"}])


class APIRequest(Request):
    """Every body but an upload is JSON, so it is capped far below the upload limit; a bad
    body is a problem whichever code reads it first (a view or a rate-limit key)."""

    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is None and self.mimetype != MULTIPART:
            return JSON_MAX_BYTES
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    def get_json(self, force: bool = False, silent: bool = False,
                 cache: bool = True) -> Any:
        """``silent`` also covers a body over the limit: a rate-limit key that peeks at the
        body must never raise (flask-limiter would take any error for a dead Redis and
        fall back to per-process limits); the view's own read still answers 413."""
        if not silent:
            return super().get_json(force=force, cache=cache)
        try:
            return super().get_json(force=force, silent=True, cache=cache)
        except HTTPException:
            return None

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise Problem(415, "unsupported_media_type", "Send a JSON body (application/json).")
        if isinstance(e, JSONTooDeep):
            raise _too_deep("body")
        raise Problem(400, "malformed_json", "The body is not valid JSON.")


def init_request_parsing(app: Flask) -> None:
    app.request_class = APIRequest
    app.json = JSONProvider(app)


def _string_error(value: str) -> str | None:
    if "\x00" in value:
        return "Must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Must be valid Unicode text (no lone surrogates)"
    return None


def refuse_hostile(data: Any, location: str) -> None:
    """400 for a value nested too deeply, or a string (key or value) PostgreSQL can't store.

    Iterative, so the walk itself cannot overflow the stack."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[str], int]] = [(data, [location], 0)]
    while stack and len(errors) < 10:
        value, loc, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise _too_deep(location)
        if isinstance(value, str):
            if (msg := _string_error(value)) is not None:
                errors.append({"loc": loc, "msg": msg})
        elif isinstance(value, dict):
            for key, item in value.items():
                if (msg := _string_error(key)) is not None:
                    errors.append({"loc": loc, "msg": f"A key {msg[0].lower()}{msg[1:]}"})
                    continue
                stack.append((item, [*loc, key], depth + 1))
        elif isinstance(value, list):
            stack.extend((item, [*loc, str(i)], depth + 1) for i, item in enumerate(value))
    if errors:
        raise Problem(400, "validation_error", "The request is not valid.", errors=errors)


def parse_body(model: type[M]) -> M:
    data: Any = request.get_json()  # 413, 415 and malformed JSON: APIRequest's problems
    if not isinstance(data, dict):
        raise Problem(400, "validation_error", "The body must be a JSON object.")
    refuse_hostile(data, "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "body") from None


def parse_query(model: type[M]) -> M:
    """Each parameter once; NUL-free (werkzeug already replaces undecodable bytes)."""
    args = request.args
    repeated = [{"loc": ["query", name], "msg": "Give this parameter once"}
                for name, values in args.lists() if len(values) > 1]
    if repeated:
        raise Problem(400, "validation_error", "The request is not valid.", errors=repeated)
    data = args.to_dict()
    refuse_hostile(data, "query")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None
