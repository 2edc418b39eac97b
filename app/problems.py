"""RFC 9457 problem+json for every error, with a stable ``code``; never a trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from portcullis.errors import DependencyUnavailable, DomainError

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"

# Default code for each status the API answers; views raise Problem for specific ones.
STATUS_CODES = {
    400: ("validation_error", "Bad request"),
    401: ("not_authenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
    503: ("dependency_unavailable", "Service unavailable"),
}


class Problem(Exception):
    """Raise from a view to answer with a problem document."""

    def __init__(self, status: int, code: str | None = None, detail: str | None = None,
                 *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, title: str | None = None) -> None:
        default_code, default_title = STATUS_CODES.get(status, ("error", "Error"))
        self.status = status
        self.code = code or default_code
        self.title = title or default_title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        super().__init__(self.code)


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:portcullis:problem:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors is not None:
        body["errors"] = problem.errors
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=problem.status, mimetype=PROBLEM_MIME)
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def validation_problem(exc: ValidationError, location: str) -> Problem:
    errors = [
        {"loc": [location, *[str(p) for p in err["loc"]]], "msg": err["msg"]}
        for err in exc.errors(include_input=False, include_url=False)
    ]
    return Problem(400, "validation_error", "The request is not valid.", errors=errors)


def _from_http(exc: HTTPException) -> Problem:
    status = exc.code or 500
    headers: dict[str, str] = {}
    valid_methods = getattr(exc, "valid_methods", None)  # MethodNotAllowed's
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    detail = {404: "No such resource.", 405: "Method not allowed on this resource.",
              413: "The request body is too large."}.get(status)
    return Problem(status, detail=detail, headers=headers)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return problem_response(_from_http(exc))

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        return problem_response(Problem(exc.status, exc.code, exc.detail or None))

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> Response:
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            log.warning("database unavailable: %s", type(exc.orig).__name__)
            return _dependency(DependencyUnavailable("database"))
        return _unexpected(exc)

    @app.errorhandler(DependencyUnavailable)
    def _dependency(exc: DependencyUnavailable) -> Response:
        log.warning("dependency unavailable: %s", exc.dependency)
        return problem_response(Problem(
            503, "dependency_unavailable", f"A required service ({exc.dependency}) is "
            "unavailable; try again shortly.", headers={"Retry-After": "5"}))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in request %s", getattr(g, "request_id", "-"))
        return problem_response(Problem(500, detail="An unexpected error occurred; quote the "
                                        "request_id when reporting it."))
