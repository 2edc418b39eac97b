"""flask-login's request loader: the single place a cookie or key becomes an identity."""

from __future__ import annotations

from flask import Flask, Request, g

from app.extensions import login_manager
from portcullis.accounts.identity import Identity, identity_from_session
from portcullis.accounts.tokens import verify

SESSION_COOKIE = "portcullis_session"
CSRF_COOKIE = "portcullis_csrf"
CSRF_HEADER = "X-CSRF-Token"


@login_manager.request_loader
def load_identity(request: Request) -> Identity | None:
    g.auth_attempted = False
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    g.auth_attempted = True
    claims = verify(token)
    if claims is None:
        return None
    return identity_from_session(claims)


def init_auth(app: Flask) -> None:
    login_manager.init_app(app)
