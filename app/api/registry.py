"""Describe a view for the OpenAPI document next to the view itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

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
    errors: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def operation(**kwargs: Any) -> Callable[[F], F]:
    meta = Operation(**kwargs)

    def attach(view: F) -> F:
        view.__openapi__ = meta  # type: ignore[attr-defined]
        return view

    return attach
