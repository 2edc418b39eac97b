"""The outbox: raise alerts into it and deliver them to SIEM_WEBHOOK_URL, at least once.

An alert row is written in the transaction of the event that caused it and its task is sent
after commit. Delivery claims the row under a short lease, so duplicates never send twice at
once; a failure schedules the next attempt (exponential backoff with full jitter) in the row
itself, and the beat sweeper sends whatever is due, so neither a lost task nor a dead worker
loses an alert. After ALERT_RETRY_FOR_SECONDS the alert is given up. Both outcomes are
audited.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.alerts.models import Alert, AlertStatus
from portcullis.audit.service import Severity, Target, record
from portcullis.callers import Caller
from portcullis.clients.siem import SiemClient, SiemRejected
from portcullis.db import system_session
from portcullis.errors import DependencyUnavailable
from portcullis.jobs import service as jobs
from portcullis.redaction import scrub

log = logging.getLogger(__name__)

DELIVER_TASK = "tasks.alerts.deliver_alert"


class AlertType(StrEnum):
    failed_logins = "alert.failed_logins"
    new_ip = "alert.new_ip"
    session_ip_change = "alert.session_ip_change"
    mfa_failures = "alert.mfa_failures"
    malware_detected = "alert.malware_detected"
    mass_deletion = "alert.mass_deletion"
    audit_export = "alert.audit_export"
    tenant_suspended = "alert.tenant_suspended"
    link_password_failures = "alert.link_password_failures"  # noqa: S105 - a type name


def _now() -> datetime:
    return datetime.now(UTC)


def raise_alert(db: Session, tenant_id: uuid.UUID | None, alert_type: AlertType,
                severity: Severity, summary: str, actor: Caller, ip: str | None = None,
                details: dict[str, Any] | None = None) -> uuid.UUID:
    """Add an alert to the caller's transaction; it is sent after commit. ``actor`` is who
    caused it, as the audit trail names them."""
    alert_id = uuid.uuid4()
    now = _now()
    payload = {
        "id": str(alert_id), "type": alert_type.value,
        "occurred_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tenant_id": str(tenant_id) if tenant_id else None, "severity": severity.value,
        "summary": summary, "actor": {"type": actor.actor_type, "id": actor.actor_id}, "ip": ip,
        "details": scrub(details or {}),
    }
    db.add(Alert(id=alert_id, tenant_id=tenant_id, type=alert_type.value,
                 severity=severity.value, payload=payload, status=AlertStatus.pending,
                 attempts=0, next_attempt_at=now))
    db.flush()
    jobs.send_after_commit(db, DELIVER_TASK, alert_id)
    return alert_id


def _lease() -> timedelta:
    return timedelta(seconds=get_settings().JOB_LEASE_SECONDS)


def _claim(alert_id: uuid.UUID) -> tuple[dict[str, Any], datetime] | None:
    """Hold the alert for one attempt; returns its payload and the claim token.

    A worker that dies lets the lease (JOB_LEASE_SECONDS) run out and the sweeper hands the
    alert to another; the token lets a late attempt find out it no longer holds the alert.
    """
    now = _now()
    token = now + _lease()
    with system_session() as db:
        payload = db.scalar(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status == AlertStatus.pending,
                   Alert.next_attempt_at <= now,
                   or_(Alert.locked_until.is_(None), Alert.locked_until < now))
            .values(locked_until=token, attempts=Alert.attempts + 1)
            .returning(Alert.payload))
    return (payload, token) if payload is not None else None


def _audit_outcome(db: Session, alert: Alert, action: str, details: dict[str, Any]) -> None:
    record(db, Caller.system(alert.tenant_id), action, Target("alert", str(alert.id)),
           {"type": alert.type, "attempts": alert.attempts, **details})


def deliver(alert_id: uuid.UUID) -> str:
    """One delivery attempt; returns the alert's status afterwards."""
    claimed = _claim(alert_id)
    if claimed is None:
        return "skipped"  # delivered, given up, not yet due, or in flight elsewhere
    payload, token = claimed
    # The attempt must end well inside its lease, so it cannot outlive its claim.
    deadline = max(1.0, min(10.0, _lease().total_seconds() / 3))
    client = SiemClient.from_settings(get_settings(), timeout=deadline,
                                      connect_timeout=min(3.0, deadline))
    error: str | None = None
    try:
        if client.enabled:
            client.send(str(alert_id), payload)
        else:
            error = "SIEM_WEBHOOK_URL is not set"
    except DependencyUnavailable as exc:
        error = exc.detail or "unreachable"
    except SiemRejected as exc:
        error = f"rejected: {exc}"
    finally:
        client.close()
    return _record_attempt(alert_id, token, error)


def _record_attempt(alert_id: uuid.UUID, token: datetime, error: str | None) -> str:
    settings = get_settings()
    now = _now()
    with system_session() as db:
        alert = db.get(Alert, alert_id, with_for_update=True)
        assert alert is not None
        if alert.status != AlertStatus.pending or alert.locked_until != token:
            log.warning("alert %s: a late attempt found its claim taken over", alert_id)
            return "skipped"  # another attempt owns the alert now; record nothing
        alert.locked_until = None
        if error is None:
            alert.status = AlertStatus.delivered
            alert.delivered_at = now
            alert.last_error = None
            _audit_outcome(db, alert, "alert.delivered", {})
            return alert.status
        alert.last_error = error[:200]
        if now - alert.created_at >= timedelta(seconds=settings.ALERT_RETRY_FOR_SECONDS):
            alert.status = AlertStatus.given_up
            _audit_outcome(db, alert, "alert.given_up", {"last_error": alert.last_error})
            log.error("alert %s given up after %s attempts", alert_id, alert.attempts)
            return alert.status
        cap = settings.ALERT_RETRY_BASE_SECONDS * 2 ** min(alert.attempts, 16)
        alert.next_attempt_at = now + timedelta(seconds=random.uniform(
            settings.ALERT_RETRY_BASE_SECONDS / 2, min(cap, 3600.0)))
        log.warning("alert %s not delivered (%s); next attempt at %s", alert_id,
                    alert.last_error, alert.next_attempt_at.isoformat())
        return alert.status


def due_alerts(limit: int = 200) -> list[uuid.UUID]:
    """Pending alerts whose next attempt is due and that nobody holds."""
    now = _now()
    with system_session() as db:
        return list(db.scalars(
            select(Alert.id).where(Alert.status == AlertStatus.pending,
                                   Alert.next_attempt_at <= now,
                                   or_(Alert.locked_until.is_(None), Alert.locked_until < now))
            .order_by(Alert.next_attempt_at).limit(limit)))


def sweep() -> int:
    """Send a delivery task for every due alert (lost tasks, scheduled retries)."""
    return sum(jobs.send_now(DELIVER_TASK, str(alert_id)) for alert_id in due_alerts())
