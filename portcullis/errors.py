"""Domain errors with stable codes; the front door maps each kind to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail


class Invalid(DomainError):
    status = 400


class Unauthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404

    def __init__(self, what: str = "resource") -> None:
        super().__init__("not_found", f"No such {what}.")


class Conflict(DomainError):
    status = 409


class Gone(DomainError):
    status = 410
