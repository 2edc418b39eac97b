"""The front door: authenticates, validates and enqueues. Real work happens in workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface, SessionMixin

import portcullis.models  # noqa: F401 - every table, so foreign keys resolve
from config import Settings, get_settings
from portcullis.observability import configure_logging, configure_sentry


class _NoCookieSession(SessionInterface):
    """Flask's signed-cookie session is not used: a session is the ``portcullis_session``
    JWT naming a server-side row (app/auth/loader.py). Every request gets Flask's read-only
    empty session, so no cookie named ``session`` is read or written (and none is signed
    on every request)."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        return None


class _App(Flask):
    """Flask, except that ``ensure_sync`` (asked for every hook and view on every request)
    remembers its answer for each function instead of inspecting its code flags again."""

    _SYNC_CACHE_SIZE = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = self._sync.get(func)
        if sync is None:
            sync = super().ensure_sync(func)
            if len(self._sync) < self._SYNC_CACHE_SIZE:
                self._sync[func] = sync
        return sync


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    configure_logging()
    configure_sentry("web")

    app = _App(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=settings.SESSION_SECRET.get_secret_value(),
        MAX_CONTENT_LENGTH=settings.UPLOAD_MAX_BYTES + 64 * 1024,
        JSON_SORT_KEYS=False,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = _NoCookieSession()

    from app.auth.loader import init_auth
    from app.extensions import init_rate_limits, init_security_headers
    from app.problems import register_error_handlers
    from app.request_context import init_request_context
    from app.validation import init_request_parsing

    init_request_parsing(app)  # size, depth and NUL limits on every body and query
    init_request_context(app)
    init_security_headers(app)
    init_auth(app)
    init_rate_limits(app)
    register_error_handlers(app)

    from app.access_keys.views import bp as access_keys_bp
    from app.api.views import bp as api_bp
    from app.audit.views import bp as audit_bp
    from app.auth.views import bp as auth_bp
    from app.auth.webauthn import bp as webauthn_bp
    from app.billing.views import bp as billing_bp
    from app.console.headers import ConsoleCsp
    from app.console.views import bp as console_bp
    from app.extensions import exempt_from_default_limit
    from app.health.views import bp as health_bp
    from app.jobs.views import bp as jobs_bp
    from app.links.views import bp as links_bp
    from app.members.views import bp as members_bp
    from app.operator.views import bp as operator_bp
    from app.sftp.views import bp as sftp_bp
    from app.storage.views import bp as storage_bp

    exempt_from_default_limit(health_bp, api_bp, console_bp)
    for blueprint in (health_bp, api_bp, auth_bp, members_bp, access_keys_bp, jobs_bp,
                      audit_bp, operator_bp, links_bp, storage_bp, billing_bp,
                      sftp_bp, webauthn_bp, console_bp):
        app.register_blueprint(blueprint)
    app.wsgi_app = ConsoleCsp(app.wsgi_app)  # type: ignore[method-assign]
    return app
