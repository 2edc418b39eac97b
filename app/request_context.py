"""Per-request facts every view and audit record needs: request id and client address."""

from __future__ import annotations

import ipaddress
import random
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from flask import Flask, g, request

from config import get_settings

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_ID = "portcullis.request_id"  # WSGI environ keys
RATE_LIMIT = "portcullis.rate_limit"  # the default limit's Outcome for this request
CLIENT_IP = "portcullis.client_ip"  # resolved once, by whichever needs it first


def client_ip() -> str:
    """The TCP peer, or the right-most X-Forwarded-For hop not in TRUSTED_PROXIES."""
    return client_ip_of(request.environ)


def client_ip_of(environ: dict[str, Any]) -> str:
    """``client_ip`` from a WSGI environ (before Flask has a request)."""
    peer = environ.get("REMOTE_ADDR") or "0.0.0.0"  # noqa: S104 - only a placeholder address
    proxies = get_settings().TRUSTED_PROXIES
    if not proxies or not _in(peer, proxies):
        return str(peer)
    hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return str(peer)  # a malformed chain is not trusted past this point
        if not _in(hop, proxies):
            return str(hop)
    return str(peer)


def _in(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


def user_agent() -> str | None:
    value = request.headers.get("User-Agent")
    return value[:512] if value else None


# A version-4 UUID's fixed bits: version 4, RFC 4122 variant.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random (version 4) UUID. A request id only correlates log lines, audit events and
    error bodies (a client may send its own), so it needs no secret randomness: it comes
    from the process's own generator (reseeded in every forked worker) rather than from
    ``os.urandom``, a system call that costs more than the rest of the middleware."""
    return str(uuid.UUID(int=random.getrandbits(128) & _V4_CLEAR | _V4_SET))


def _request_id(environ: dict[str, Any]) -> str:
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    return incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()


StartResponse = Callable[..., Any]


class FrontDoorHeaders:
    """WSGI middleware around the Flask app: the headers every response carries (errors
    included), written to the plain header list the server receives.

    Each request gets its ``X-Request-ID`` here (kept if the client sent a safe one), and
    every response the fixed security headers, ``Vary: Cookie`` (answers depend on the
    session cookie) and, when the default rate limit counted the request, its
    ``RateLimit-*`` and ``Retry-After`` headers as flask-limiter writes them (unless a route
    limit of flask-limiter's already wrote its own). Done here rather than in
    ``after_request`` hooks because werkzeug's ``Headers`` scans and re-validates the whole
    list for each header set, on every response.
    """

    def __init__(self, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
                 fixed: Iterable[tuple[str, str]]) -> None:
        self.wsgi_app = wsgi_app
        self.fixed = list(fixed)
        self.replaced = {name.lower() for name, _ in self.fixed} | {"x-request-id"}

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        request_id = environ[REQUEST_ID] = _request_id(environ)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {name.lower() for name, _ in headers}
            if names & self.replaced:
                headers[:] = [(k, v) for k, v in headers if k.lower() not in self.replaced]
            headers += self.fixed
            headers.append(("X-Request-ID", request_id))
            if "vary" in names:
                headers[:] = [(k, _vary_cookie(v) if k.lower() == "vary" else v)
                              for k, v in headers]
            else:
                headers.append(("Vary", "Cookie"))
            limit = environ.get(RATE_LIMIT)
            if limit is not None and "ratelimit-limit" not in names:
                _rate_limit_headers(headers, names, limit)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def _vary_cookie(value: str) -> str:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return value if "cookie" in {p.lower() for p in parts} or "*" in parts else (
        ", ".join([*parts, "Cookie"]))


def _rate_limit_headers(headers: list[tuple[str, str]], names: set[str], limit: Any) -> None:
    retry_after = limit.retry_after
    if "retry-after" in names:  # an answer's own Retry-After (503, 429): the later one wins
        existing = next(v for k, v in headers if k.lower() == "retry-after")
        if not existing.isdigit():
            retry_after = None
        else:
            retry_after = max(retry_after, int(existing))
            headers[:] = [(k, v) for k, v in headers if k.lower() != "retry-after"]
    headers += [("RateLimit-Limit", str(limit.limit)),
                ("RateLimit-Remaining", str(limit.remaining)),
                ("RateLimit-Reset", str(limit.reset_at))]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))


def init_request_context(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        g.request_id = request.environ.get(REQUEST_ID) or _request_id(request.environ)
        g.client_ip = request.environ.get(CLIENT_IP) or client_ip()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)
