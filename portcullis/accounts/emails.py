"""Compose and send account emails (runs in a worker on the ``email`` queue).

Tokens are minted here, their digests committed before the message leaves, so a link
always works when it arrives; a retry mints a fresh one. Token emails that anyone can cause
by naming an address are capped per recipient and kind (``EMAIL_RECIPIENT_LIMIT``): beyond
it the mail is simply not sent, so the answer of the route that asked does not change. Each
job counts once, however often it is retried.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from limits import parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from config import get_settings
from portcullis import secrets_gen
from portcullis.accounts import email_tokens
from portcullis.accounts.models import Invitation, TokenPurpose, User
from portcullis.accounts.notifications import AccountEmail
from portcullis.db import tenant_session
from portcullis.errors import DependencyUnavailable
from portcullis.redaction import keyed_digest
from portcullis.redis_client import get_redis
from portcullis.tenants.models import Tenant

# Sent because someone named an address (signup, resend, forgot, invitations): capped.
PER_RECIPIENT = frozenset({AccountEmail.verify_email, AccountEmail.reset_password,
                           AccountEmail.invitation})
# A job's verdict on the budget outlives all its retries (60, backoff capped at 10 minutes).
COUNTED_PREFIX = "portcullis:email-counted"
COUNTED_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str


def _link(path: str, token: str) -> str:
    return f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/{path}?token={token}"


_NOTICES = {
    AccountEmail.password_changed: (
        "Your Portcullis password was changed",
        "The password of your Portcullis account was just changed, and every session was "
        "signed out. If this was not you, reset your password now and tell your admin."),
    AccountEmail.mfa_enabled: (
        "Two-factor authentication was set up on your account",
        "An authenticator app was just enrolled for your Portcullis account, with new "
        "recovery codes. If this was not you, reset your password now and tell your admin."),
    AccountEmail.recovery_codes_changed: (
        "A Portcullis recovery code was used",
        "One of your recovery codes was just used to sign in and can no longer be used. "
        "If this was not you, reset your password now and tell your admin."),
    AccountEmail.mfa_locked: (
        "Someone may know your Portcullis password",
        "Someone signed in with your password and then entered too many wrong two-factor "
        "codes, so the two-factor step of your account is locked for a while. Your password "
        "is probably known to someone else: reset it now and tell your admin."),
}


def _invitation_note(email: str) -> str:
    """What an invitee who already has an account (in any tenant) must know: the inviter
    was told nothing, so the email is where they learn that accepting needs them to leave."""
    from portcullis.accounts import lookup
    from portcullis.accounts.members import ACCOUNT_EXISTS

    return f"{ACCOUNT_EXISTS}\n\n" if lookup.user_by_email(email) is not None else ""


def _compose(tenant_id: uuid.UUID, args: dict[str, Any]) -> Message | None:
    kind = AccountEmail(args["email"])
    with tenant_session(tenant_id) as db:
        if kind is AccountEmail.invitation:
            invitation = db.get(Invitation, uuid.UUID(args["invitation_id"]))
            if (invitation is None or invitation.accepted_at or invitation.revoked_at
                    or invitation.expires_at <= datetime.now(UTC)):
                return None
            token = secrets_gen.new_token()
            invitation.token_hash = secrets_gen.digest(token)
            tenant = db.get(Tenant, tenant_id)
            return Message(
                invitation.email, f"You are invited to {tenant.name if tenant else 'Portcullis'}",
                f"You were invited to join {tenant.name if tenant else 'a team'} on Portcullis "
                f"as {invitation.role}.\n\n{_invitation_note(invitation.email)}"
                f"Accept within 7 days:\n{_link('accept-invitation', token)}\n")
        user = db.get(User, uuid.UUID(args["user_id"]))
        if user is None or user.deleted_at is not None:
            return None
        if kind is AccountEmail.verify_email:
            if user.email_verified_at is not None:
                return None
            token = email_tokens.mint(db, tenant_id, user.id, TokenPurpose.verify_email)
            return Message(user.email, "Confirm your email address for Portcullis",
                           f"Hello {user.name},\n\nConfirm your address within 24 hours:\n"
                           f"{_link('verify-email', token)}\n")
        if kind is AccountEmail.reset_password:
            token = email_tokens.mint(db, tenant_id, user.id, TokenPurpose.reset_password)
            return Message(user.email, "Reset your Portcullis password",
                           f"Hello {user.name},\n\nReset your password within 1 hour:\n"
                           f"{_link('reset-password', token)}\n\nIf you did not ask for "
                           "this, ignore this email.\n")
        subject, body = _NOTICES[kind]
        return Message(user.email, subject, f"Hello {user.name},\n\n{body}\n")


@lru_cache(maxsize=1)
def _recipient_limiter(url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(
        url, wrap_exceptions=True, socket_connect_timeout=2, socket_timeout=2))


def recipient_key(address: str, kind: AccountEmail) -> str:
    """The budget's name: one per address and kind of email (five anonymous reset requests
    must not hold back an invitation), a keyed digest of the address, never the address."""
    return f"recipient:{kind.value}:{keyed_digest(address.strip().lower())}"


def recipient_allowed(address: str, kind: AccountEmail, job_id: uuid.UUID) -> bool:
    """Take one send from the address's budget for ``kind``; False once it is spent.

    A job is counted once: its verdict is kept under the job's id, so a retry (SMTP was
    down) neither spends the budget again nor loses the mail to its own earlier attempts."""
    settings = get_settings()
    marker = f"{COUNTED_PREFIX}:{job_id}"
    try:
        client = get_redis()
        if not client.set(marker, "?", nx=True, ex=COUNTED_SECONDS):
            verdict = client.get(marker)
            if verdict in (b"1", b"0"):
                return verdict == b"1"
            # "?": the earlier attempt stopped between marking and counting; count now.
        allowed = _recipient_limiter(settings.REDIS_URL).hit(
            parse(settings.EMAIL_RECIPIENT_LIMIT), "portcullis-email",
            recipient_key(address, kind))
        client.set(marker, "1" if allowed else "0", ex=COUNTED_SECONDS)
        return bool(allowed)
    except (StorageError, redis.RedisError) as exc:
        raise DependencyUnavailable("redis", "email limits cannot be enforced") from exc


def _recipient(tenant_id: uuid.UUID, kind: AccountEmail, args: dict[str, Any]) -> str | None:
    """Who a capped email would go to, read before any token is minted (a suppressed mail
    must not replace the token of one already sent)."""
    with tenant_session(tenant_id) as db:
        if kind is AccountEmail.invitation:
            invitation = db.get(Invitation, uuid.UUID(args["invitation_id"]))
            return invitation.email if invitation is not None else None
        user = db.get(User, uuid.UUID(args["user_id"]))
        return user.email if user is not None else None


def deliver(tenant_id: uuid.UUID, args: dict[str, Any], job_id: uuid.UUID) -> dict[str, Any]:
    from portcullis.clients.smtp import Mailer

    kind = AccountEmail(args["email"])
    if kind in PER_RECIPIENT:
        recipient = _recipient(tenant_id, kind, args)
        if recipient is not None and not recipient_allowed(recipient, kind, job_id):
            return {"sent": False, "reason": "recipient_rate_limited"}
    message = _compose(tenant_id, args)  # commits any token digest first
    if message is None:
        return {"sent": False, "reason": "no longer applicable"}
    Mailer.from_settings(get_settings()).send(message.to, message.subject, message.text)
    return {"sent": True}
