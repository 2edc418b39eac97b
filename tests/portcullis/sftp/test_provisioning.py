"""Provisioning races a deletion: whichever comes first, no SFTPGo login outlives an
account that was deleted, and a bad key prefix never reaches the object store."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from devstack.stack import LocalStack
from portcullis.callers import Caller, Role
from portcullis.clients.sftpgo import SFTPGoClient
from portcullis.db import tenant_session
from portcullis.sftp import service as sftp
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from tests.support.factories import make_bucket, make_member, make_tenant


def _account() -> tuple[uuid.UUID, uuid.UUID, str, Caller]:
    tenant = make_tenant("SFTP Race Co")
    manager = make_member(tenant, Role.manager)
    caller = Caller.user(tenant, manager.user_id, Role.manager)
    account, _job = sftp.create_account(caller, make_bucket(tenant), "race")
    return tenant, account.id, account.username, caller


def _status_of(tenant: uuid.UUID, account_id: uuid.UUID) -> str:
    with tenant_session(tenant) as db:
        row = db.get(SftpAccount, account_id)
        assert row is not None
        return row.status


def _status(tenant: uuid.UUID, account_id: uuid.UUID, status: SftpAccountStatus) -> None:
    with tenant_session(tenant) as db:
        row = db.get(SftpAccount, account_id)
        assert row is not None
        row.status = status


def test_a_delete_during_provisioning_waits_and_leaves_no_login(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provisioning holds the account's row lock while it talks to SFTPGo: a delete
    asked for meanwhile waits for it, then its job removes the user just made."""
    tenant, account_id, username, caller = _account()
    create = SFTPGoClient.create_user
    deleter: dict[str, Any] = {}

    def create_while_deleted(self: SFTPGoClient, *args: Any, **kwargs: Any) -> Any:
        made = create(self, *args, **kwargs)
        thread = threading.Thread(target=lambda: deleter.setdefault(
            "job", sftp.delete_account(caller, account_id)))
        thread.start()
        thread.join(1.0)
        deleter["waited"] = thread.is_alive()
        deleter["thread"] = thread
        return made

    monkeypatch.setattr(SFTPGoClient, "create_user", create_while_deleted)
    sftp.provision_job(tenant, {"account_id": str(account_id)})
    deleter["thread"].join(10)
    assert deleter["waited"], "the delete did not wait for the provisioning"
    assert _status_of(tenant, account_id) == SftpAccountStatus.deleting
    assert username in stack["sftpgo"].users
    sftp.delete_job(tenant, {"account_id": str(account_id)})
    assert username not in stack["sftpgo"].users
    assert _status_of(tenant, account_id) == SftpAccountStatus.deleted


def test_a_provisioning_after_the_delete_makes_no_login(stack: LocalStack) -> None:
    tenant, account_id, username, caller = _account()
    sftp.delete_account(caller, account_id)
    with pytest.raises(sftp.Failed) as failed:
        sftp.provision_job(tenant, {"account_id": str(account_id)})
    assert failed.value.code == "account_gone"
    assert username not in stack["sftpgo"].users


def test_a_prefix_that_is_not_the_accounts_own_is_refused(stack: LocalStack) -> None:
    tenant, account_id, _username, _caller = _account()
    with tenant_session(tenant) as db:
        row = db.get(SftpAccount, account_id)
        assert row is not None
        row.key_prefix = "sftp/"
        row.status = SftpAccountStatus.deleting
    with pytest.raises(sftp.Failed) as failed:
        sftp.delete_job(tenant, {"account_id": str(account_id)})
    assert failed.value.code == "bad_prefix"
