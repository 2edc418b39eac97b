"""Keyset pagination for every list: ``?limit=1..200`` (default 50) and an opaque ``cursor``.

The cursor encodes the last row's sort key, so pages stay stable while rows are inserted
and no OFFSET scan is ever needed.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.problems import Problem
from app.validation import RequestModel


class PageQuery(RequestModel):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=512)


def _encode(values: list[Any]) -> str:
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
    return uuid.UUID(raw) if kind is uuid.UUID else kind(raw)


def _decode(cursor: str, kinds: list[type]) -> list[Any]:
    """The sort key a cursor encodes; anything else (forged, truncated) is a 400."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError
        return [_value(v, k) for v, k in zip(raw, kinds, strict=True)]
    except (ValueError, TypeError, binascii.Error):
        raise Problem(400, "invalid_cursor", "The cursor is not valid.") from None


def paginate(db: Session, stmt: Select[Any], keys: list[InstrumentedAttribute[Any]],
             kinds: list[type], page: PageQuery,
             descending: bool = True) -> tuple[list[Any], str | None]:
    """Rows of ``stmt`` after ``page.cursor`` ordered by ``keys``, and the next cursor."""
    if page.cursor:
        after = _decode(page.cursor, kinds)
        key = tuple_(*keys)
        stmt = stmt.where(key < tuple_(*after) if descending else key > tuple_(*after))
    order = [k.desc() if descending else k.asc() for k in keys]
    rows = list(db.scalars(stmt.order_by(*order).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = _encode([getattr(rows[-1], k.key) for k in keys]) if more and rows else None
    return rows, next_cursor
