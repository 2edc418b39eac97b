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


class DependencyUnavailable(Exception):
    """A dependency (database, Redis, S3, clamd, SMTP, SIEM, SFTPGo) cannot be reached in time.

    The front door maps it to 503 ``dependency_unavailable``; tasks retry it with backoff.
    Messages name the dependency, never a URL with credentials.
    """

    def __init__(self, dependency: str, detail: str = "") -> None:
        self.dependency = dependency
        self.detail = detail
        super().__init__(f"{dependency} is unavailable" + (f": {detail}" if detail else ""))
