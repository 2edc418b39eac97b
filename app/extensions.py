"""Flask extensions, created here and initialised once in the app factory."""

from __future__ import annotations

from flask import Response
from flask_login import LoginManager
from flask_talisman import Talisman

login_manager = LoginManager()
talisman = Talisman()

HSTS = "max-age=63072000; includeSubDomains"
CONTENT_SECURITY_POLICY = {"default-src": "'none'", "frame-ancestors": "'none'"}


def init_security_headers(app: object) -> None:
    """The headers API.md puts on every response, errors included."""
    talisman.init_app(
        app,  # type: ignore[arg-type]
        force_https=False,  # TLS is gunicorn's job; plain HTTP is refused there, not redirected
        strict_transport_security=True,
        strict_transport_security_max_age=63072000,
        strict_transport_security_include_subdomains=True,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="no-referrer",
        session_cookie_secure=True,
        session_cookie_http_only=True,
        permissions_policy={},
        x_content_type_options=True,
    )

    @app.after_request  # type: ignore[attr-defined]
    def _always_hsts(response: Response) -> Response:
        # Talisman sends HSTS only on requests it sees as HTTPS; behind TLS termination
        # that depends on proxy headers, and API.md wants it on every response.
        response.headers.setdefault("Strict-Transport-Security", HSTS)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
