"""GET /s/{token}: stream a shared object through the app; storage is never exposed."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, g, request
from flask.typing import ResponseReturnValue

from app.api.registry import PUBLIC, operation
from app.auth.guards import public_caller
from app.extensions import count_attempt
from app.problems import Problem
from portcullis.errors import NotFound
from portcullis.links import service as links
from portcullis.redaction import keyed_digest

bp = Blueprint("links", __name__)

CHALLENGE = 'Basic realm="portcullis-share"'
# Wrong passwords per link and client address (API.md). The key names the link by a keyed
# digest of its token, so Redis never holds a token.
GUESSES_PER_MINUTE = "10/minute"


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


def _basic_password() -> str | None:
    """The password of HTTP Basic credentials (any user name); None without any."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        return None
    return credentials.password or None


def _password_key() -> str:
    token = str((request.view_args or {}).get("token", ""))
    return f"link-password:{keyed_digest(token)}:{g.client_ip}"


@bp.get("/s/<token>")
@operation(summary="Download a shared object", tag="links", auth=PUBLIC,
           errors=(401, 404, 410, 503), extra={"description": (
               "A link with a password answers 401 with `WWW-Authenticate: Basic "
               "realm=\"portcullis-share\"` (`password_required`, or `invalid_credentials` "
               "for a wrong password) until HTTP Basic credentials carry it, with any user "
               "name. Wrong passwords are limited to 10 a minute per link and client address "
               "(then 429 `rate_limited` with `Retry-After`, even for the right one). A link "
               "with `allowed_ips` is a 404 from any other client address. 410 "
               "`link_expired` once expired, `link_used_up` once `max_downloads` downloads "
               "have started. A HEAD takes no download from the budget.")})
def download(token: str) -> ResponseReturnValue:
    """The object is opened and its first chunk read before any header is sent: a storage
    outage is a 503 problem here, never gunicorn's bare 500 (which logs the URL)."""
    if not _canonical(token):
        raise NotFound("link")
    password = _basic_password()
    # A request with a password is counted before the slow hash and refunded unless the
    # password was wrong: parallel guesses all count, and only wrong ones use the budget.
    attempt = count_attempt(_password_key(), GUESSES_PER_MINUTE) if password else None
    if attempt is not None and not attempt.outcome.allowed:
        raise Problem(429, "rate_limited", "Too many wrong passwords for this link.",
                      headers={"Retry-After": str(attempt.outcome.retry_after)})
    wrong = False
    try:
        served = links.download(public_caller(), token, password,
                                count=request.method != "HEAD")
    except links.PasswordRequired as exc:
        wrong = exc.code == "invalid_credentials"
        raise Problem(401, exc.code, exc.detail,
                      headers={"WWW-Authenticate": CHALLENGE}) from None
    finally:
        if attempt is not None and not wrong:
            attempt.refund()
    response = Response(served.body, mimetype=None, content_type=served.content_type,
                        direct_passthrough=True)
    response.call_on_close(served.close)  # also when the body is never read (HEAD)
    response.headers["Content-Disposition"] = content_disposition(served.filename)
    response.headers["Cache-Control"] = "private, no-store"
    if served.size is not None:
        response.headers["Content-Length"] = str(served.size)
    return response
