"""``portcullis files rescan [--tenant ID]``, in process through click's CliRunner, against the
real clamd, S3 and PostgreSQL: with ``--tenant`` only that tenant's due files are scanned
again, a file clamd now calls infected is quarantined and audited in its tenant's events as
the operator (actor ``cli``); an unknown tenant is one line and status 1, changing nothing.

Every run here names a tenant: a run over every tenant would rescan the whole suite's files.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import select, update

from devstack.clamd import MARKER_SIGNATURE, ClamdServer
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent
from portcullis.cli import main
from portcullis.clients.clamd import ClamdClient
from portcullis.db import system_session
from portcullis.storage.models import File, QuarantinedFile
from tests.support import media
from tests.support.factories import make_bucket, make_file, make_member, make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, ["files", "rescan", *(str(a) for a in args)])


def _scanned_at(file_id: uuid.UUID) -> datetime | None:
    with system_session() as db:
        return db.scalar(select(File.scanned_at).where(File.id == file_id))


def _age(file_id: uuid.UUID, days: int) -> datetime:
    at = datetime.now(UTC) - timedelta(days=days)
    with system_session() as db:
        db.execute(update(File).where(File.id == file_id)
                   .values(scanned_at=at, signature_version=0))
    return at


def test_rescan_of_one_tenant_quarantines_what_is_infected_as_the_operator(app: Flask) -> None:
    tenant = make_tenant("CLI Rescan Co")
    admin = make_member(tenant, Role.admin)
    bucket = make_bucket(admin)
    infected = make_file(admin, bucket, media.marker_png())
    clean = make_file(admin, bucket, media.png(color=(4, 4, 4)))
    _age(clean.id, 30)
    other = make_tenant("CLI Rescan Other Co")
    other_admin = make_member(other, Role.admin)
    elsewhere = make_file(other_admin, make_bucket(other_admin), media.marker_png())
    before = _scanned_at(elsewhere.id)

    result = _invoke("--tenant", tenant)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "rescanned 2 file(s): 1 quarantined, 0 without a verdict"]
    assert _scanned_at(infected.id) is None  # taken out
    rescanned = _scanned_at(clean.id)
    assert rescanned is not None and rescanned > datetime.now(UTC) - timedelta(minutes=5)
    assert _scanned_at(elsewhere.id) == before  # another tenant's: left alone
    with system_session() as db:
        assert db.get(QuarantinedFile, elsewhere.id) is None
        [event] = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.action == "file.quarantined")).all()
        assert db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == other, AuditEvent.action == "file.quarantined")).all() == []
    assert (event.actor_type, event.actor_id) == ("operator", "cli")
    assert event.target_id == str(infected.id)
    assert event.details["malware_name"] == MARKER_SIGNATURE


def test_rescan_refuses_an_unknown_tenant_in_one_line() -> None:
    tenant = make_tenant("CLI Rescan Unknown Co")
    admin = make_member(tenant, Role.admin)
    stored = make_file(admin, make_bucket(admin), media.marker_png())
    before = _scanned_at(stored.id)

    result = _invoke("--tenant", uuid.uuid4())

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.splitlines() == ["error: No such tenant."]
    assert _scanned_at(stored.id) == before


def test_rescan_help_names_the_option_and_the_rule() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    assert "--tenant" in result.output and "RESCAN_AFTER_DAYS" in result.output
    listed = CliRunner().invoke(main, ["files", "--help"])
    assert "rescan" in listed.output


def test_rescan_with_clamd_down_is_one_line_and_leaves_the_files_due(stack: LocalStack) -> None:
    tenant = make_tenant("CLI Rescan Down Co")
    admin = make_member(tenant, Role.admin)
    stored = make_file(admin, make_bucket(admin), media.marker_png())
    before = _scanned_at(stored.id)
    clamd: ClamdServer = stack["clamd"]
    clamd.stop()
    try:
        result = _invoke("--tenant", tenant)
    finally:
        clamd.start()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [
        "error: clamd is unavailable; the files not rescanned yet stay due"]
    assert _scanned_at(stored.id) == before
    assert ClamdClient(clamd.tcp_url, timeout=5).ping()
