"""SFTPGo users enabled exactly while their tenant is active.

``sync`` (beat, every few seconds) compares each active account's ``sftpgo_enabled`` (what
SFTPGo was last told) with its tenant's status and sets SFTPGo's ``status`` where they
differ, so a suspension or a reactivation reaches SFTPGo within a minute whoever made it
(an operator, billing's overdue rule). ``repair_drift`` (beat, every ten minutes) asks
SFTPGo itself and repairs what changed behind our back: a status set by hand, a user left
by a provisioning that failed. SFTPGo down: both stop and the next run goes on.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from config import get_settings
from portcullis.clients.sftpgo import SFTPGoClient, SFTPGoError
from portcullis.db import system_session, tenant_session
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from portcullis.sftp.provisioning import locked
from portcullis.tenants import service as tenants

log = logging.getLogger(__name__)
BATCH = 200


@dataclass(frozen=True)
class Repaired:
    checked: int
    status_fixed: int
    users_removed: int
    users_missing: int


def _apply(client: SFTPGoClient, tenant_id: uuid.UUID, account_id: uuid.UUID,
           ask_sftpgo: bool) -> str:
    """Bring one account's SFTPGo status to its tenant's, under the account's row lock:
    ``"fixed"``, ``"same"`` or ``"missing"`` (no such SFTPGo user)."""
    with tenant_session(tenant_id) as db:
        account = locked(db, account_id)
        if account is None or account.status != SftpAccountStatus.active:
            return "same"
        enabled = not tenants.is_suspended(db, tenant_id)
        if not ask_sftpgo and account.sftpgo_enabled is enabled:
            return "same"
        try:
            changed = client.set_enabled(account.username, enabled)
        except SFTPGoError as exc:
            if exc.status != 404:
                raise
            log.warning("SFTP account %s has no SFTPGo user %s", account.id, account.username)
            # Recorded anyway, so the account stops being due and cannot crowd out the
            # others in every sync; repair_drift asks SFTPGo each time and reports it.
            account.sftpgo_enabled = enabled
            return "missing"
        account.sftpgo_enabled = enabled
        return "fixed" if changed else "same"


def sync(limit: int = BATCH) -> int:
    """Set SFTPGo's status of the accounts whose tenant's status changed; how many."""
    suspended = tenants.suspended()
    with system_session() as db:
        due = db.execute(select(SftpAccount.tenant_id, SftpAccount.id).where(
            SftpAccount.status == SftpAccountStatus.active,
            or_(and_(SftpAccount.tenant_id.in_(suspended),
                     SftpAccount.sftpgo_enabled.is_not(False)),
                and_(SftpAccount.tenant_id.not_in(suspended),
                     SftpAccount.sftpgo_enabled.is_not(True))))
            .order_by(SftpAccount.created_at).limit(limit)).all()
    fixed = 0
    if not due:
        return 0
    with SFTPGoClient.from_settings(get_settings()) as client:
        for tenant_id, account_id in due:
            try:
                fixed += _apply(client, tenant_id, account_id, ask_sftpgo=False) == "fixed"
            except SFTPGoError as exc:
                log.warning("SFTPGo refused a status change (HTTP %s)", exc.status)
    return fixed


def repair_drift() -> Repaired:
    """Compare every active and failed account with SFTPGo and repair the difference."""
    with system_session() as db:
        rows = db.execute(select(SftpAccount.tenant_id, SftpAccount.id, SftpAccount.status,
                                 SftpAccount.username)
                          .where(SftpAccount.status.in_((SftpAccountStatus.active,
                                                         SftpAccountStatus.failed)))
                          .order_by(SftpAccount.created_at)).all()
    fixed = removed = missing = 0
    with SFTPGoClient.from_settings(get_settings()) as client:
        for tenant_id, account_id, status, username in rows:
            try:
                if status == SftpAccountStatus.failed:
                    removed += client.delete_user(username)  # a provisioning's leftover
                    continue
                outcome = _apply(client, tenant_id, account_id, ask_sftpgo=True)
            except SFTPGoError as exc:
                log.warning("SFTPGo refused a repair of account %s (HTTP %s)", account_id,
                            exc.status)
                continue
            fixed += outcome == "fixed"
            missing += outcome == "missing"
    return Repaired(len(rows), fixed, removed, missing)

