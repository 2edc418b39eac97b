"""Per-request facts every view and audit record needs: request id and client address."""

from __future__ import annotations

import ipaddress
import re
import uuid

import structlog
from flask import Flask, Response, g, request

from config import get_settings

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_ip() -> str:
    """The TCP peer, or the right-most X-Forwarded-For hop not in TRUSTED_PROXIES."""
    peer = request.remote_addr or "0.0.0.0"  # noqa: S104 - only a placeholder address
    proxies = get_settings().TRUSTED_PROXIES
    if not proxies or not _in(peer, proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain is not trusted past this point
        if not _in(hop, proxies):
            return hop
    return peer


def _in(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


def user_agent() -> str | None:
    value = request.headers.get("User-Agent")
    return value[:512] if value else None


def init_request_context(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        g.client_ip = client_ip()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = getattr(g, "request_id", None) or str(uuid.uuid4())
        return response
