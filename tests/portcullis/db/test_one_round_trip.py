"""The identity checks' one-round-trip statements: scoped exactly like a tenant session,
the scope ends with the message, prepared statements lost on the server (psycopg's
rollback deallocates every one) or already there are recovered from, and only typed values
become literals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

from config import get_settings
from portcullis.db import session as db_session
from portcullis.db.roles import APP_ROLE
from portcullis.db.session import _literal, one_round_trip, prepared, tenant_steps
from tests.support.factories import make_tenant

pytestmark = pytest.mark.usefixtures("stack")

TENANTS = prepared("test_tenants", text("SELECT id, current_user AS who FROM tenants"))
SETTING = prepared("test_setting", text(
    "SELECT current_setting('app.tenant_id', true) AS tenant, current_user AS who"))


@pytest.fixture
def one_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """Every checkout is the same connection (as the app role), so its server-side state
    can be tampered with between calls."""
    url = get_settings().DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _as_app(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET ROLE {APP_ROLE}")
        dbapi_conn.commit()

    monkeypatch.setattr(db_session, "get_engine", lambda: engine)
    yield engine
    engine.dispose()


def test_the_statement_sees_only_the_scoped_tenant_and_the_scope_ends() -> None:
    a, b = make_tenant("Trip A"), make_tenant("Trip B")
    rows = one_round_trip(tenant_steps(a, TENANTS, {}))
    assert {r.id for r in rows} == {a} and b not in {r.id for r in rows}
    assert {r.who for r in rows} == {APP_ROLE}
    after = one_round_trip([(SETTING, {})])  # no scope step: nothing left over
    assert after[0].tenant in ("", None)


def test_lost_or_unknown_prepared_statements_are_recovered(one_connection: Engine) -> None:
    tenant = make_tenant("Trip C")
    assert [r.id for r in one_round_trip(tenant_steps(tenant, TENANTS, {}))] == [tenant]
    with one_connection.connect() as connection:
        connection.exec_driver_sql("DEALLOCATE ALL")  # what psycopg's rollback may do
        connection.commit()
    assert [r.id for r in one_round_trip(tenant_steps(tenant, TENANTS, {}))] == [tenant]
    with one_connection.connect() as connection:
        connection.connection.info["portcullis_prepared"].clear()  # forgot, server has them
    assert [r.id for r in one_round_trip(tenant_steps(tenant, TENANTS, {}))] == [tenant]


def test_only_typed_values_become_literals() -> None:
    tenant = uuid.uuid4()
    assert _literal(tenant) == f"'{tenant}'::uuid"
    assert _literal(b"\x00'\\") == "decode('00275c', 'hex')"
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert _literal(when) == "'2026-01-02T03:04:05.000006+00:00'::timestamptz"
    assert _literal("app.tenant_id") == "'app.tenant_id'"
    assert (_literal(True), _literal(False), _literal(51)) == ("true", "false", "51")
    for bad in ("x'; DROP TABLE tenants; --", "a b", datetime(2026, 1, 2), 3.5, None):
        with pytest.raises(TypeError):
            _literal(bad)
    with pytest.raises(TypeError):
        tenant_steps("not-a-uuid", TENANTS, {})  # type: ignore[arg-type]
