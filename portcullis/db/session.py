"""Sessions scoped to one tenant or, explicitly, to the system.

Each transaction a session begins is re-scoped (``SET LOCAL``), so a commit in the middle
of a unit of work never leaves the next transaction unscoped. Code still filters by tenant;
row-level security is the second lock.
"""

from __future__ import annotations

import re
import uuid
from collections import namedtuple
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg.adapt import Transformer
from psycopg.rows import namedtuple_row
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool
from sqlalchemy.sql.elements import ClauseElement

from portcullis.db.engine import get_engine
from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE, TENANT_SETTING
from portcullis.errors import DependencyUnavailable

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
    raw = connection.connection.driver_connection
    if (role in (APP_ROLE, SYSTEM_ROLE) and (tenant is None or isinstance(tenant, uuid.UUID))
            and isinstance(raw, psycopg.Connection)
            and raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
        # BEGIN and the scope in one round trip (psycopg would send its BEGIN on its own
        # first): one simple query, explicit BEGIN, values that are constants or a UUID.
        # psycopg stays in autocommit mode until the connection goes back to the pool
        # (_back_to_transactions below); COMMIT and ROLLBACK are sent as usual, as
        # psycopg decides them by the server's transaction status.
        raw.autocommit = True
        connection.exec_driver_sql(
            f"BEGIN; SELECT set_config('role', '{role}', true), "
            f"set_config('{TENANT_SETTING}', '{tenant or ''}', true)")
        return
    connection.execute(_SCOPE, {"role": role, "name": TENANT_SETTING,
                                "value": str(tenant) if tenant else ""})


@event.listens_for(Pool, "checkin")
def _back_to_transactions(dbapi_connection: Any, _record: Any) -> None:
    """Every pooled connection is handed out in psycopg's default (non-autocommit) mode."""
    if (isinstance(dbapi_connection, psycopg.Connection) and dbapi_connection.autocommit
            and not (dbapi_connection.closed or dbapi_connection.broken)
            and dbapi_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
        dbapi_connection.autocommit = False


@contextmanager
def _unit_of_work(role: str, tenant_id: uuid.UUID | None) -> Iterator[Session]:
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


def compiled_sql(statement: ClauseElement) -> str:
    """``statement`` as the driver's SQL text, named ``%(param)s`` placeholders."""
    return str(statement.compile(dialect=psycopg_dialect()))  # type: ignore[no-untyped-call]


_SCOPE_SQL = compiled_sql(_SCOPE)  # the same scope, for the raw cursor


@contextmanager
def tenant_cursor(tenant_id: uuid.UUID) -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor in one pipelined transaction, scoped exactly like ``tenant_session``.

    The implicit BEGIN, the scope and the first query leave in one round trip and COMMIT in
    another. Rows are named tuples. A lost or timed-out database is DependencyUnavailable
    (a 503), as it is through SQLAlchemy. (The per-request identity checks use
    ``one_round_trip``.)
    """
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_id must be a UUID from a verified identity")
    with _pipelined_cursor(APP_ROLE, str(tenant_id)) as cur:
        yield cur


@contextmanager
def system_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """``tenant_cursor``'s twin scoped like ``system_session``: for the few statements run
    on every job (claim, heartbeat, outcome), where a session's own bookkeeping costs more
    than the statement."""
    with _pipelined_cursor(SYSTEM_ROLE, "") as cur:
        yield cur


@contextmanager
def _pipelined_cursor(role: str, tenant: str) -> Iterator[psycopg.Cursor[Any]]:
    with get_engine().connect() as connection:
        raw: Any = connection.connection.driver_connection
        try:
            with raw.pipeline(), raw.cursor(row_factory=namedtuple_row) as cur:
                cur.execute(_SCOPE_SQL, {"role": role, "name": TENANT_SETTING,
                                         "value": tenant})
                yield cur
                raw.commit()
        except psycopg.OperationalError as exc:
            if raw.broken or raw.closed:
                connection.invalidate()
            raise DependencyUnavailable("database", type(exc).__name__) from exc
        # Any other exception: returning the connection to the pool rolls it back.


@dataclass(frozen=True)
class Prepared:
    """A statement that ``one_round_trip`` prepares by name on each connection running it
    (on that connection's first use), so PostgreSQL plans it once per connection instead of
    on every request."""

    name: str
    sql: str
    params: tuple[str, ...]  # bind names in $1, $2, ... order


def prepared(name: str, statement: ClauseElement) -> Prepared:
    compiled = statement.compile(
        dialect=psycopg_dialect(paramstyle="numeric_dollar"))  # type: ignore[no-untyped-call]
    return Prepared(name, str(compiled), tuple(getattr(compiled, "positiontup", None) or ()))


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.:-]*")


def _literal(value: object) -> str:
    """A parameter as an SQL literal, for the few types the prepared statements bind.
    Built from typed values only (a UUID, an aware datetime, bytes as hex, a boolean, an
    integer, our own constants), so nothing a client sent is ever pasted as text."""
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, bytes):
        return f"decode('{value.hex()}', 'hex')"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str) and _PLAIN_TEXT.fullmatch(value):
        return f"'{value}'"
    raise TypeError(f"no literal for {type(value).__name__} in a prepared identity check")


def _execute(statement: Prepared, params: dict[str, Any]) -> str:
    args = ", ".join([_literal(params[name]) for name in statement.params])
    return f"EXECUTE {statement.name}({args})" if args else f"EXECUTE {statement.name}"


Step = tuple[Prepared, dict[str, Any]]

# Errors after which our prepared statements are prepared afresh: deallocated meanwhile
# (psycopg's rollback deallocates every prepared statement), prepared by a run whose
# answer was lost, or planned before a migration changed a column's type.
_STALE_PREPARED = (psycopg.errors.InvalidSqlStatementName,
                   psycopg.errors.DuplicatePreparedStatement,
                   psycopg.errors.FeatureNotSupported)


def one_round_trip(steps: list[Step]) -> list[Any]:
    """The rows of the last of ``steps`` (prepared statements and their parameters), all
    sent as one simple query: one round trip, no planning after a connection's first use.

    PostgreSQL runs the statements of one simple query as one implicit transaction: a
    ``set_config(..., true)`` (SET LOCAL) in an early step lasts until the last has run, and
    an error anywhere rolls all of it back. A statement that is not prepared on this
    connection yet is prepared in the same message. Rows are named tuples. A lost or
    timed-out database is DependencyUnavailable (a 503).

    The message goes straight to libpq (``PQexec``, which releases the GIL while it waits)
    on a pooled connection: psycopg's cursor machinery, and switching the connection to
    autocommit and back (what keeps psycopg from sending a ``BEGIN`` first), cost more than
    the rest of an identity check. The connection is idle again when it returns to the pool.
    """
    pooled = get_engine().raw_connection()
    try:
        raw: Any = pooled.driver_connection
        info = pooled.info
        known: set[str] = info.setdefault("portcullis_prepared", set())
        try:
            for attempt in (1, 2):
                new = {s.name: s for s, _ in steps if s.name not in known}
                script = "; ".join(
                    [*(f"PREPARE {s.name} AS {s.sql}" for s in new.values()),
                     *(_execute(s, p) for s, p in steps)])
                try:
                    rows = _exec(raw, info, steps[-1][0], script)
                except _STALE_PREPARED:
                    if attempt == 2:
                        raise
                    _forget(raw, {s.name for s, _ in steps})
                    known.difference_update(s.name for s, _ in steps)
                    for s, _ in steps:
                        _ROW_CLASSES.pop(s.name, None)
                    continue
                known.update(new)
                return rows
            raise AssertionError("unreachable")
        except psycopg.OperationalError as exc:
            if raw.broken or raw.closed:
                pooled.invalidate()
            raise DependencyUnavailable("database", type(exc).__name__) from exc
    finally:
        pooled.close()


def _exec(raw: psycopg.Connection[Any], info: dict[str, Any], last: Prepared,
          script: str) -> list[Any]:
    result = raw.pgconn.exec_(script.encode())
    status = result.status
    if status == psycopg.pq.ExecStatus.TUPLES_OK:
        transformer = info.get("portcullis_transformer")
        if transformer is None:
            transformer = info["portcullis_transformer"] = Transformer(raw)
        transformer.set_pgresult(result)
        return transformer.load_rows(0, result.ntuples, _row_class(last, result)._make)
    if status == psycopg.pq.ExecStatus.COMMAND_OK:
        return []
    raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


_ROW_CLASSES: dict[str, type[Any]] = {}  # by statement name (re-prepared: forgotten)


def _row_class(statement: Prepared, result: psycopg.pq.abc.PGresult) -> type[Any]:
    cls = _ROW_CLASSES.get(statement.name)
    if cls is None or len(cls._fields) != result.nfields:
        names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
        cls = _ROW_CLASSES[statement.name] = namedtuple("Row", names, rename=True)
    return cls


def _forget(raw: psycopg.Connection[Any], names: set[str]) -> None:
    for name in sorted(names):  # one of our own constant names; absent ones just fail
        raw.pgconn.exec_(f"DEALLOCATE {name}".encode())
    if raw.pgconn.status == psycopg.pq.ConnStatus.BAD:
        raise psycopg.OperationalError("the connection was lost")


_SCOPE_PREPARED = prepared("portcullis_scope", _SCOPE)


def tenant_steps(tenant_id: uuid.UUID, statement: Prepared,
                 params: dict[str, Any]) -> list[Step]:
    """``statement`` in ``tenant_id``'s scope, for ``one_round_trip``: the same scope as
    ``tenant_session`` (``SET LOCAL ROLE portcullis_app`` and the tenant)."""
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_id must be a UUID from a verified identity")
    return [(_SCOPE_PREPARED, {"role": APP_ROLE, "name": TENANT_SETTING,
                               "value": str(tenant_id)}), (statement, params)]


_SET_ROLE = prepared("portcullis_set_role", text("SELECT set_config('role', :role, true)"))


def owner_steps(tenant_lookup: Prepared, statement: Prepared,
                params: dict[str, Any]) -> list[Step]:
    """``statement`` in the scope of the tenant that ``tenant_lookup`` sets, for
    ``one_round_trip``: for a credential whose tenant is not known yet (an access key's
    digest), what ``accounts.lookup`` (a system session) and then ``tenant_session`` do,
    in one transaction. ``tenant_lookup`` runs as the system role and must set
    ``app.tenant_id`` to the one tenant it finds, or to '' (then the app role sees
    nothing)."""
    return [(_SET_ROLE, {"role": SYSTEM_ROLE}), (tenant_lookup, params),
            (_SET_ROLE, {"role": APP_ROLE}), (statement, params)]
