"""Logging and Sentry set-up for every process; both pass through the one scrubber."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import structlog

from config import get_settings
from portcullis.redaction import register_secrets, scrub, scrub_text

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

_configured = False
_plain = logging.Formatter()


class ScrubFilter(logging.Filter):
    """Mask secrets in every stdlib record, whoever logged it (libraries, gunicorn): the
    message, and the traceback text a plain formatter would print after it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict) and hasattr(record, "_logger"):
            return True  # structlog's event dict, scrubbed by its chain; must stay a dict
        try:
            message = (str(scrub(record.msg)) if isinstance(record.msg, dict) and not record.args
                       else record.getMessage())
        except Exception:  # noqa: BLE001 - a bad format string must not break logging
            message = str(record.msg)
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True


_ScrubFilter = ScrubFilter  # the name earlier tests import


def _scrub_event(_logger: Any, _name: str,
                 event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    scrubbed: Mapping[str, Any] = scrub(event)
    return scrubbed


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
    handler.addFilter(ScrubFilter())
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


def _frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stack frame in an event: exceptions (chained ones included) and threads."""
    frames: list[dict[str, Any]] = []
    for section in ("exception", "threads"):
        container = event.get(section)
        values = container.get("values") if isinstance(container, dict) else None
        for value in values if isinstance(values, list) else []:
            stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
            found = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
            frames.extend(f for f in found or [] if isinstance(f, dict))
    return frames


def _before_send(event: Any, _hint: Any) -> Any:
    """Scrub the whole event, then drop what no key rule can judge: frame locals (a
    ``LoginIn(password=...)`` is only a repr string), request bodies, cookies and env."""
    event = scrub(event)
    if not isinstance(event, dict):
        return event
    for frame in _frames(event):
        frame.pop("vars", None)
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("cookies", "data", "env"):
            request.pop(key, None)
    return event


def configure_sentry(component: str, *, transport: Transport | None = None) -> None:
    """Sentry without locals, bodies or PII; every event and transaction is scrubbed.

    ``transport`` replaces the network (tests record what would have been sent).
    """
    dsn = get_settings().SENTRY_DSN.get_secret_value()
    if not dsn:
        return
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, send_default_pii=False, include_local_variables=False,
                    before_send=_before_send, before_send_transaction=_before_send,
                    environment=str(get_settings().PORTCULLIS_ENV), server_name=component,
                    max_request_body_size="never", transport=transport)
