"""Provisioning races a deletion: whichever commits first, no SFTPGo login outlives an
account that was deleted, and a bad key prefix never reaches the object store."""

from __future__ import annotations

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


def _account() -> tuple[uuid.UUID, uuid.UUID, str]:
    tenant = make_tenant("SFTP Race Co")
    manager = make_member(tenant, Role.manager)
    caller = Caller.user(tenant, manager.user_id, Role.manager)
    account, _job = sftp.create_account(caller, make_bucket(tenant), "race")
    return tenant, account.id, account.username


def _status(tenant: uuid.UUID, account_id: uuid.UUID, status: SftpAccountStatus) -> None:
    with tenant_session(tenant) as db:
        row = db.get(SftpAccount, account_id)
        assert row is not None
        row.status = status


def test_a_delete_during_provisioning_leaves_no_login(stack: LocalStack,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, account_id, username = _account()
    create = SFTPGoClient.create_user

    def create_then_deleted(self: SFTPGoClient, *args: Any, **kwargs: Any) -> Any:
        made = create(self, *args, **kwargs)
        _status(tenant, account_id, SftpAccountStatus.deleted)  # the delete job finished
        return made

    monkeypatch.setattr(SFTPGoClient, "create_user", create_then_deleted)
    with pytest.raises(sftp.Failed) as failed:
        sftp.provision_job(tenant, {"account_id": str(account_id)})
    assert failed.value.code == "account_gone"
    assert username not in stack["sftpgo"].users


def test_a_prefix_that_is_not_the_accounts_own_is_refused(stack: LocalStack) -> None:
    tenant, account_id, _username = _account()
    with tenant_session(tenant) as db:
        row = db.get(SftpAccount, account_id)
        assert row is not None
        row.key_prefix = "sftp/"
        row.status = SftpAccountStatus.deleting
    with pytest.raises(sftp.Failed) as failed:
        sftp.delete_job(tenant, {"account_id": str(account_id)})
    assert failed.value.code == "bad_prefix"
