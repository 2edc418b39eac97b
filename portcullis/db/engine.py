"""One engine per database URL; every pooled connection runs as the least-privileged role."""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from config import get_settings
from portcullis.db.roles import APP_ROLE


def _normalise(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_engines: dict[str, Engine] = {}


def _engine_for(url: str) -> Engine:
    if url in _engines:
        return _engines[url]
    engine = create_engine(
        _normalise(url),
        pool_size=5,
        max_overflow=10,
        pool_recycle=1800,
        hide_parameters=True,  # bound values (hashes, tokens) never reach an error or a log
        connect_args={"connect_timeout": 5, "application_name": "portcullis"},
    )

    @event.listens_for(engine, "connect")
    def _drop_privileges(dbapi_conn: Any, _record: Any) -> None:
        # Session-level, so even a raw connection never acts as the owner.
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET ROLE {APP_ROLE}")
            cur.execute("SET statement_timeout = '60s'")
            cur.execute("SET idle_in_transaction_session_timeout = '300s'")
        dbapi_conn.commit()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if not is_alive(dbapi_conn):
            raise DisconnectionError("the server closed the connection")  # the pool reconnects

    _engines[url] = engine
    return engine


def is_alive(dbapi_conn: Any) -> bool:
    """A liveness check without a round trip: an idle connection has nothing to read.

    A server that restarts or ends a backend says so ("terminating connection") or closes
    the socket, and either makes the socket readable. A ping per checkout would cost every
    request and task a round trip for the same answer.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        return False
    poller = select.poll()
    poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


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
