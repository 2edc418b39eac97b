"""State, next to each view, what it is (for the OpenAPI document) and who may call it.

``@operation`` both documents the route and wraps it in the access guard, so the two can
never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from portcullis.accounts.models import Role

F = TypeVar("F", bound=Callable[..., Any])

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
    writes: bool = False  # refused while the tenant is suspended
    operator_may_read: bool = False  # operator keys may call it too (per-object checks)
    errors: tuple[int, ...] = ()  # statuses beyond those every route of its kind answers
    response_also: tuple[int, ...] = ()  # statuses answered with ``response`` too (readyz)
    extra: dict[str, Any] = field(default_factory=dict)


def operation(**kwargs: Any) -> Callable[[F], F]:
    meta = Operation(**kwargs)

    def attach(view: F) -> F:
        from app.auth.guards import guard

        guarded = guard(meta, view)
        guarded.__openapi__ = meta  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return attach
