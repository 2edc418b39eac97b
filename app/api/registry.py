"""State, next to each view, what it is (for the OpenAPI document) and who may call it.

``@operation`` both documents the route and wraps it in the access guard, so the two can
never disagree. The metadata itself lives in ``app.api.operation``, which the guard imports
too (no cycle between this module and ``app.auth.guards``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from app.api.operation import OPERATOR, PUBLIC, SESSION_ONLY, SESSION_OR_KEY, Operation
from app.auth.guards import guard

__all__ = ["OPERATOR", "PUBLIC", "SESSION_ONLY", "SESSION_OR_KEY", "Operation", "operation"]

F = TypeVar("F", bound=Callable[..., Any])


def operation(**kwargs: Any) -> Callable[[F], F]:
    meta = Operation(**kwargs)

    def attach(view: F) -> F:
        guarded = guard(meta, view)
        guarded.__openapi__ = meta  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return attach
