"""Keyset pagination for every list: ``?limit=1..200`` (default 50) and an opaque ``cursor``.

The front door only parses the page query; the service it calls pages the rows
(``portcullis.pagination``) and answers the items and the next cursor.
"""

from __future__ import annotations

from pydantic import Field

from app.validation import RequestModel
from portcullis.pagination import encode_cursor


class PageQuery(RequestModel):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=512)


_encode = encode_cursor  # the API's cursor format (bench/audit_page builds cursors with it)
