"""The raw cursors (the identity check's, the job runner's): scoped like a tenant or a system
session, and a database failure is DependencyUnavailable (a 503), never a bare driver
error (a 500)."""

from __future__ import annotations

import pytest

from portcullis.db.engine import get_engine
from portcullis.db.session import system_cursor, tenant_cursor
from portcullis.errors import DependencyUnavailable
from tests.support.factories import make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def test_an_unfiltered_query_sees_only_the_scoped_tenant() -> None:
    a, b = make_tenant("Cursor A"), make_tenant("Cursor B")
    with tenant_cursor(a) as cur:
        seen = {row.id for row in cur.execute("SELECT id FROM tenants").fetchall()}
        assert cur.execute("SELECT current_user AS who").fetchone().who == "portcullis_app"
    assert seen == {a}
    assert b not in seen


def test_the_scope_ends_with_the_transaction() -> None:
    with tenant_cursor(make_tenant("Cursor C")) as cur:
        cur.execute("SELECT 1")
    with tenant_cursor(make_tenant("Cursor D")) as cur:
        pass
    with get_engine().connect() as connection:  # any pooled connection, outside a scope
        raw = connection.connection.driver_connection
        row = raw.execute("SELECT current_setting('app.tenant_id', true)").fetchone()
        raw.rollback()
    assert row[0] in (None, "")


def test_a_timeout_is_dependency_unavailable_and_the_next_check_works() -> None:
    tenant = make_tenant("Cursor E")
    with pytest.raises(DependencyUnavailable), tenant_cursor(tenant) as cur:
        cur.execute("SET LOCAL statement_timeout = '10ms'")
        cur.execute("SELECT pg_sleep(1)").fetchone()
    with tenant_cursor(tenant) as cur:
        assert cur.execute("SELECT 1 AS one").fetchone().one == 1


def test_the_system_cursor_is_scoped_like_a_system_session() -> None:
    a, b = make_tenant("Cursor F"), make_tenant("Cursor G")
    with system_cursor() as cur:
        assert cur.execute("SELECT current_user AS who").fetchone().who == "portcullis_system"
        seen = {row.id for row in cur.execute("SELECT id FROM tenants").fetchall()}
    assert {a, b} <= seen
    with system_cursor() as cur:
        cur.execute("UPDATE tenants SET name = 'Cursor F2' WHERE id = %(id)s", {"id": a})
    with system_cursor() as cur:
        assert cur.execute("SELECT name FROM tenants WHERE id = %(id)s",
                           {"id": a}).fetchone().name == "Cursor F2"
