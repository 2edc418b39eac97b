"""Row-level security under the least-privileged role: the second lock behind code scoping."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, ProgrammingError

from devstack.stack import LocalStack
from portcullis.accounts.models import Membership, User
from portcullis.audit.models import AuditEvent
from portcullis.audit.service import AuditRecord, audit_log
from portcullis.callers import Caller
from portcullis.db import system_session, tenant_session
from portcullis.db.engine import get_engine
from portcullis.jobs.models import Job
from portcullis.jobs.service import create_job
from portcullis.tenants.models import Tenant
from tests.support.factories import make_member, make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def _seed() -> tuple[uuid.UUID, uuid.UUID]:
    a, b = make_tenant("A"), make_tenant("B")
    for tenant in (a, b):
        make_member(tenant)
        with tenant_session(tenant) as db:
            create_job(db, tenant_id=tenant, kind="sample", task_name="tasks.default.none")
            audit_log.record(db, AuditRecord("sample.happened", Caller.system(tenant), tenant))
    return a, b


@pytest.mark.parametrize("model", [Tenant, User, Membership, Job, AuditEvent])
def test_unscoped_select_sees_only_the_current_tenant(model: type) -> None:
    a, b = _seed()
    with tenant_session(a) as db:
        # No WHERE clause at all: only row-level security stands between tenants here.
        rows = db.scalars(select(model)).all()
        assert current_user(db) == "portcullis_app"
    tenant_ids = {getattr(r, "tenant_id", getattr(r, "id", None)) for r in rows}
    assert tenant_ids == {a}
    assert b not in tenant_ids


@pytest.mark.parametrize("model", [Tenant, User, Membership, Job, AuditEvent])
def test_parallel_workers_keep_the_tenant_scope(model: type) -> None:
    """The scope function is PARALLEL SAFE: workers must inherit the tenant and the role."""
    a, _b = _seed()
    with tenant_session(a) as db:
        setting = db.execute(text(
            "SELECT name FROM pg_settings WHERE name IN "
            "('debug_parallel_query', 'force_parallel_mode')")).scalar_one()
        db.execute(text(f"SET LOCAL {setting} = on"))
        db.execute(text("SET LOCAL parallel_setup_cost = 0"))
        db.execute(text("SET LOCAL parallel_tuple_cost = 0"))
        table = model.__tablename__  # a model's own name, not input
        plan = "\n".join(db.execute(text(f"EXPLAIN SELECT * FROM {table}")).scalars())  # noqa: S608
        assert "Gather" in plan, plan
        rows = db.scalars(select(model)).all()
    tenant_ids = {getattr(r, "tenant_id", getattr(r, "id", None)) for r in rows}
    assert tenant_ids == {a}


def current_user(db: object) -> str:
    return db.execute(text("SELECT current_user")).scalar()  # type: ignore[attr-defined]


def test_writing_into_another_tenant_is_refused() -> None:
    a, b = _seed()
    with pytest.raises(ProgrammingError, match="row-level security"), tenant_session(a) as db:
        db.add(Job(tenant_id=b, kind="x", task_name="x", args={}, status="queued",
                   progress=0, attempts=0))


def test_updating_another_tenants_rows_touches_nothing() -> None:
    a, b = _seed()
    with tenant_session(a) as db:
        changed = db.execute(update(Tenant).where(Tenant.id == b).values(name="pwned"))
        assert changed.rowcount == 0
    with system_session() as db:
        assert db.get(Tenant, b).name == "B"


def test_no_tenant_set_sees_nothing() -> None:
    _seed()
    with get_engine().connect() as conn:  # a raw pooled connection, no scope at all
        assert conn.execute(text("SELECT current_user")).scalar() == "portcullis_app"
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 0


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'forged'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
])
def test_audit_rows_cannot_be_changed_or_deleted(statement: str) -> None:
    a, _ = _seed()
    for scope in (lambda: tenant_session(a), system_session):
        with pytest.raises(DBAPIError) as caught, scope() as db:
            db.execute(text(statement))
        assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)


def test_even_a_superuser_meets_the_append_only_trigger(stack: LocalStack) -> None:
    """Row-level security does not bind a superuser; the trigger still refuses the edit."""
    _seed()
    url = stack["postgres"].superuser_url().replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        for statement in ("UPDATE audit_events SET action = 'forged'",
                          "DELETE FROM audit_events", "TRUNCATE audit_events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()


def test_forced_rls_hides_rows_from_the_owner(stack: LocalStack) -> None:
    """A process that forgot to drop privileges sees nothing instead of everything."""
    _seed()
    url = stack["postgres"].url().replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)


def test_app_role_cannot_read_migrations_table_or_create_tables() -> None:
    with pytest.raises(ProgrammingError), tenant_session(make_tenant()) as db:
        db.execute(text("CREATE TABLE sneaky (id int)"))
