"""flask-login's request loader: the single place a cookie or key becomes a principal."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from flask import Flask, Request, g, request
from flask_login import LoginManager

from app.auth.cookies import SESSION_COOKIE
from portcullis.accounts.identity import (
    Principal,
    identity_from_access_key,
    identity_from_operator_key,
    identity_from_session,
)
from portcullis.accounts.identity_cache import EpochSource, Stamp
from portcullis.accounts.tokens import SessionClaims, verify
from portcullis.callers import Origin

OPERATOR_PATHS = ("/api/v1/operator/",)
# flask.g: (tenant id, the default limit's Pending) when that call also read the tenant's
# identity epochs (app/extensions.py)
IDENTITY_EPOCHS = "identity_epochs"


class _RequestLoaderOnly(LoginManager):  # type: ignore[misc]
    """flask-login, for the one way this app authenticates: its request loader
    (app/auth/loader.py). flask-login's own ``_load_user`` first hashes the client's address
    and user agent (session protection, on every request, even when it is off), then looks
    for a user in Flask's cookie session and for a "remember me" cookie; this app has
    neither (Flask's session is a null one, no ``login_user``), so only the loader runs."""

    def _load_user(self) -> Any:
        return self._update_request_context_with_user(self._load_user_from_request(request))


login_manager = _RequestLoaderOnly()



def request_origin() -> Origin:
    from app.request_context import user_agent

    return Origin(getattr(g, "client_ip", None), user_agent())


class _VerifiedTokens:
    """Session JWTs whose signature and claims were verified, with their ``exp``.

    Verifying a JWT (PyJWT: base64, JSON, HMAC, every claim) costs more than the rest of
    the request loader in Python; a browser sends the same token on every request. A token
    is cached only after it verified, keyed by its exact text and the key that verified it,
    and is served from here only until its own ``exp``. The session row is still read on
    every request: revocation, idle and absolute expiry are the row's to decide.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._tokens: OrderedDict[tuple[str, str], tuple[SessionClaims, float]] = OrderedDict()
        self._lock = threading.Lock()

    def claims(self, token: str) -> SessionClaims | None:
        from config import get_settings

        settings = get_settings()
        # Both keys: a token verified under the previous secret must not stay accepted
        # once that secret is removed.
        key = (settings.JWT_SECRET.get_secret_value() + "\0"
               + settings.JWT_SECRET_PREVIOUS.get_secret_value(), token)
        with self._lock:
            hit = self._tokens.get(key)
            if hit is not None:
                self._tokens.move_to_end(key)
        if hit is not None:
            cached, until = hit
            if time.time() < until:
                return cached
        claims = verify(token)
        if claims is None:
            return None
        expires = _expiry(token)
        if expires is not None:
            with self._lock:
                self._tokens[key] = (claims, expires)
                while len(self._tokens) > self.SIZE:
                    self._tokens.popitem(last=False)
        return claims


def _expiry(token: str) -> float | None:
    """``exp`` of a token that has just verified (so its payload is well formed)."""
    try:
        payload = token.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        return float(exp)
    except (IndexError, ValueError, KeyError, TypeError):
        return None


_verified = _VerifiedTokens()


def _operator_allowed(request: Request) -> bool:
    """Operator keys work only on operator routes and on reading jobs (checked per job)."""
    path = request.path
    return path.startswith(OPERATOR_PATHS) or (
        request.method == "GET" and path.startswith("/api/v1/jobs/"))


def _epochs() -> EpochSource | None:
    """The identity cache's epochs, as the default limit's Redis call read them this
    request; none for another tenant, or when that call was not made or not answered."""
    sent: tuple[uuid.UUID, Any] | None = g.get(IDENTITY_EPOCHS)
    if sent is None:
        return None
    tenant_id, pending = sent

    def source(tenant: uuid.UUID) -> Stamp | None:
        return pending.epochs() if tenant == tenant_id else None

    return source


def load_identity(request: Request) -> Principal | None:
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            return None
        secret = secret.strip()
        if secret.startswith("pco_"):
            if not _operator_allowed(request):
                return None
            return identity_from_operator_key(secret, request_origin())
        return identity_from_access_key(secret, request_origin(), _epochs())
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    claims = _verified.claims(token)
    if claims is None:
        return None
    return identity_from_session(claims, request_origin(), _epochs())


def session_claims(request: Request) -> SessionClaims | None:
    """The verified claims of the request's session cookie when the cookie is what
    authenticates it (no ``Authorization`` header), else None. For the default rate limit,
    which sends its count while ``load_identity`` checks the session row."""
    if request.headers.get("Authorization"):
        return None
    token = request.cookies.get(SESSION_COOKIE)
    return _verified.claims(token) if token else None


def init_auth(app: Flask) -> None:
    # What LoginManager.init_app does, minus its after_request hook: that hook maintains
    # flask-login's "remember me" cookie, which this app never issues (no login_user; the
    # session is the portcullis_session cookie), so it would only run on every response.
    login_manager.request_loader(load_identity)
    app.login_manager = login_manager  # type: ignore[attr-defined]
