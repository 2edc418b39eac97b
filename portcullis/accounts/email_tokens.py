"""Single-use email tokens: minted by the worker that sends them, stored as digests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portcullis import secrets_gen
from portcullis.accounts import lookup
from portcullis.accounts.models import EmailToken, TokenPurpose
from portcullis.errors import Gone, Invalid

LIFETIMES = {
    TokenPurpose.verify_email: timedelta(hours=24),
    TokenPurpose.reset_password: timedelta(hours=1),
}
INVITATION_LIFETIME = timedelta(days=7)


def mint(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID, purpose: TokenPurpose) -> str:
    token = secrets_gen.new_token()
    db.add(EmailToken(tenant_id=tenant_id, user_id=user_id, purpose=purpose.value,
                      token_hash=secrets_gen.digest(token),
                      expires_at=datetime.now(UTC) + LIFETIMES[purpose]))
    db.flush()
    return token


def owner_of(token: str) -> lookup.Owner:
    """Which tenant a token belongs to; unknown tokens are ``token_invalid``."""
    found = lookup.email_token(secrets_gen.digest(token)) if token else None
    if found is None:
        raise Invalid("token_invalid", "This link is not valid.")
    return found


def consume(db: Session, token: str, purpose: TokenPurpose) -> EmailToken:
    """Mark the token used; unknown, used or wrong-purpose → 400, expired → 410."""
    row = db.scalars(select(EmailToken).where(
        EmailToken.token_hash == secrets_gen.digest(token)).with_for_update()).first()
    if row is None or row.used_at is not None or row.purpose != purpose.value:
        raise Invalid("token_invalid", "This link is not valid.")
    if datetime.now(UTC) >= row.expires_at:
        raise Gone("token_expired", "This link has expired; ask for a new one.")
    row.used_at = datetime.now(UTC)
    return row
