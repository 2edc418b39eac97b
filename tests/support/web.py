"""Clients of the app: the test client every module uses (``make_client``, bound to the
session's app as the ``client_for`` fixture) and the helpers around it; and the Procfile's
``web`` command run for real (gunicorn) on a free port."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config import get_settings
from devstack.process import ServiceProcess, free_port, port_open
from tests.support.factories import LoggedIn

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/api/v1/auth/login"
# 198.18.0.0/15 (benchmarking): a random address per client keeps the per-IP limits and
# detection windows of one test apart from every other test's in the session.
TEST_NET = ipaddress.ip_network("198.18.0.0/15")
LOCALHOST = "127.0.0.1"  # werkzeug's own default address


@contextmanager
def settings_env(**env: str) -> Iterator[None]:
    """Settings read with ``env`` set (an app built inside sees them); the environment and
    the settings cache are restored afterwards."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


@contextmanager
def app_with(**env: str) -> Iterator[Flask]:
    """An app built with ``env`` in its settings (``settings_env``)."""
    from app import create_app

    with settings_env(**env):
        yield create_app()


# --------------------------------------------------------------------------- test clients

def fresh_ip() -> str:
    """An address of 198.18.0.0/15 no other client is likely to have used."""
    return str(TEST_NET[secrets.randbelow(TEST_NET.num_addresses - 2) + 1])


def make_client(app: Flask, who: LoggedIn | None = None, *, ip: str | None = None,
                user_agent: str | None = None) -> FlaskClient:
    """A test client of ``app`` calling from ``ip`` (a fresh address when not given), with
    ``user_agent`` if given and ``who``'s session and CSRF cookies if given."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip or fresh_ip()
    if user_agent is not None:
        client.environ_base["HTTP_USER_AGENT"] = user_agent
    if who is not None:
        who.attach(client)
    return client


class ClientFor(Protocol):
    """The ``client_for`` fixture: ``make_client`` with the session's app."""

    def __call__(self, who: LoggedIn | None = None, *, ip: str | None = None,
                 user_agent: str | None = None) -> FlaskClient: ...


def csrf_headers(who: LoggedIn | FlaskClient) -> dict[str, str]:
    """The header an unsafe request with a session needs: from the member's session, or from
    the CSRF cookie a client got by logging in."""
    if isinstance(who, LoggedIn):
        return {"X-CSRF-Token": who.csrf}
    cookie = who.get_cookie("portcullis_csrf")
    return {"X-CSRF-Token": cookie.value if cookie else ""}


def log_in(client: FlaskClient, email: str, password: str) -> TestResponse:
    """POST /auth/login with a password; the client keeps the cookies it is given."""
    return client.post(LOGIN, json={"email": email, "password": password})


def problem_code(response: TestResponse) -> str | None:
    """The ``code`` of a problem+json answer (None for any other body)."""
    body = response.get_json(force=True, silent=True)
    return body.get("code") if isinstance(body, dict) else None


# --------------------------------------------------------------------------- gunicorn


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def start_web(log: Path, extra_env: dict[str, str] | None = None) -> tuple[ServiceProcess, int]:
    port = free_port()
    env = dict(os.environ)
    env.update({"PORT": str(port), "WEB_CONCURRENCY": "1", "PYTHONPATH": str(ROOT)})
    env.update(extra_env or {})
    argv = shlex.split(procfile()["web"])
    argv[0] = str(Path(sys.executable).parent / argv[0])  # the venv's gunicorn
    web = ServiceProcess("web", argv, log, env=env, cwd=ROOT).start()
    web.wait_ready(lambda: port_open(port), timeout=30)
    return web, port
