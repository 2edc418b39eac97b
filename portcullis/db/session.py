"""Sessions scoped to one tenant or, explicitly, to the system.

Each transaction a session begins is re-scoped (``SET LOCAL``), so a commit in the middle
of a unit of work never leaves the next transaction unscoped. Code still filters by tenant;
row-level security is the second lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Executable, event, text
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session, sessionmaker

from portcullis.db.engine import get_engine
from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE, TENANT_SETTING

_factory = sessionmaker(expire_on_commit=False)
# One round trip: set_config('role', ...) is SET LOCAL ROLE.
_SCOPE = text("SELECT set_config('role', :role, true) AS role, "
              "set_config(:name, :value, true) AS tenant")


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, _tx: Any, connection: Any) -> None:
    role = session.info.get("role")
    if role is None:
        return
    tenant = session.info.get("tenant_id")
    connection.execute(_SCOPE, {"role": role, "name": TENANT_SETTING,
                                "value": str(tenant) if tenant else ""})


@contextmanager
def _unit_of_work(role: str, tenant_id: uuid.UUID | None) -> Iterator[Session]:
    import portcullis.models  # noqa: F401 - mappers need every table their foreign keys name

    session = _factory(bind=get_engine())
    session.info["role"] = role
    session.info["tenant_id"] = tenant_id
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def tenant_session(tenant_id: uuid.UUID) -> AbstractContextManager[Session]:
    """A unit of work that can see and write only ``tenant_id``'s rows; commits on success."""
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_id must be a UUID from a verified identity")
    return _unit_of_work(APP_ROLE, tenant_id)


def system_session() -> AbstractContextManager[Session]:
    """A cross-tenant unit of work for sweepers, billing runs and chain checks only."""
    return _unit_of_work(SYSTEM_ROLE, None)


def compiled_sql(statement: Executable) -> str:
    """``statement`` as the driver's SQL text, named ``%(param)s`` placeholders."""
    return str(statement.compile(dialect=psycopg_dialect()))


_SCOPE_SQL = compiled_sql(_SCOPE)  # the same scope, for the raw cursor


@contextmanager
def tenant_cursor(tenant_id: uuid.UUID) -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor in one pipelined transaction, scoped exactly like ``tenant_session``.

    For the per-request identity check only, the hottest query in the system: the implicit
    BEGIN, the scope and the first query leave in one round trip and COMMIT in another,
    where an ORM session takes four. Rows are named tuples. A lost or timed-out database
    is DependencyUnavailable (a 503), as it is through SQLAlchemy.
    """
    from workers.errors import DependencyUnavailable

    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_id must be a UUID from a verified identity")
    with get_engine().connect() as connection:
        raw = connection.connection.driver_connection
        try:
            with raw.pipeline(), raw.cursor(row_factory=namedtuple_row) as cur:
                cur.execute(_SCOPE_SQL, {"role": APP_ROLE, "name": TENANT_SETTING,
                                         "value": str(tenant_id)})
                yield cur
                raw.commit()
        except psycopg.OperationalError as exc:
            if raw.broken or raw.closed:
                connection.invalidate()
            raise DependencyUnavailable("database", type(exc).__name__) from exc
        # Any other exception: returning the connection to the pool rolls it back.
