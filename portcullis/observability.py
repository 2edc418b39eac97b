"""Logging and Sentry set-up for every process; both pass through the one scrubber."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from config import get_settings
from portcullis.redaction import register_secrets, scrub, scrub_text

_configured = False


class _ScrubFilter(logging.Filter):
    """Mask secrets in every stdlib record, whoever logged it (libraries included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break logging
            message = str(record.msg)
        record.msg = scrub_text(message)
        record.args = None
        return True


def _scrub_event(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return scrub(event)


def configure_logging() -> None:
    global _configured
    if _configured:
        return
    _configured = True
    settings = get_settings()
    register_secrets(settings.secret_values())
    # Tracebacks are plain text (never with local variables) and pass the scrubber.
    renderer: Any = (structlog.processors.JSONRenderer() if settings.is_production
                     else structlog.dev.ConsoleRenderer(
                         colors=False, exception_formatter=structlog.dev.plain_traceback))
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ScrubFilter())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[structlog.stdlib.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True),
                           structlog.processors.format_exc_info, _scrub_event],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_event,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def _before_send(event: Any, _hint: Any) -> Any:
    event = scrub(event)
    request = event.get("request") if isinstance(event, dict) else None
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
    return event


def configure_sentry(component: str) -> None:
    dsn = get_settings().SENTRY_DSN.get_secret_value()
    if not dsn:
        return
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, send_default_pii=False, before_send=_before_send,
                    environment=str(get_settings().PORTCULLIS_ENV), server_name=component,
                    max_request_body_size="never")
