"""The few reads that must cross tenants because the tenant is not known yet.

Each resolves a credential (an email at login, a token or key digest) to ids only, under the
system role; everything after that runs in the owning tenant's scope.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from portcullis.access_keys.models import AccessKey, OperatorKey
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


def access_key(key_hash: bytes) -> Owner | None:
    with system_session() as db:
        row = db.execute(select(AccessKey.tenant_id, AccessKey.id)
                         .where(AccessKey.key_hash == key_hash)).first()
    return Owner(row.tenant_id, row.id) if row else None


def operator_key(key_hash: bytes) -> uuid.UUID | None:
    with system_session() as db:
        return db.scalar(select(OperatorKey.id).where(OperatorKey.key_hash == key_hash,
                                                      OperatorKey.revoked_at.is_(None)))
