"""GET /s/{token}: stream a shared object through the app; storage is never exposed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from app.api.registry import PUBLIC, operation
from config import get_settings
from portcullis.errors import DependencyUnavailable, NotFound
from portcullis.links import service as links

log = logging.getLogger(__name__)
bp = Blueprint("links", __name__)


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name in ``filename*``."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_"
                         for c in filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _canonical(token: str) -> bool:
    """The request said ``/s/<token>`` literally: the server decodes the path before routing,
    so ``/%73/...`` or ``/s%2F...`` would also land here, in a shape that log scrubbers
    (ours, a proxy's) may not recognise. A real link never needs encoding: refuse those."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw is None:
        return True  # a WSGI server that keeps no raw URI: nothing else to compare
    return urlsplit(str(raw)).path == f"{request.script_root}/s/{token}"


@bp.get("/s/<token>")
@operation(summary="Download a shared object", tag="links", auth=PUBLIC,
           errors=(404, 410, 503))
def download(token: str) -> ResponseReturnValue:
    """The object is opened and its first chunk read before any header is sent: a storage
    outage is a 503 problem here, never gunicorn's bare 500 (which logs the URL)."""
    from portcullis.clients.object_store import ObjectNotFound, ObjectStore

    if not _canonical(token):
        raise NotFound("link")
    found = links.resolve(token)
    store = ObjectStore.from_settings(get_settings())
    try:
        chunks = store.open_stream(found.bucket, found.object_key)
        first = next(chunks, b"")
    except ObjectNotFound:  # the link outlived its object: as if it never existed
        raise NotFound("link") from None
    close_body = getattr(chunks, "close", lambda: None)  # releases the S3 connection

    def counted() -> Iterator[bytes]:
        sent = 0
        try:
            if first:
                sent += len(first)
                yield first
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
        except DependencyUnavailable:
            # Headers are out: re-raising makes the server drop the connection, so the
            # client sees a truncated body, not a short "complete" one. No URL is logged.
            log.warning("share-link download cut short: storage failed mid-stream")
            raise
        finally:
            close_body()
            links.count_egress(found, sent)  # what was actually served, even if cut short

    response = Response(counted(), mimetype=None, content_type=found.content_type,
                        direct_passthrough=True)
    response.call_on_close(close_body)  # also when the body is never read (HEAD)
    response.headers["Content-Disposition"] = content_disposition(found.filename)
    response.headers["Cache-Control"] = "private, no-store"
    if found.size is not None:
        response.headers["Content-Length"] = str(found.size)
    return response
