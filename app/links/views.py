"""GET /s/{token}: stream a shared object through the app; storage is never exposed."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from app.api.registry import PUBLIC, operation
from portcullis.errors import NotFound
from portcullis.links import service as links

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
    if not _canonical(token):
        raise NotFound("link")
    served = links.download(token)
    response = Response(served.body, mimetype=None, content_type=served.content_type,
                        direct_passthrough=True)
    response.call_on_close(served.close)  # also when the body is never read (HEAD)
    response.headers["Content-Disposition"] = content_disposition(served.filename)
    response.headers["Cache-Control"] = "private, no-store"
    if served.size is not None:
        response.headers["Content-Length"] = str(served.size)
    return response
