"""gunicorn settings for the ``web`` process (Procfile): TLS 1.2+ when a certificate is set.

With TLS_CERT_PATH set, the listener speaks only TLS, so plain HTTP is refused. The access
and error logs never show a share-link token or a configured secret, and the Server header
names no version.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import gunicorn
from gunicorn.glogging import Logger

from config import get_settings
from portcullis.observability import ScrubFilter
from portcullis.redaction import redact_share_paths, register_secrets

gunicorn.SERVER = "portcullis"  # no version in the Server header
gunicorn.SERVER_SOFTWARE = "portcullis"

_settings = get_settings()
register_secrets(_settings.secret_values())  # the master logs too, before any app loads
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 60
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = ""  # client address is resolved by the app from TRUSTED_PROXIES
proxy_allow_ips = ""
accesslog = "-"
errorlog = "-"
limit_request_field_size = 8190

if _settings.TLS_CERT_PATH:
    certfile = _settings.TLS_CERT_PATH
    keyfile = _settings.TLS_KEY_PATH

    def ssl_context(_config: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
        context: ssl.SSLContext = default_ssl_context_factory()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


class RedactingLogger(Logger):
    """Access log lines show ``/s/<redacted>`` instead of a share-link token, and every
    line of both logs (``Error handling request /s/...`` and its traceback included) passes
    the one scrubber."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also on HUP: handlers are rebuilt, so filters are re-added
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, ScrubFilter) for f in handler.filters):
                    handler.addFilter(ScrubFilter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        environ = dict(environ)
        for key in ("RAW_URI", "PATH_INFO", "REQUEST_URI"):
            if key in environ:
                environ[key] = redact_share_paths(environ[key])
        req.uri = redact_share_paths(getattr(req, "uri", "") or "")
        req.path = redact_share_paths(getattr(req, "path", "") or "")
        req.query = ""
        super().access(resp, req, environ, request_time)


logger_class = RedactingLogger
