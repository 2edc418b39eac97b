"""Provisioning, rotation and deletion: jobs that bring an account's SFTPGo user to the
state its row says, each safe to repeat.

Each job holds the account's row lock while it talks to SFTPGo, so the jobs and sweeps of
one account never interleave their read-modify-write of the user (SFTPGo's PUT replaces it
whole), and a deletion asked for meanwhile waits for the provisioning to finish. The
password is generated here (192 bits), SFTPGo gets only its bcrypt hash, and the job's
result shows it to the account's creator once.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from typing import Any

import bcrypt
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.clients.object_store import ObjectStore
from portcullis.clients.sftpgo import S3Target, SFTPGoClient, SFTPGoError
from portcullis.db import tenant_session
from portcullis.errors import DependencyUnavailable
from portcullis.jobs import service as jobs
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from portcullis.tenants import service as tenants

PROVISION_TASK = "tasks.sftp.provision_account"
ROTATE_TASK = "tasks.sftp.rotate_password"
DELETE_TASK = "tasks.sftp.delete_account"
PASSWORD_BYTES = 24  # 192 bits of entropy, as URL-safe text
LIVE = (SftpAccountStatus.provisioning, SftpAccountStatus.active)


class Failed(Exception):
    """A job that cannot succeed however often it runs (SFTPGo refused it for good)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def locked(db: Session, account_id: uuid.UUID) -> SftpAccount | None:
    return db.get(SftpAccount, account_id, with_for_update=True, populate_existing=True)


def prefix_of(account_id: uuid.UUID, key_prefix: str) -> str:
    """The account's own prefix, checked against its id: a bad row can never name (and
    read or delete) another account's or the whole bucket's objects."""
    expected = f"sftp/{account_id.hex}/"
    if key_prefix != expected:
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


def refused(exc: SFTPGoError) -> Failed:
    return Failed("sftpgo_refused", f"SFTPGo refused {exc.operation} (HTTP {exc.status}).")


def provision_job(tenant_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """Create (or converge) the account's SFTPGo user, enabled unless the tenant is
    suspended; the credentials, sealed once."""
    settings = get_settings()
    password, hashed = _new_password()
    with tenant_session(tenant_id) as db, SFTPGoClient.from_settings(settings) as client:
        account = locked(db, uuid.UUID(args["account_id"]))
        if account is None or account.status not in LIVE:
            raise Failed("account_gone", "The account was deleted before it was provisioned.")
        enabled = not tenants.is_suspended(db, tenant_id)
        try:
            client.create_user(account.username, hashed,
                               prefix_of(account.id, account.key_prefix),
                               S3Target.from_settings(settings), enabled=enabled)
        except SFTPGoError as exc:
            raise refused(exc) from None
        account.status = SftpAccountStatus.active
        account.sftpgo_enabled = enabled
        return _credentials(account, password)


def rotate_job(tenant_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """A new password; nothing else of the SFTPGo user changes, and a session open with
    the old one is cut."""
    password, hashed = _new_password()
    with tenant_session(tenant_id) as db, SFTPGoClient.from_settings(get_settings()) as client:
        account = locked(db, uuid.UUID(args["account_id"]))
        if account is None or account.status != SftpAccountStatus.active:
            raise Failed("invalid_state", "The account is not active any more.")
        try:
            client.set_password(account.username, hashed)
        except SFTPGoError as exc:
            raise refused(exc) from None
        return _credentials(account, password)


def delete_job(tenant_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """Remove the SFTPGo user and every object left under the prefix; then the account is
    deleted (kept as a row, so its username is never reused) and lets go of its bucket."""
    settings = get_settings()
    with tenant_session(tenant_id) as db, SFTPGoClient.from_settings(settings) as client:
        account = locked(db, uuid.UUID(args["account_id"]))
        if account is None:
            raise Failed("account_gone", "No such account.")
        prefix = prefix_of(account.id, account.key_prefix)
        try:
            existed = client.delete_user(account.username)
        except SFTPGoError as exc:
            raise refused(exc) from None
        removed = ObjectStore.from_settings(settings).delete_prefix(
            settings.S3_QUARANTINE_BUCKET, prefix)
        if account.status == SftpAccountStatus.deleting:
            account.status = SftpAccountStatus.deleted
            account.bucket_id = None
            account.sftpgo_enabled = None
        return {"username": account.username, "sftpgo_user_existed": existed,
                "objects_removed": removed}


@jobs.on_give_up("sftp.provision")
def _provisioning_failed(tenant_id: uuid.UUID | None, args: dict[str, Any]) -> None:
    """A provisioning that failed for good leaves the account ``failed``, and no SFTPGo
    user behind (if SFTPGo answers now; else the drift sweep removes it later)."""
    if tenant_id is None:
        return
    with tenant_session(tenant_id) as db:
        account = locked(db, uuid.UUID(args["account_id"]))
        if account is None or account.status != SftpAccountStatus.provisioning:
            return
        account.status = SftpAccountStatus.failed
        username = account.username
    with contextlib.suppress(DependencyUnavailable, SFTPGoError), \
            SFTPGoClient.from_settings(get_settings()) as client:
        client.delete_user(username)
