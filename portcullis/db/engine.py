"""One engine per database URL; every pooled connection runs as the least-privileged role."""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from config import get_settings
from portcullis.db.roles import APP_ROLE


def _normalise(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_engines: dict[str, Engine] = {}
PING_AFTER_IDLE = 30.0  # seconds in the pool after which a checkout pings as well


def _engine_for(url: str) -> Engine:
    if url in _engines:
        return _engines[url]
    engine = create_engine(
        _normalise(url),
        pool_size=5,
        max_overflow=10,
        pool_recycle=1800,
        hide_parameters=True,  # bound values (hashes, tokens) never reach an error or a log
        connect_args={
            "connect_timeout": 5, "application_name": "portcullis",
            # A peer that vanished without a word (host lost, NAT or balancer idle drop) is
            # found by TCP itself, not by the first query that waits on it.
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
            "keepalives_count": 3, "tcp_user_timeout": 30_000,
        },
    )

    @event.listens_for(engine, "connect")
    def _drop_privileges(dbapi_conn: Any, _record: Any) -> None:
        # Session-level, so even a raw connection never acts as the owner.
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET ROLE {APP_ROLE}")
            cur.execute("SET statement_timeout = '60s'")
            cur.execute("SET idle_in_transaction_session_timeout = '300s'")
        dbapi_conn.commit()

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()  # new counts as just used

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("checked_in_at", 0.0)
        if not is_alive(dbapi_conn) or (idle > PING_AFTER_IDLE and not _ping(engine, dbapi_conn)):
            raise DisconnectionError("the connection is gone")  # the pool reconnects

    _engines[url] = engine
    return engine


def is_alive(dbapi_conn: Any) -> bool:
    """A liveness check without a round trip: an idle connection has nothing to read.

    A server that restarts or ends a backend says so ("terminating connection") or closes
    the socket, and either makes the socket readable. A ping per checkout would cost every
    busy request and task a round trip for the same answer; a connection idle for longer
    than ``PING_AFTER_IDLE`` (when a silent drop becomes likely) is pinged as well.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        return False
    poller = select.poll()
    poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def _ping(engine: Engine, dbapi_conn: Any) -> bool:
    try:
        engine.dialect.do_ping(dbapi_conn)
    except (psycopg.Error, OSError):  # any failure means: not usable
        return False
    return True


def get_engine() -> Engine:
    return _engine_for(get_settings().DATABASE_URL)


def owner_engine() -> Engine:
    """The owner's connection, for migrations only."""
    return create_engine(_normalise(get_settings().DATABASE_URL), pool_pre_ping=True)


def dispose_engines() -> None:
    """Forget pooled connections (after fork, or when tests switch databases)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
