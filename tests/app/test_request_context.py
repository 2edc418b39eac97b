"""Client address: the TCP peer, unless it is a trusted proxy."""

from __future__ import annotations

import pytest
from flask import Flask, g

from app import create_app
from config import get_settings


@pytest.fixture
def ip_app(stack: object, monkeypatch: pytest.MonkeyPatch) -> Flask:
    app = create_app()

    @app.get("/_test/ip")
    def ip() -> dict[str, str]:
        return {"ip": g.client_ip}

    return app


def _ip(app: Flask, peer: str, xff: str | None = None) -> str:
    headers = {"X-Forwarded-For": xff} if xff else {}
    response = app.test_client().get("/_test/ip", headers=headers,
                                     environ_base={"REMOTE_ADDR": peer})
    return response.get_json()["ip"]


def test_untrusted_peer_is_the_client_even_with_forwarded_for(ip_app: Flask) -> None:
    assert _ip(ip_app, "198.51.100.4", "1.2.3.4") == "198.51.100.4"


def test_trusted_proxy_uses_rightmost_untrusted_hop(ip_app: Flask,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1")
    get_settings.cache_clear()
    try:
        assert _ip(ip_app, "10.1.1.1", "6.6.6.6, 203.0.113.5, 192.0.2.1") == "203.0.113.5"
        assert _ip(ip_app, "10.1.1.1", "garbage, 10.2.2.2") == "10.1.1.1"
        assert _ip(ip_app, "10.1.1.1") == "10.1.1.1"
    finally:
        monkeypatch.delenv("TRUSTED_PROXIES")
        get_settings.cache_clear()
