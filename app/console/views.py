"""/console/* and the email links' pages: one HTML shell for every page, and its assets.

Every page is the same static shell (static/page.html); its script reads the address and
draws the page from JSON it fetches, so no user data is ever written into HTML here. Only
the pages named below exist: any other path is the API's 404 problem. Pages and assets are
public (they hold nothing but code) and never counted against the request limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

from app.api.registry import PUBLIC, operation
from app.console.headers import PAGE

bp = Blueprint("console", __name__)

STATIC = Path(__file__).resolve().parent / "static"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}
PAGE_CACHE = "no-cache"  # cacheable, revalidated: a new release's shell is seen at once
ASSET_CACHE = "public, max-age=3600"

_PAGE_DOC = {"description": (
    "A console page (API.md, Console): the same static HTML shell for every page, with the "
    "console's own Content-Security-Policy; its script fetches what it shows from this API."),
    "responses": {"200": {"description": "The page", "content": {"text/html": {}}}}}
_ASSET_DOC = {"description": "A console script (JavaScript module) or style sheet; public, "
              "cacheable.", "responses": {"200": {"description": "The file", "content": {
                  "text/javascript": {}, "text/css": {}}}}}


def _file(path: Path, content_type: str, cache: str) -> Response:
    response = Response(path.read_bytes(), content_type=content_type)
    response.headers["Cache-Control"] = cache
    response.add_etag()
    response.make_conditional(request)  # a 304 for an ETag the browser holds
    return response


@operation(summary="A console page", tag="console", auth=PUBLIC, errors=(404,),
           extra=_PAGE_DOC)
def page(**_: Any) -> ResponseReturnValue:
    request.environ[PAGE] = True
    return _file(STATIC / "page.html", "text/html; charset=utf-8", PAGE_CACHE)


def _asset(*parts: str) -> Response:
    found = safe_join(str(STATIC), *parts)
    path = Path(found) if found else None
    content_type = ASSET_TYPES.get(path.suffix) if path else None
    if path is None or content_type is None or not path.is_file():
        raise NotFound()
    return _file(path, f"{content_type}; charset=utf-8", ASSET_CACHE)


@bp.get("/console/static/<name>")
@operation(summary="A console asset", tag="console", auth=PUBLIC, errors=(404,),
           extra=_ASSET_DOC)
def asset(name: str) -> ResponseReturnValue:
    return _asset(name)


@bp.get("/console/static/views/<name>")
@operation(summary="A console page's script", tag="console", auth=PUBLIC, errors=(404,),
           extra=_ASSET_DOC)
def view_asset(name: str) -> ResponseReturnValue:
    return _asset("views", name)


PAGES = {"home": "/console/", "signup": "/console/signup", "login": "/console/login",
         "forgot_password": "/console/forgot-password", "buckets": "/console/buckets",
         "bucket": "/console/buckets/<uuid:bucket_id>", "members": "/console/members",
         "access_keys": "/console/access-keys", "sftp": "/console/sftp",
         "audit": "/console/audit", "billing": "/console/billing",
         "security": "/console/security", "verify_email": "/verify-email",
         "accept_invitation": "/accept-invitation", "reset_password": "/reset-password"}
for _name, _rule in PAGES.items():  # one endpoint each: one operation id each
    bp.add_url_rule(_rule, f"page_{_name}", page, methods=["GET"])
