"""gunicorn settings for the ``web`` process (Procfile): TLS 1.2+ when a certificate is set.

With TLS_CERT_PATH set, the listener speaks only TLS, so plain HTTP is refused. The access
and error logs never show a share-link token or a configured secret, and the Server header
names no version.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Any
from urllib.parse import unquote

import gunicorn
from gunicorn.glogging import Logger

from config import get_settings
from portcullis.observability import ScrubFilter
from portcullis.redaction import SHARE_PATH_REDACTED, redact_share_paths, register_secrets

_SHARE_SEGMENT = re.compile(r"/s/", re.IGNORECASE)

gunicorn.SERVER = "portcullis"  # no version in the Server header
gunicorn.SERVER_SOFTWARE = "portcullis"

_settings = get_settings()
register_secrets(_settings.secret_values())  # the master logs too, before any app loads
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Processes over threads: the app's Python holds the GIL, so requests run in parallel only
# across processes (bench/auth_me measured 2 x cores workers of 2 threads ahead of 2 of 4).
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
threads = int(os.environ.get("WEB_THREADS", "2"))
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


class RedactingLogger(Logger):  # type: ignore[misc]
    """Access log lines and gunicorn's ``Error handling request`` line show
    ``/s/<redacted>`` for a share link (decided on the decoded path, so no case or
    percent-encoding slips through) and ``?<redacted>`` for any query string; every line of
    both logs (tracebacks included) also passes the one scrubber."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also on HUP: handlers are rebuilt, so filters are re-added
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, ScrubFilter) for f in handler.filters):
                    handler.addFilter(ScrubFilter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        environ = dict(environ)
        path_info = environ.get("PATH_INFO") or ""
        uri = safe_request_uri(environ.get("RAW_URI") or getattr(req, "uri", "") or "",
                               path_info)
        for key in ("RAW_URI", "REQUEST_URI"):
            environ[key] = uri
        environ["PATH_INFO"] = uri.partition("?")[0]
        environ["QUERY_STRING"] = ""
        req.uri = uri
        req.path = uri.partition("?")[0]
        req.query = ""
        super().access(resp, req, environ, request_time)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """gunicorn's ``Error handling request [method] uri``: the same safe URI."""
        if isinstance(msg, str) and msg.startswith("Error handling request") and args:
            args = (*args[:-1], safe_request_uri(str(args[-1])))
        super().exception(msg, *args, **kwargs)


def _decoded(path: str) -> str:
    """The path as a router might see it, however many times it was percent-encoded."""
    for _ in range(4):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return path


def safe_request_uri(raw_uri: str, path_info: str = "") -> str:
    """What a log may print for a request: ``/s/<redacted>`` for anything that decodes to a
    share-link path (any case, any encoding), else the path with ``?<redacted>`` for its
    query string (email links carry their token there)."""
    path, has_query, _ = raw_uri.partition("?")
    if any(_SHARE_SEGMENT.search(_decoded(p)) for p in (path, path_info)):
        return SHARE_PATH_REDACTED
    return redact_share_paths(path) + ("?<redacted>" if has_query else "")


logger_class = RedactingLogger
