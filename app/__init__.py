"""The front door: authenticates, validates and enqueues. Real work happens in workers."""

from __future__ import annotations

from flask import Flask

from config import Settings, get_settings
from portcullis.observability import configure_logging, configure_sentry


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    configure_logging()
    configure_sentry("web")

    app = Flask(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=settings.SESSION_SECRET.get_secret_value(),
        MAX_CONTENT_LENGTH=settings.UPLOAD_MAX_BYTES + 64 * 1024,
        JSON_SORT_KEYS=False,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]

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
    from app.extensions import limiter
    from app.health.views import bp as health_bp
    from app.jobs.views import bp as jobs_bp
    from app.links.views import bp as links_bp
    from app.members.views import bp as members_bp
    from app.operator.views import bp as operator_bp
    from app.storage.views import bp as storage_bp

    limiter.exempt(health_bp)
    limiter.exempt(api_bp)
    for blueprint in (health_bp, api_bp, auth_bp, members_bp, access_keys_bp, jobs_bp,
                      audit_bp, operator_bp, links_bp, storage_bp):
        app.register_blueprint(blueprint)
    return app
