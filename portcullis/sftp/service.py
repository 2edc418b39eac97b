"""SFTP accounts' public face: what the front door, the tasks and other domains call.

An account is one SFTPGo user, jailed to a key prefix of its own in the quarantine bucket,
feeding one bucket of its tenant. Its username and prefix are derived by the product, never
taken from the client. Provisioning, rotation and deletion are jobs on the ``sftp`` queue,
each safe to repeat: SFTPGo is brought to the state the database says (``provisioning``).
Beat sweeps take in what the accounts' clients drop (``dropbox``) and keep each SFTPGo
user enabled exactly while its tenant is active (``status``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from portcullis.audit import service as audit
from portcullis.callers import Caller
from portcullis.db import tenant_session
from portcullis.errors import Conflict, NotFound
from portcullis.jobs import service as jobs
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.sftp import dropbox, provisioning, status
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from portcullis.sftp.provisioning import DELETE_TASK, PROVISION_TASK, ROTATE_TASK, Failed
from portcullis.storage import service as storage

__all__ = ["DELETE_TASK", "PROVISION_TASK", "ROTATE_TASK", "AccountView", "Failed",
           "accounts_per_tenant", "create_account", "delete_account", "delete_job",
           "list_accounts", "provision_job", "repair_drift", "rotate_job", "rotate_password",
           "sweep_drop_boxes", "sync_status"]


@dataclass(frozen=True)
class AccountView:
    id: uuid.UUID
    username: str
    bucket_id: uuid.UUID | None  # None only once deleted (never listed)
    label: str
    status: str
    created_at: datetime


def _view(account: SftpAccount) -> AccountView:
    return AccountView(account.id, account.username, account.bucket_id, account.label,
                       account.status, account.created_at)


def _tenant(caller: Caller) -> uuid.UUID:
    if caller.tenant_id is None:
        raise NotFound("SFTP account")
    return caller.tenant_id


def _own(db: Session, tenant_id: uuid.UUID, account_id: uuid.UUID) -> SftpAccount:
    account = db.get(SftpAccount, account_id, with_for_update=True)
    if (account is None or account.tenant_id != tenant_id
            or account.status == SftpAccountStatus.deleted):
        raise NotFound("SFTP account")
    return account


def _job(db: Session, caller: Caller, account: SftpAccount, kind: str, task: str) -> uuid.UUID:
    return jobs.create_job(db, tenant_id=account.tenant_id, kind=kind, task_name=task,
                           args={"account_id": str(account.id)},
                           created_by_user_id=caller.user_id).id


def create_account(caller: Caller, bucket_id: uuid.UUID, label: str
                   ) -> tuple[AccountView, uuid.UUID]:
    """A new account feeding ``bucket_id`` (a bucket the caller may read, else 404) and its
    provisioning job."""
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        if not storage.can_read_bucket(db, caller, bucket_id):
            raise NotFound("bucket")
        account_id = uuid.uuid4()
        account = SftpAccount(id=account_id, tenant_id=tenant_id, bucket_id=bucket_id,
                              username=f"pc-{account_id.hex}", label=label,
                              key_prefix=f"sftp/{account_id.hex}/",
                              status=SftpAccountStatus.provisioning)
        db.add(account)
        db.flush()
        job_id = _job(db, caller, account, "sftp.provision", PROVISION_TASK)
        audit.record(db, caller, "sftp_account.created",
                     audit.Target("sftp_account", str(account_id)),
                     {"username": account.username, "bucket_id": str(bucket_id),
                      "label": label, "job_id": str(job_id)})
        return _view(account), job_id


def list_accounts(caller: Caller, page: PageRequest) -> Page[AccountView]:
    """The tenant's accounts, newest first; a deleted one leaves the list."""
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        found = keyset(db, select(SftpAccount).where(
            SftpAccount.tenant_id == tenant_id,
            SftpAccount.status != SftpAccountStatus.deleted),
            [SftpAccount.created_at, SftpAccount.id], [datetime, uuid.UUID], page)
        return found.map(_view)


def rotate_password(caller: Caller, account_id: uuid.UUID) -> uuid.UUID:
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        account = _own(db, tenant_id, account_id)
        if account.status != SftpAccountStatus.active:
            raise Conflict("invalid_state", f"The account is {account.status}: only an "
                                            "active account's password can be rotated.")
        job_id = _job(db, caller, account, "sftp.rotate", ROTATE_TASK)
        audit.record(db, caller, "sftp_account.password_rotated",
                     audit.Target("sftp_account", str(account.id)),
                     {"username": account.username, "job_id": str(job_id)})
        return job_id


def delete_account(caller: Caller, account_id: uuid.UUID) -> uuid.UUID:
    """Mark the account ``deleting``; its job removes the SFTPGo user and what is left
    under its prefix. The username is never given again."""
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        account = _own(db, tenant_id, account_id)
        account.status = SftpAccountStatus.deleting
        job_id = _job(db, caller, account, "sftp.delete", DELETE_TASK)
        audit.record(db, caller, "sftp_account.deleted",
                     audit.Target("sftp_account", str(account.id)),
                     {"username": account.username, "job_id": str(job_id)})
        return job_id


# --- the jobs and sweeps (workers, beat) -----------------------------------------------------

provision_job = provisioning.provision_job
rotate_job = provisioning.rotate_job
delete_job = provisioning.delete_job
sweep_drop_boxes = dropbox.sweep
sync_status = status.sync
repair_drift = status.repair_drift


# --- for other domains -------------------------------------------------------------------------


def accounts_per_tenant() -> Select[uuid.UUID, int]:
    """``(tenant_id, accounts)`` for every tenant with an account that exists in SFTPGo
    (active, or not yet deleted), as a select another domain may insert from in one
    statement."""
    return (select(SftpAccount.tenant_id, func.count().label("accounts"))
            .where(SftpAccount.status.in_((SftpAccountStatus.active,
                                           SftpAccountStatus.deleting)))
            .group_by(SftpAccount.tenant_id))
