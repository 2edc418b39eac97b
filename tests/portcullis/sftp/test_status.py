"""An SFTPGo user is enabled exactly while its tenant is active: ``sync`` (beat, every 20 s)
takes a suspension or a reactivation to SFTPGo and, once done, leaves SFTPGo alone;
``repair_drift`` (every ten minutes) asks SFTPGo and puts back what changed behind the
product's back; SFTPGo being down loses nothing and the next run converges.

Accounts are made and provisioned through the product (``create_account`` and the
provisioning job, run here by hand); tenants are suspended through the tenants service the
operator route and billing's overdue rule use. The SFTPGo double is the shared stack's,
so every check looks at this test's own users and their requests only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import update

from devstack.sftpgo_double import SFTPGoDouble
from devstack.stack import LocalStack
from portcullis.callers import Caller, Role
from portcullis.clients.sftpgo import SFTPGoClient
from portcullis.db import system_session, tenant_session
from portcullis.errors import DependencyUnavailable
from portcullis.jobs import dispatch
from portcullis.jobs.models import Job, JobStatus
from portcullis.jobs.results import reveal
from portcullis.sftp import service as sftp
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from portcullis.tenants import service as tenants
from portcullis.tenants.models import TenantStatus
from tests.support.factories import make_bucket, make_member, make_operator_key, make_tenant
from tests.support.factories.billing import make_sftp_account


@dataclass(frozen=True)
class Account:
    tenant: uuid.UUID
    id: uuid.UUID
    username: str
    password: str
    caller: Caller

    @property
    def path(self) -> str:
        return f"/api/v2/users/{self.username}"


@pytest.fixture
def double(stack: LocalStack) -> Iterator[SFTPGoDouble]:
    """The shared double; whatever a test did to it, it is up again afterwards, and none of
    this test's exchanges broke SFTPGo's spec."""
    server = stack["sftpgo"]
    known = len(server.validation_errors)
    try:
        yield server
    finally:
        server.set_down(False)
    assert server.validation_errors[known:] == []


@pytest.fixture(autouse=True)
def _jobs_run_here_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provisioning runs here, once: its task is never sent, so a worker running beside
    the suite cannot provision the account again with a password of its own."""
    monkeypatch.setattr(dispatch, "send_now", lambda task_name, job_id: True)


@pytest.fixture
def operator() -> Caller:
    return Caller.operator(make_operator_key("sftp status tests").id)


def _provisioned(name: str) -> Account:
    tenant = make_tenant(name)
    manager = make_member(tenant, Role.manager)
    caller = Caller.user(tenant, manager.user_id, Role.manager)
    account, job = sftp.create_account(caller, make_bucket(tenant), "status")
    result = sftp.provision_job(tenant, {"account_id": str(account.id)})
    with system_session() as db:  # run by hand: no sweeper is to send it again
        db.execute(update(Job).where(Job.id == job).values(status=JobStatus.succeeded))
    password = reveal(result, once=True)["password"]
    assert isinstance(password, str) and password
    return Account(tenant, account.id, account.username, password, caller)


def _row(account: Account) -> SftpAccount:
    with tenant_session(account.tenant) as db:
        row = db.get(SftpAccount, account.id)
        assert row is not None
        db.expunge(row)
        return row


def _status(double: SFTPGoDouble, account: Account) -> int:
    return int(double.users[account.username]["status"])


def _calls(double: SFTPGoDouble, account: Account, method: str | None = None) -> int:
    """Requests the double received for this account's user (of ``method``)."""
    return sum(1 for r in double.requests
               if r.path == account.path and (method is None or r.method == method))


def _by_hand(double: SFTPGoDouble) -> httpx.Client:
    """SFTPGo's admin API used behind the product's back (its web UI, a script)."""
    token = httpx.get(f"{double.url}/api/v2/token",
                      auth=(double.admin_user, double.admin_password)).json()["access_token"]
    return httpx.Client(base_url=f"{double.url}/api/v2",
                        headers={"Authorization": f"Bearer {token}"})


def _set_status_by_hand(double: SFTPGoDouble, account: Account, status: int) -> None:
    with _by_hand(double) as admin:
        user = admin.get(f"/users/{account.username}").json()
        body = {k: v for k, v in user.items() if k not in {
            "id", "has_password", "created_at", "updated_at", "last_login",
            "last_password_change", "used_quota_size", "used_quota_files",
            "last_quota_update"}}
        body["status"] = status
        body["filesystem"]["s3config"]["access_secret"] = {"status": "Redacted"}
        assert admin.put(f"/users/{account.username}", json=body).status_code == 200
    assert _status(double, account) == status


def _suspend(operator: Caller, tenant: uuid.UUID) -> None:
    assert tenants.set_status(operator, tenant, TenantStatus.suspended).status == "suspended"


def _reactivate(operator: Caller, tenant: uuid.UUID) -> None:
    assert tenants.set_status(operator, tenant, TenantStatus.active).status == "active"


def _by_overdue_rule(suspend: bool) -> Callable[[Caller, uuid.UUID], None]:
    def change(_operator: Caller, tenant: uuid.UUID) -> None:
        with system_session() as db:
            if suspend:
                assert tenants.suspend_for_overdue(db, Caller.system(), tenant) is True
            else:
                assert tenants.reactivate_after_overdue(db, Caller.system(), tenant) is True

    return change


# --- sync ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suspend", "reactivate"), [
    (_suspend, _reactivate),
    (_by_overdue_rule(True), _by_overdue_rule(False)),
], ids=["operator", "overdue"])
def test_suspension_disables_the_user_and_reactivation_enables_it(
        double: SFTPGoDouble, operator: Caller,
        suspend: Callable[[Caller, uuid.UUID], None],
        reactivate: Callable[[Caller, uuid.UUID], None]) -> None:
    mine, neighbour = _provisioned("Status Co"), _provisioned("Status Neighbour Co")
    theirs = double.users[neighbour.username]
    assert _status(double, mine) == 1 and _row(mine).sftpgo_enabled is True
    assert double.can_log_in(mine.username, mine.password)
    neighbour_calls = _calls(double, neighbour)

    suspend(operator, mine.tenant)
    assert _status(double, mine) == 1  # the sweep is what tells SFTPGo
    assert sftp.sync_status() >= 1
    assert _status(double, mine) == 0
    assert not double.can_log_in(mine.username, mine.password)
    assert double.check_password(mine.username, mine.password)  # kept, for reactivation
    assert double.s3_access_secret(mine.username)  # the S3 secret survived the PUT
    assert double.disconnects(mine.username) == 1  # open sessions are cut
    assert _row(mine).sftpgo_enabled is False

    # Done once: the next runs neither ask SFTPGo about the account nor change it.
    calls = _calls(double, mine)
    sftp.sync_status()
    sftp.sync_status()
    assert _calls(double, mine) == calls
    assert _status(double, mine) == 0

    reactivate(operator, mine.tenant)
    sftp.sync_status()
    assert _status(double, mine) == 1
    assert double.can_log_in(mine.username, mine.password)
    assert _row(mine).sftpgo_enabled is True
    assert double.disconnects(mine.username) == 1  # enabling cuts nothing
    calls = _calls(double, mine)
    sftp.sync_status()
    assert _calls(double, mine) == calls

    # The other tenant's account was never touched, nor even looked at.
    assert _calls(double, neighbour) == neighbour_calls
    assert double.users[neighbour.username] == theirs
    assert double.can_log_in(neighbour.username, neighbour.password)
    assert _row(neighbour).sftpgo_enabled is True


def test_an_account_provisioned_while_suspended_starts_disabled(
        double: SFTPGoDouble, operator: Caller) -> None:
    tenant = make_tenant("Status Suspended First Co")
    manager = make_member(tenant, Role.manager)
    caller = Caller.user(tenant, manager.user_id, Role.manager)
    account, _job = sftp.create_account(caller, make_bucket(tenant), "status")
    _suspend(operator, tenant)
    result = sftp.provision_job(tenant, {"account_id": str(account.id)})
    made = Account(tenant, account.id, account.username, reveal(result, once=True)["password"],
                   caller)
    assert _status(double, made) == 0 and _row(made).sftpgo_enabled is False
    assert not double.can_log_in(made.username, made.password)
    calls = _calls(double, made)
    sftp.sync_status()
    assert _calls(double, made) == calls

    _reactivate(operator, tenant)
    sftp.sync_status()
    assert double.can_log_in(made.username, made.password)


def test_only_the_suspended_tenants_accounts_change(double: SFTPGoDouble,
                                                    operator: Caller) -> None:
    """Two accounts of the suspended tenant both go; the active tenant's stays."""
    first = _provisioned("Status Two Accounts Co")
    second_view, _job = sftp.create_account(first.caller, make_bucket(first.tenant), "second")
    result = sftp.provision_job(first.tenant, {"account_id": str(second_view.id)})
    second = Account(first.tenant, second_view.id, second_view.username,
                     reveal(result, once=True)["password"], first.caller)
    neighbour = _provisioned("Status Bystander Co")
    neighbour_puts = _calls(double, neighbour, "PUT")

    _suspend(operator, first.tenant)
    sftp.sync_status()
    assert [_status(double, a) for a in (first, second, neighbour)] == [0, 0, 1]
    assert [_row(a).sftpgo_enabled for a in (first, second, neighbour)] == [False, False, True]
    assert _calls(double, neighbour, "PUT") == neighbour_puts


# --- drift -------------------------------------------------------------------------------------


def test_a_status_changed_by_hand_is_put_back_by_the_drift_repair(
        double: SFTPGoDouble, operator: Caller) -> None:
    mine, neighbour = _provisioned("Drift Co"), _provisioned("Drift Neighbour Co")
    theirs = double.users[neighbour.username]
    neighbour_puts = _calls(double, neighbour, "PUT")

    # Disabled by hand while the tenant is active: sync trusts its record, repair asks.
    _set_status_by_hand(double, mine, 0)
    sftp.sync_status()
    assert _status(double, mine) == 0
    repaired = sftp.repair_drift()
    assert repaired.status_fixed >= 1 and repaired.checked >= 2
    assert _status(double, mine) == 1
    assert double.can_log_in(mine.username, mine.password)
    assert _row(mine).sftpgo_enabled is True

    # Enabled by hand while the tenant is suspended: disabled again, sessions cut.
    _suspend(operator, mine.tenant)
    sftp.sync_status()
    assert _status(double, mine) == 0
    disconnects = double.disconnects(mine.username)
    _set_status_by_hand(double, mine, 1)
    assert double.can_log_in(mine.username, mine.password)
    sftp.repair_drift()
    assert _status(double, mine) == 0
    assert not double.can_log_in(mine.username, mine.password)
    assert double.disconnects(mine.username) == disconnects + 1
    assert _row(mine).sftpgo_enabled is False
    assert double.s3_access_secret(mine.username)

    # Nothing left to repair: SFTPGo is asked, nothing is written.
    puts = _calls(double, mine, "PUT")
    sftp.repair_drift()
    assert _calls(double, mine, "PUT") == puts
    assert _calls(double, neighbour, "PUT") == neighbour_puts
    assert double.users[neighbour.username] == theirs


def test_a_user_deleted_by_hand_is_reported_missing_not_recreated(
        double: SFTPGoDouble, operator: Caller) -> None:
    """The product cannot recreate it (SFTPGo had the only copy of the password hash): the
    repair counts it missing, writes nothing, and the sweeps carry on."""
    mine = _provisioned("Drift Deleted User Co")
    with _by_hand(double) as admin:
        assert admin.delete(f"/users/{mine.username}").status_code == 200
    repaired = sftp.repair_drift()
    assert repaired.users_missing >= 1
    assert mine.username not in double.users
    assert _calls(double, mine, "POST") == 0
    row = _row(mine)
    assert row.status == SftpAccountStatus.active and row.sftpgo_enabled is True

    _suspend(operator, mine.tenant)
    sftp.sync_status()  # a 404 for this account does not stop the sweep
    assert mine.username not in double.users
    # Retired, so later tests' sweeps do not ask SFTPGo about it on every run.
    with tenant_session(mine.tenant) as db:
        db.execute(update(SftpAccount).where(SftpAccount.id == mine.id).values(
            status=SftpAccountStatus.deleted, bucket_id=None, sftpgo_enabled=None))


def test_a_deleted_accounts_user_is_never_recreated(double: SFTPGoDouble,
                                                    operator: Caller) -> None:
    mine = _provisioned("Drift Deleted Account Co")
    sftp.delete_account(mine.caller, mine.id)
    sftp.delete_job(mine.tenant, {"account_id": str(mine.id)})
    assert _row(mine).status == SftpAccountStatus.deleted
    assert mine.username not in double.users
    writes = _calls(double, mine, "PUT") + _calls(double, mine, "POST")

    _suspend(operator, mine.tenant)
    sftp.sync_status()
    _reactivate(operator, mine.tenant)
    sftp.sync_status()
    sftp.repair_drift()
    assert mine.username not in double.users
    assert _calls(double, mine, "PUT") + _calls(double, mine, "POST") == writes
    assert _row(mine).sftpgo_enabled is None


def test_a_failed_provisionings_leftover_user_is_removed(double: SFTPGoDouble) -> None:
    mine = _provisioned("Drift Leftover Co")
    with tenant_session(mine.tenant) as db:
        db.execute(update(SftpAccount).where(SftpAccount.id == mine.id)
                   .values(status=SftpAccountStatus.failed))
    repaired = sftp.repair_drift()
    assert repaired.users_removed >= 1
    assert mine.username not in double.users
    sftp.repair_drift()  # already gone: nothing to remove, nothing recreated
    assert mine.username not in double.users
    assert _calls(double, mine, "POST") == 0


# --- SFTPGo down ---------------------------------------------------------------------------


@pytest.mark.parametrize("refuse", [False, True], ids=["503", "refused"])
def test_sftpgo_down_loses_nothing_and_the_next_sync_converges(
        double: SFTPGoDouble, operator: Caller, refuse: bool) -> None:
    mine = _provisioned("Status Outage Co")
    _suspend(operator, mine.tenant)
    double.set_down(True, refuse=refuse)
    try:
        with pytest.raises(DependencyUnavailable):
            sftp.sync_status()
        with pytest.raises(DependencyUnavailable):
            sftp.repair_drift()
        assert _row(mine).sftpgo_enabled is True  # not recorded as done: still due
        assert tenants.get(mine.tenant).status == "suspended"
    finally:
        double.set_down(False)
    assert _status(double, mine) == 1
    sftp.sync_status()
    assert _status(double, mine) == 0
    assert _row(mine).sftpgo_enabled is False
    assert not double.can_log_in(mine.username, mine.password)


def test_an_outage_midway_keeps_what_was_done(double: SFTPGoDouble, operator: Caller,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each account is its own transaction: the ones done before SFTPGo went away stay
    done, the rest stay due."""
    done, cut = _provisioned("Status Midway Co"), _provisioned("Status Midway Later Co")
    _suspend(operator, done.tenant)
    _suspend(operator, cut.tenant)
    real = SFTPGoClient.set_enabled

    def failing_for_cut(self: SFTPGoClient, username: str, enabled: bool) -> bool:
        if username == cut.username:
            raise DependencyUnavailable("sftpgo", "set_enabled: ConnectError")
        return real(self, username, enabled)

    monkeypatch.setattr(SFTPGoClient, "set_enabled", failing_for_cut)
    with pytest.raises(DependencyUnavailable):
        sftp.sync_status()
    assert _status(double, done) == 0 and _row(done).sftpgo_enabled is False
    assert _status(double, cut) == 1 and _row(cut).sftpgo_enabled is True

    monkeypatch.setattr(SFTPGoClient, "set_enabled", real)
    sftp.sync_status()
    assert _status(double, cut) == 0 and _row(cut).sftpgo_enabled is False


# --- a missing user must not hold the others up ---------------------------------------------


def test_an_account_without_a_user_does_not_starve_the_sync(
        double: SFTPGoDouble, operator: Caller) -> None:
    """An active account whose SFTPGo user is gone is never recorded as synced, so it is
    due on every run; sorted oldest first, enough of them (``limit``, 200 in production)
    fill every batch and no suspension reaches SFTPGo through the 20-second sweep again.
    Here one such account, the oldest, against a batch of one."""
    tenant = make_tenant("Status Orphan Co")
    orphan = make_sftp_account(tenant, make_bucket(tenant))  # active, no SFTPGo user
    with system_session() as db:
        db.execute(update(SftpAccount).where(SftpAccount.id == orphan)
                   .values(created_at=datetime(2000, 1, 1, tzinfo=UTC)))
    try:
        mine = _provisioned("Status Starved Co")
        _suspend(operator, mine.tenant)
        for _ in range(3):
            sftp.sync_status(limit=1)
        assert _status(double, mine) == 0, (
            "the suspended tenant's user is still enabled: an account with no SFTPGo "
            "user takes the batch on every run")
    finally:
        with system_session() as db:
            db.execute(update(SftpAccount).where(SftpAccount.id == orphan)
                       .values(status=SftpAccountStatus.deleted, bucket_id=None))
