"""What accounts' emails are about, filled in at send time: a user (verification, reset and
the security notices) or an invitation. Registered with the email domain on import; the send
task imports this module.

Tokens are minted here, in the worker, their digests committed before the message leaves.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from portcullis import secrets_gen
from portcullis.accounts import email_tokens, lookup
from portcullis.accounts.members import ACCOUNT_EXISTS
from portcullis.accounts.models import Invitation, TokenPurpose, User
from portcullis.db import tenant_session
from portcullis.email.service import Fill, Kind, register_source
from portcullis.tenants.service import name_of


class Users:
    """Emails to a user of the tenant (``user_id``)."""

    def recipient(self, tenant_id: uuid.UUID, args: Mapping[str, Any]) -> str | None:
        with tenant_session(tenant_id) as db:
            user = db.get(User, uuid.UUID(args["user_id"]))
            return user.email if user is not None else None

    def fill(self, tenant_id: uuid.UUID, kind: Kind, args: Mapping[str, Any]) -> Fill | None:
        with tenant_session(tenant_id) as db:
            user = db.get(User, uuid.UUID(args["user_id"]))
            if user is None or user.deleted_at is not None:
                return None
            if kind.name == TokenPurpose.verify_email and user.email_verified_at is not None:
                return None
            token = None
            if kind.link is not None:  # verification, reset: a token of that purpose
                token = email_tokens.mint(db, tenant_id, user.id, TokenPurpose(kind.name))
            return Fill(user.email, {"name": user.name}, token)


class Invitations:
    """The invitation email (``invitation_id``): a fresh token each time it is sent."""

    def recipient(self, tenant_id: uuid.UUID, args: Mapping[str, Any]) -> str | None:
        with tenant_session(tenant_id) as db:
            invitation = db.get(Invitation, uuid.UUID(args["invitation_id"]))
            return invitation.email if invitation is not None else None

    def fill(self, tenant_id: uuid.UUID, kind: Kind, args: Mapping[str, Any]) -> Fill | None:
        with tenant_session(tenant_id) as db:
            invitation = db.get(Invitation, uuid.UUID(args["invitation_id"]))
            if (invitation is None or invitation.accepted_at or invitation.revoked_at
                    or invitation.expires_at <= datetime.now(UTC)):
                return None
            token = secrets_gen.new_token()
            invitation.token_hash = secrets_gen.digest(token)
            tenant = name_of(db, tenant_id)
            return Fill(invitation.email, {
                "tenant": tenant or "Portcullis", "team": tenant or "a team",
                "role": invitation.role, "note": _invitation_note(invitation.email)}, token)


def _invitation_note(email: str) -> str:
    """What an invitee who already has an account (in any tenant) must know: the inviter
    was told nothing, so the email is where they learn that accepting needs them to leave."""
    return f"{ACCOUNT_EXISTS}\n\n" if lookup.user_by_email(email) is not None else ""


register_source("user", Users())
register_source("invitation", Invitations())
