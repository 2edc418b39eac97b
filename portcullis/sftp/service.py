"""SFTP accounts' public face: what the front door, the tasks and other domains call.

An account is one SFTPGo user, jailed to a key prefix of its own in the quarantine bucket,
feeding one bucket of its tenant. Its username and prefix are derived by the product, never
taken from the client. Provisioning, rotation and deletion are jobs on the ``sftp`` queue,
each safe to repeat: SFTPGo is brought to the state the database says. The password is
generated here (192 bits), SFTPGo gets only its bcrypt hash, and the job's result shows it
to the account's creator once.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bcrypt
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.audit import service as audit
from portcullis.callers import Caller
from portcullis.clients.object_store import ObjectStore
from portcullis.clients.sftpgo import S3Target, SFTPGoClient, SFTPGoError
from portcullis.db import tenant_session
from portcullis.errors import Conflict, NotFound
from portcullis.jobs import service as jobs
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from portcullis.storage import service as storage

__all__ = ["DELETE_TASK", "PROVISION_TASK", "ROTATE_TASK", "AccountView", "Failed",
           "accounts_per_tenant", "create_account", "delete_account", "delete_job",
           "list_accounts", "provision_job", "rotate_job", "rotate_password"]

PROVISION_TASK = "tasks.sftp.provision_account"
ROTATE_TASK = "tasks.sftp.rotate_password"
DELETE_TASK = "tasks.sftp.delete_account"
PASSWORD_BYTES = 24  # 192 bits of entropy, as URL-safe text


class Failed(Exception):
    """A job that cannot succeed however often it runs (SFTPGo refused it for good)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class AccountView:
    id: uuid.UUID
    username: str
    bucket_id: uuid.UUID
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


# --- the jobs ---------------------------------------------------------------------------------


def _load(tenant_id: uuid.UUID, account_id: uuid.UUID) -> SftpAccount | None:
    with tenant_session(tenant_id) as db:
        account = db.get(SftpAccount, account_id)
        if account is not None:
            db.expunge(account)
        return account


def _set_status(tenant_id: uuid.UUID, account_id: uuid.UUID, status: SftpAccountStatus,
                only_from: tuple[SftpAccountStatus, ...]) -> None:
    with tenant_session(tenant_id) as db:
        account = db.get(SftpAccount, account_id, with_for_update=True)
        if account is not None and account.status in only_from:
            account.status = status


def _prefix(account: SftpAccount) -> str:
    """The account's own prefix, checked against its id: a bad row can never name (and
    delete) another account's or the whole bucket's objects."""
    expected = f"sftp/{account.id.hex}/"
    if account.key_prefix != expected:
        raise Failed("bad_prefix", "The account's key prefix is not its own.")
    return expected


def _new_password() -> tuple[str, str]:
    """The password and the bcrypt hash SFTPGo stores as is."""
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    rounds = get_settings().BCRYPT_ROUNDS
    return password, bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _credentials(account: SftpAccount, password: str) -> dict[str, Any]:
    settings = get_settings()
    return {"username": account.username, "password": jobs.seal_result(password, once=True),
            "host": settings.SFTP_PUBLIC_HOST, "port": settings.SFTP_PUBLIC_PORT}


def _refused(exc: SFTPGoError) -> Failed:
    return Failed("sftpgo_refused", f"SFTPGo refused {exc.operation} (HTTP {exc.status}).")


def provision_job(tenant_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """Create (or converge) the account's SFTPGo user; the credentials, sealed once."""
    account = _load(tenant_id, uuid.UUID(args["account_id"]))
    if account is None or account.status not in (SftpAccountStatus.provisioning,
                                                  SftpAccountStatus.active):
        raise Failed("account_gone", "The account was deleted before it was provisioned.")
    settings = get_settings()
    password, hashed = _new_password()
    try:
        with SFTPGoClient.from_settings(settings) as client:
            client.create_user(account.username, hashed, _prefix(account),
                               S3Target.from_settings(settings))
            # A delete may have run meanwhile: under the row's lock, either the account is
            # still wanted (and becomes active) or the user just made is removed again.
            with tenant_session(tenant_id) as db:
                row = db.get(SftpAccount, account.id, with_for_update=True)
                wanted = row is not None and row.status in (SftpAccountStatus.provisioning,
                                                            SftpAccountStatus.active)
                if wanted and row is not None:
                    row.status = SftpAccountStatus.active
                else:
                    client.delete_user(account.username)
    except SFTPGoError as exc:
        raise _refused(exc) from None
    if not wanted:
        raise Failed("account_gone", "The account was deleted while it was provisioned.")
    return _credentials(account, password)


def rotate_job(tenant_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """A new password; nothing else of the SFTPGo user changes."""
    account = _load(tenant_id, uuid.UUID(args["account_id"]))
    if account is None or account.status != SftpAccountStatus.active:
        raise Failed("invalid_state", "The account is not active any more.")
    password, hashed = _new_password()
    try:
        with SFTPGoClient.from_settings(get_settings()) as client:
            client.set_password(account.username, hashed)
    except SFTPGoError as exc:
        raise _refused(exc) from None
    return _credentials(account, password)


def delete_job(tenant_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """Remove the SFTPGo user and every object left under the prefix; then the account is
    deleted (kept as a row, so its username is never reused)."""
    account = _load(tenant_id, uuid.UUID(args["account_id"]))
    if account is None:
        raise Failed("account_gone", "No such account.")
    settings = get_settings()
    try:
        with SFTPGoClient.from_settings(settings) as client:
            existed = client.delete_user(account.username)
    except SFTPGoError as exc:
        raise _refused(exc) from None
    removed = ObjectStore.from_settings(settings).delete_prefix(
        settings.S3_QUARANTINE_BUCKET, _prefix(account))
    _set_status(tenant_id, account.id, SftpAccountStatus.deleted,
                (SftpAccountStatus.deleting,))
    return {"username": account.username, "sftpgo_user_existed": existed,
            "objects_removed": removed}


@jobs.on_give_up("sftp.provision")
def _provisioning_failed(tenant_id: uuid.UUID | None, args: dict[str, Any]) -> None:
    """A provisioning that failed for good leaves the account ``failed``."""
    if tenant_id is not None:
        _set_status(tenant_id, uuid.UUID(args["account_id"]), SftpAccountStatus.failed,
                    (SftpAccountStatus.provisioning,))


# --- for other domains -------------------------------------------------------------------------


def accounts_per_tenant() -> Select[uuid.UUID, int]:
    """``(tenant_id, accounts)`` for every tenant with an account that exists in SFTPGo
    (active, or not yet deleted), as a select another domain may insert from in one
    statement."""
    return (select(SftpAccount.tenant_id, func.count().label("accounts"))
            .where(SftpAccount.status.in_((SftpAccountStatus.active,
                                           SftpAccountStatus.deleting)))
            .group_by(SftpAccount.tenant_id))
