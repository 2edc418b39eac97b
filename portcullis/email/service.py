"""Queue an email with the change that causes it; send it from a worker (the ``email`` queue).

A queued email is a job naming only the kind and ids (``user_id=``, ``invitation_id=``...);
at send time the kind's source (the domain that owns those rows) names the recipient and
fills the template, minting any token then, its digest committed before the message leaves,
so a link always works when it arrives and no raw token rests in the database or the broker
(a retry mints a fresh one). Emails that anyone can cause by naming an address (a kind
``capped``) are limited per recipient and kind (``EMAIL_RECIPIENT_LIMIT``): beyond it the
mail is simply not sent, so the answer of the route that asked does not change. Each job
counts once, however often it is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import redis
from limits import parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.email.messages import KINDS, Kind, Message
from portcullis.errors import DependencyUnavailable
from portcullis.jobs.service import create_job
from portcullis.redaction import keyed_digest
from portcullis.redis_client import get_redis

__all__ = ["SEND_TASK", "Fill", "Kind", "Message", "Source", "deliver", "queue",
           "recipient_allowed", "recipient_key", "register_source", "render"]

SEND_TASK = "tasks.email.send"
# A job's verdict on the budget outlives all its retries (60, backoff capped at 10 minutes).
COUNTED_PREFIX = "portcullis:email-counted"
COUNTED_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Fill:
    """What a source knows at send time: the recipient, the template's fields and, for a
    kind with a ``link``, the token the link carries."""

    to: str
    fields: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None


class Source(Protocol):
    """The domain that owns what a kind of email is about."""

    def recipient(self, tenant_id: uuid.UUID, args: Mapping[str, Any]) -> str | None:
        """Who a capped email would go to, read before any token is minted (a suppressed
        mail must not replace the token of one already sent)."""
        ...

    def fill(self, tenant_id: uuid.UUID, kind: Kind, args: Mapping[str, Any]) -> Fill | None:
        """The recipient and fields, any token minted and its digest committed; None when
        the email no longer applies (the user is gone, the address already verified...)."""
        ...


_sources: dict[str, Source] = {}


def register_source(name: str, source: Source) -> None:
    """Make ``source`` fill the kinds whose ``source`` is ``name``."""
    _sources[name] = source


def queue(db: Session, tenant_id: uuid.UUID, kind: str, **about: uuid.UUID) -> None:
    """Queue the email ``kind`` (a name in ``portcullis.email.messages``) about the rows
    named in ``about``, in the caller's transaction: it is sent after commit, or not at all."""
    message = KINDS[kind]
    args = {"email": message.name, **{name: str(value) for name, value in about.items()}}
    create_job(db, tenant_id=tenant_id, kind=message.job_kind, task_name=SEND_TASK, args=args,
               flush=False)  # an outbox row: nothing reads it back in this transaction


def _link(path: str, token: str) -> str:
    return f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/{path}?token={token}"


def render(kind: Kind, fill: Fill) -> Message:
    fields = dict(fill.fields)
    if kind.link is not None:
        if fill.token is None:
            raise ValueError(f"the {kind.name} email needs a token")
        fields["link"] = _link(kind.link, fill.token)
    return Message(fill.to, kind.subject.format_map(fields), kind.body.format_map(fields))


@lru_cache(maxsize=1)
def _recipient_limiter(url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(
        url, wrap_exceptions=True, socket_connect_timeout=2, socket_timeout=2))


def recipient_key(address: str, kind: Kind) -> str:
    """The budget's name: one per address and kind of email (five anonymous reset requests
    must not hold back an invitation), a keyed digest of the address, never the address."""
    return f"recipient:{kind.name}:{keyed_digest(address.strip().lower())}"


def recipient_allowed(address: str, kind: Kind, job_id: uuid.UUID) -> bool:
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
                return bool(verdict == b"1")
            # "?": the earlier attempt stopped between marking and counting; count now.
        allowed = _recipient_limiter(settings.REDIS_URL).hit(
            parse(settings.EMAIL_RECIPIENT_LIMIT), "portcullis-email",
            recipient_key(address, kind))
        client.set(marker, "1" if allowed else "0", ex=COUNTED_SECONDS)
        return bool(allowed)
    except (StorageError, redis.RedisError) as exc:
        raise DependencyUnavailable("redis", "email limits cannot be enforced") from exc


def deliver(tenant_id: uuid.UUID, args: Mapping[str, Any], job_id: uuid.UUID) -> dict[str, Any]:
    """Send the email a job names (the send task's body)."""
    from portcullis.clients.smtp import Mailer

    kind = KINDS[args["email"]]
    source = _sources[kind.source]
    if kind.capped:
        recipient = source.recipient(tenant_id, args)
        if recipient is not None and not recipient_allowed(recipient, kind, job_id):
            return {"sent": False, "reason": "recipient_rate_limited"}
    fill = source.fill(tenant_id, kind, args)  # commits any token digest first
    if fill is None:
        return {"sent": False, "reason": "no longer applicable"}
    message = render(kind, fill)
    Mailer.from_settings(get_settings()).send(message.to, message.subject, message.text)
    return {"sent": True}
