"""Request bodies and query strings parsed into pydantic models that forbid unknown fields."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, ValidationError

from app.problems import Problem, validation_problem

M = TypeVar("M", bound=BaseModel)


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are a 400, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def parse_body(model: type[M]) -> M:
    if not request.is_json:
        raise Problem(415, "unsupported_media_type", "Send a JSON body (application/json).")
    data: Any = request.get_json(silent=True)
    if data is None:
        raise Problem(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(data, dict):
        raise Problem(400, "validation_error", "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "body") from None


def parse_query(model: type[M]) -> M:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None
