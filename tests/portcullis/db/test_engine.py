"""The pool's liveness check: no round trip, yet a connection whose backend is gone is
never handed out."""

from __future__ import annotations

import contextlib
import time

import psycopg
import pytest
from sqlalchemy import text

from devstack.stack import LocalStack
from portcullis.db.engine import get_engine, is_alive


def _terminate(stack: LocalStack, pid: int) -> None:
    url = stack["postgres"].superuser_url().replace("+psycopg", "")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_an_idle_connection_is_alive_and_a_terminated_one_is_not(stack: LocalStack) -> None:
    with get_engine().connect() as victim:
        raw = victim.connection.driver_connection
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        victim.rollback()
        assert is_alive(raw)
        _terminate(stack, pid)
        deadline = time.monotonic() + 5
        while is_alive(raw) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not is_alive(raw)
        victim.invalidate()


def test_checkout_replaces_a_dead_connection_without_failing(stack: LocalStack) -> None:
    engine = get_engine()
    with engine.connect() as first:
        pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()
        first.rollback()
    _terminate(stack, pid)
    time.sleep(0.2)
    for _ in range(engine.pool.size() + 1):  # every pooled connection, the dead one among them
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1


def test_a_connection_idle_for_long_is_pinged_and_a_failed_ping_replaces_it(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent drop (no FIN) leaves the socket quiet; after long idling a ping decides."""
    from portcullis.db import engine as engine_module

    engine = get_engine()
    # Check every pooled connection out at once (a dead one is replaced on the way), so the
    # next checkout meets a live connection and only the forced ping failure counts.
    with contextlib.ExitStack() as held:
        for _ in range(engine.pool.size()):
            held.enter_context(engine.connect()).execute(text("SELECT 1"))
    pings: list[int] = []

    def first_ping_fails(_engine: object, dbapi_conn: object) -> bool:
        pings.append(id(dbapi_conn))
        return len(pings) > 1

    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)
    monkeypatch.setattr(engine_module, "_ping", first_ping_fails)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
        used = id(connection.connection.driver_connection)
    assert len(pings) == 2  # the idle one was pinged, failed, and was replaced
    assert pings[1] == used
