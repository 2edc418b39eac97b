"""The rules of API.md's SIEM section, evaluated where their events happen.

Counters are sliding windows in Redis; a rule fires once per identity and window (a
``SET NX EX`` marks it), not once per event. The IPs an identity has used live in
PostgreSQL (``seen_ips``). Each rule is called with the session that records the causing
event, so the alert commits with it. If Redis is unreachable a counting rule is skipped
(logged): detection never breaks the request that triggered it.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.alerts.models import SeenIP
from portcullis.alerts.outbox import AlertType, raise_alert
from portcullis.audit.service import Severity
from portcullis.callers import Caller, Kind
from portcullis.redaction import account_label, keyed_digest
from portcullis.redis_client import get_redis

log = logging.getLogger(__name__)
PREFIX = "portcullis:detect"


def _user(tenant_id: uuid.UUID, user_id: uuid.UUID) -> Caller:
    """A member as the actor of an alert (actor type ``user``)."""
    return Caller(Kind.user, tenant_id, user_id)


def _hash(value: str) -> str:
    """A keyed digest: a plain hash of an address could be reversed from a list of them."""
    return keyed_digest(value.strip().lower())


def count_in_window(key: str, window: int) -> int:
    """Events in the last ``window`` seconds, this one included (raises on Redis errors)."""
    now = time.time()
    pipe = get_redis().pipeline()
    pipe.zadd(key, {uuid.uuid4().hex: now})
    pipe.zremrangebyscore(key, 0, now - window)
    pipe.zcard(key)
    pipe.expire(key, window)
    return int(pipe.execute()[2])


def _first_in_window(key: str, window: int) -> bool:
    return bool(get_redis().set(f"{key}:fired", 1, nx=True, ex=window))


def _threshold(key: str, threshold: int, window: int) -> int | None:
    """The count when it has reached ``threshold`` and the rule has not fired in this window."""
    try:
        count = count_in_window(key, window)
        if count >= threshold and _first_in_window(key, window):
            return count
    except redis.RedisError as exc:
        log.warning("detection skipped, Redis unavailable: %s", type(exc).__name__)
    return None


def login_failed(db: Session, tenant_id: uuid.UUID | None, email: str, ip: str | None,
                 actor: Caller) -> None:
    settings = get_settings()
    window = settings.ALERT_FAILED_LOGINS_WINDOW_SECONDS
    count = _threshold(f"{PREFIX}:login-failed:account:{_hash(email)}",
                       settings.ALERT_FAILED_LOGINS_PER_ACCOUNT, window)
    if count is not None:
        raise_alert(db, tenant_id, AlertType.failed_logins, Severity.warning,
                    f"{count} failed logins for one account in {window // 60} minutes",
                    actor, ip, {"scope": "account", "account": account_label(email),
                                "count": count, "window_seconds": window})
    if ip:
        count = _threshold(f"{PREFIX}:login-failed:ip:{ip}",
                           settings.ALERT_FAILED_LOGINS_PER_IP, window)
        if count is not None:
            raise_alert(db, tenant_id, AlertType.failed_logins, Severity.warning,
                        f"{count} failed logins from one IP in {window // 60} minutes",
                        actor, ip, {"scope": "ip", "count": count, "window_seconds": window})


def mfa_failed(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID, ip: str | None) -> None:
    settings = get_settings()
    window = settings.ALERT_MFA_FAILURES_WINDOW_SECONDS
    count = _threshold(f"{PREFIX}:mfa-failed:{user_id}", settings.ALERT_MFA_FAILURES, window)
    if count is not None:
        raise_alert(db, tenant_id, AlertType.mfa_failures, Severity.warning,
                    f"{count} wrong MFA codes for one user in {window // 60} minutes",
                    _user(tenant_id, user_id), ip, {"count": count, "window_seconds": window})


def mfa_locked(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID, ip: str | None,
               failures: int, window: int, locked_seconds: int) -> None:
    """The lockout escalates the per-user rule: its own alert, once per lock (the lock's
    ``SET NX`` already guarantees that)."""
    raise_alert(db, tenant_id, AlertType.mfa_failures, Severity.critical,
                f"Second factor locked for {locked_seconds // 60} minutes after {failures} "
                f"wrong MFA codes in {window // 60} minutes", _user(tenant_id, user_id), ip,
                {"scope": "lockout", "count": failures, "window_seconds": window,
                 "locked_seconds": locked_seconds})


def deletion(db: Session, caller: Caller) -> None:
    """One deletion by ``caller`` in its tenant (the mass-deletion rule)."""
    settings = get_settings()
    window = settings.ALERT_MASS_DELETIONS_WINDOW_SECONDS
    key = f"{PREFIX}:deletions:{caller.tenant_id}:{caller.actor_type}:{caller.actor_id}"
    count = _threshold(key, settings.ALERT_MASS_DELETIONS, window)
    if count is not None:
        raise_alert(db, caller.tenant_id, AlertType.mass_deletion, Severity.critical,
                    f"{count} deletions by one actor in {window // 60} minutes", caller,
                    caller.origin.ip, {"count": count, "window_seconds": window})


# API.md: 10 wrong passwords for one share link in 10 minutes.
LINK_PASSWORD_FAILURES = 10
LINK_PASSWORD_FAILURES_WINDOW_SECONDS = 600


def link_password_failed(db: Session, tenant_id: uuid.UUID, link_id: uuid.UUID,
                         actor: Caller) -> None:
    """One wrong password for a share link (from any address): the link's rule."""
    window = LINK_PASSWORD_FAILURES_WINDOW_SECONDS
    count = _threshold(f"{PREFIX}:link-password:{link_id}", LINK_PASSWORD_FAILURES, window)
    if count is not None:
        raise_alert(db, tenant_id, AlertType.link_password_failures, Severity.warning,
                    f"{count} wrong passwords for one share link in {window // 60} minutes",
                    actor, actor.origin.ip,
                    {"link_id": str(link_id), "count": count, "window_seconds": window})


def ip_is_new(db: Session, tenant_id: uuid.UUID, identity: str, ip: str | None) -> bool:
    """Record that ``identity`` used ``ip``; True if that is a new IP for an identity with a
    history (unseen for ALERT_NEW_IP_DAYS). The first use only starts the history."""
    if not ip:
        return False
    now = datetime.now(UTC)
    horizon = now - timedelta(days=get_settings().ALERT_NEW_IP_DAYS)
    has_history = db.scalar(select(exists().where(SeenIP.tenant_id == tenant_id,
                                                  SeenIP.identity == identity)))
    recent = db.scalar(select(exists().where(
        SeenIP.tenant_id == tenant_id, SeenIP.identity == identity, SeenIP.ip == ip,
        SeenIP.last_seen_at >= horizon)))
    db.execute(insert(SeenIP).values(tenant_id=tenant_id, identity=identity, ip=ip,
                                     first_seen_at=now, last_seen_at=now)
               .on_conflict_do_update(constraint="uq_seen_ips_identity_ip",
                                      set_={"last_seen_at": now}))
    return bool(has_history and not recent)


def identity_used(db: Session, tenant_id: uuid.UUID, identity: str, ip: str | None,
                  actor: Caller, how: str) -> bool:
    """The new-IP rule for a login or a key use; returns whether the IP was new."""
    if not ip_is_new(db, tenant_id, identity, ip):
        return False
    raise_alert(db, tenant_id, AlertType.new_ip, Severity.warning,
                f"{how} from an IP not seen for this identity in "
                f"{get_settings().ALERT_NEW_IP_DAYS} days", actor, ip, {"identity": identity})
    return True


def session_ip_changed(db: Session, tenant_id: uuid.UUID, session_id: uuid.UUID,
                       user_id: uuid.UUID, first_ip: str, ip: str) -> None:
    try:
        fresh = get_redis().set(f"{PREFIX}:session-ip:{session_id}:{ip}", 1, nx=True,
                                ex=13 * 3600)
    except redis.RedisError as exc:
        log.warning("detection skipped, Redis unavailable: %s", type(exc).__name__)
        return
    if fresh:
        raise_alert(db, tenant_id, AlertType.session_ip_change, Severity.warning,
                    "One session used from a second IP", _user(tenant_id, user_id), ip,
                    {"session_id": str(session_id), "first_ip": first_ip})
