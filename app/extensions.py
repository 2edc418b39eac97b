"""Flask extensions, created here and initialised once in the app factory."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from flask_limiter import HeaderNames, Limiter
from flask_login import LoginManager, current_user
from flask_talisman import Talisman

from config import get_settings

login_manager = LoginManager()
talisman = Talisman()


def _needs_identity() -> bool:
    """Whether the matched route takes a credential (documented and not public)."""
    from app.api.registry import PUBLIC

    view = current_app.view_functions.get(request.endpoint or "")
    op = getattr(view, "__openapi__", None)
    return op is not None and op.auth != PUBLIC


def rate_limit_key() -> str:
    """Per identity (user, key, operator) on routes that take one; per client address when
    anonymous and on public routes whatever the headers, so a ``Bearer`` key (which any admin
    can mint) never buys a fresh budget for signup, login, resets or share links."""
    if _needs_identity():
        caller = current_user._get_current_object()  # type: ignore[attr-defined]
        if getattr(caller, "is_authenticated", False):
            return str(caller.rate_key)
    return f"ip:{getattr(g, 'client_ip', None) or 'unknown'}"


limiter = Limiter(
    rate_limit_key,
    # One budget per identity across every route (default_limits would count per route).
    application_limits=[lambda: get_settings().RATE_LIMIT_DEFAULT],
    headers_enabled=True,
    header_name_mapping={
        HeaderNames.LIMIT: "RateLimit-Limit",
        HeaderNames.REMAINING: "RateLimit-Remaining",
        HeaderNames.RESET: "RateLimit-Reset",
        HeaderNames.RETRY_AFTER: "Retry-After",
    },
    retry_after="delta-seconds",
    strategy="moving-window",
    key_prefix="portcullis-rl",
    # Default limits degrade to per-process memory while Redis is away; login checks the
    # store itself and fails closed (app/auth/views.py).
    swallow_errors=True,
    in_memory_fallback_enabled=True,
)


def init_rate_limits(app: Flask) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = get_settings().REDIS_URL
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 2,
                                               "socket_timeout": 2}
    limiter.init_app(app)


def rate_limit_store_up() -> bool:
    try:
        return bool(limiter.storage.check())
    except Exception:  # noqa: BLE001 - any storage failure means "down"
        return False

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
