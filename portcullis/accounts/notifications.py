"""Queue account emails as jobs (committed with the change that caused them).

The job names only ids; the worker mints any token at send time, so no raw token ever
rests in the database or the broker.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.orm import Session

from portcullis.jobs.service import create_job

SEND_TASK = "tasks.email.send_account_email"


class AccountEmail(StrEnum):
    verify_email = "verify_email"
    reset_password = "reset_password"  # noqa: S105 - an email name
    invitation = "invitation"
    password_changed = "password_changed"  # noqa: S105 - an email name
    mfa_enabled = "mfa_enabled"
    recovery_codes_changed = "recovery_codes_changed"
    mfa_locked = "mfa_locked"


def queue(db: Session, tenant_id: uuid.UUID, kind: AccountEmail, *,
          user_id: uuid.UUID | None = None, invitation_id: uuid.UUID | None = None) -> None:
    args = {"email": kind.value}
    if user_id:
        args["user_id"] = str(user_id)
    if invitation_id:
        args["invitation_id"] = str(invitation_id)
    create_job(db, tenant_id=tenant_id, kind=f"email.{kind.value}", task_name=SEND_TASK,
               args=args)
