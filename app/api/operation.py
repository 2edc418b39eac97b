"""What a view is (for the OpenAPI document) and who may call it: the metadata that
``app.api.registry.operation`` attaches and that the access guard (``app.auth.guards``) and
the document builder (``app.api.document``) read. Imports nothing of the front door, so
both sides can import it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from portcullis.callers import Role

PUBLIC = "public"
SESSION_OR_KEY = "session_or_key"
SESSION_ONLY = "session_only"
OPERATOR = "operator"


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    status: int = 200
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    auth: str = SESSION_OR_KEY
    scope: str | None = None
    roles: tuple[Role, ...] | None = None
    allow_restricted: bool = False  # usable before MFA is done (the /auth/mfa/* family)
    refuse_mfa_pending: bool = False  # ... but not while the second factor is awaited (enrol)
    writes: bool = False  # refused while the tenant is suspended
    operator_may_read: bool = False  # operator keys may call it too (per-object checks)
    errors: tuple[int, ...] = ()  # statuses beyond those every route of its kind answers
    response_also: tuple[int, ...] = ()  # statuses answered with ``response`` too (readyz)
    extra: dict[str, Any] = field(default_factory=dict)
