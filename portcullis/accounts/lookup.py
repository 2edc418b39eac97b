"""The few reads that must cross tenants because the tenant is not known yet.

Each resolves a credential (an email at login, an email token's digest) to ids only, under
the system role; everything after that runs in the owning tenant's scope. Access and
operator keys are found the same way by ``portcullis.access_keys.service``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from portcullis.accounts.models import EmailToken, Invitation, User
from portcullis.db import system_session


@dataclass(frozen=True)
class Owner:
    tenant_id: uuid.UUID
    id: uuid.UUID


def user_by_email(email: str) -> Owner | None:
    with system_session() as db:
        row = db.execute(select(User.tenant_id, User.id).where(
            func.lower(User.email) == email.strip().lower(), User.deleted_at.is_(None))).first()
    return Owner(row.tenant_id, row.id) if row else None


def email_token(token_hash: bytes) -> Owner | None:
    with system_session() as db:
        row = db.execute(select(EmailToken.tenant_id, EmailToken.id)
                         .where(EmailToken.token_hash == token_hash)).first()
    return Owner(row.tenant_id, row.id) if row else None


def invitation(token_hash: bytes) -> Owner | None:
    with system_session() as db:
        row = db.execute(select(Invitation.tenant_id, Invitation.id)
                         .where(Invitation.token_hash == token_hash)).first()
    return Owner(row.tenant_id, row.id) if row else None
