"""flask-login's request loader: the single place a cookie or key becomes an identity."""

from __future__ import annotations

from flask import Flask, Request, g

from app.extensions import login_manager
from portcullis.accounts.identity import (
    Identity,
    OperatorIdentity,
    identity_from_access_key,
    identity_from_operator_key,
    identity_from_session,
)
from portcullis.accounts.tokens import verify
from portcullis.audit.service import Origin

SESSION_COOKIE = "portcullis_session"
CSRF_COOKIE = "portcullis_csrf"
CSRF_HEADER = "X-CSRF-Token"
OPERATOR_PATHS = ("/api/v1/operator/",)


def request_origin() -> Origin:
    from app.request_context import user_agent

    return Origin(getattr(g, "client_ip", None), user_agent())


def _operator_allowed(request: Request) -> bool:
    """Operator keys work only on operator routes and on reading jobs (checked per job)."""
    path = request.path
    return path.startswith(OPERATOR_PATHS) or (
        request.method == "GET" and path.startswith("/api/v1/jobs/"))


@login_manager.request_loader
def load_identity(request: Request) -> Identity | OperatorIdentity | None:
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            return None
        secret = secret.strip()
        if secret.startswith("pco_"):
            return identity_from_operator_key(secret) if _operator_allowed(request) else None
        return identity_from_access_key(secret, request_origin())
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    claims = verify(token)
    if claims is None:
        return None
    return identity_from_session(claims, request_origin())


def init_auth(app: Flask) -> None:
    login_manager.init_app(app)
