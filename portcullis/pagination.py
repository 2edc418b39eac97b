"""Keyset pagination for every list a service answers: a page request (``limit``, an opaque
``cursor``) in, the page's items and the next cursor out.

The cursor encodes the last row's sort key, so pages stay stable while rows are inserted and
no OFFSET scan is ever needed. A cursor of the wrong shape is a 400 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from portcullis.errors import Invalid

T = TypeVar("T")
U = TypeVar("U")


class PageRequest(Protocol):
    """What a list asks for (the front door's ``PageQuery`` is one)."""

    @property
    def limit(self) -> int: ...

    @property
    def cursor(self) -> str | None: ...


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    def map(self, render: Callable[[T], U]) -> Page[U]:
        return Page([render(item) for item in self.items], self.next_cursor)


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _value(raw: Any, kind: type) -> Any:
    if not isinstance(raw, str):  # a forged cursor: uuid.UUID(5) is an AttributeError
        raise TypeError
    if kind is datetime:
        value = datetime.fromisoformat(raw)
        if value.utcoffset() is None:  # ours are always aware; naive ones compare by TZ
            raise ValueError
        return value
    if kind is date:
        return date.fromisoformat(raw)
    return uuid.UUID(raw) if kind is uuid.UUID else kind(raw)


def decode_cursor(cursor: str, kinds: list[type]) -> list[Any]:
    """The sort key a cursor encodes; anything else (forged, truncated) is a 400."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError
        return [_value(v, k) for v, k in zip(raw, kinds, strict=True)]
    except (ValueError, TypeError, binascii.Error):
        raise Invalid("invalid_cursor", "The cursor is not valid.") from None


def keyset(db: Session, stmt: Select[Any], keys: list[InstrumentedAttribute[Any]],
           kinds: list[type], page: PageRequest, descending: bool = True) -> Page[Any]:
    """Rows of ``stmt`` after ``page.cursor`` ordered by ``keys``, and the next cursor."""
    if page.cursor:
        after = decode_cursor(page.cursor, kinds)
        key = tuple_(*keys)
        stmt = stmt.where(key < tuple_(*after) if descending else key > tuple_(*after))
    order = [k.desc() if descending else k.asc() for k in keys]
    rows = list(db.scalars(stmt.order_by(*order).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = (encode_cursor([getattr(rows[-1], k.key) for k in keys])
                   if more and rows else None)
    return Page(rows, next_cursor)
