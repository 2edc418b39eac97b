"""GET /s/{token}: stream a shared object through the app; storage is never exposed."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from app.api.registry import PUBLIC, operation
from config import get_settings
from portcullis.links import service as links

bp = Blueprint("links", __name__)


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name in ``filename*``."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_"
                         for c in filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.get("/s/<token>")
@operation(summary="Download a shared object", tag="links", auth=PUBLIC, errors=(404, 410))
def download(token: str) -> ResponseReturnValue:
    from workers.storage import ObjectStore

    found = links.resolve(token)
    store = ObjectStore.from_settings(get_settings())

    def counted() -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in store.open_stream(found.bucket, found.object_key):
                sent += len(chunk)
                yield chunk
        finally:
            links.count_egress(found, sent)  # what was actually served, even if cut short

    response = Response(counted(), mimetype=None, content_type=found.content_type,
                        direct_passthrough=True)
    response.headers["Content-Disposition"] = content_disposition(found.filename)
    response.headers["Cache-Control"] = "private, no-store"
    if found.size is not None:
        response.headers["Content-Length"] = str(found.size)
    return response
