"""Audit queries and exports: one row shape for the API, JSONL and CSV.

Exports stream rows through a server-side cursor into a spooled file (bounded memory),
then to storage, and answer with a share link. CSV cells that a spreadsheet would run as a
formula are escaped.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.actions import severity_of
from portcullis.audit.models import AuditEvent
from portcullis.audit.service import Actor, AuditRecord, Origin, Target, audit_log
from portcullis.jobs.service import create_job

EXPORT_TASK = "tasks.exports.export_audit_events"
FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ["id", "occurred_at", "action", "severity", "actor_type", "actor_id",
               "target_type", "target_id", "ip", "user_agent", "details"]
LINK_LIFETIME = timedelta(days=7)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "occurred_at": event.occurred_at.isoformat(),
        "action": event.action,
        "severity": event.severity,
        "actor": {"type": event.actor_type, "id": event.actor_id},
        "target": ({"type": event.target_type, "id": event.target_id}
                   if event.target_type else None),
        "ip": str(event.ip) if event.ip is not None else None,
        "user_agent": event.user_agent,
        "details": event.details,
    }


def query(tenant_id: uuid.UUID, *, action: str | None = None, actor_id: str | None = None,
          severity: str | None = None, since: datetime | None = None,
          until: datetime | None = None) -> Select[tuple[AuditEvent]]:
    stmt = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if actor_id:
        stmt = stmt.where(AuditEvent.actor_id == actor_id)
    if severity:
        stmt = stmt.where(AuditEvent.severity == severity)
    if since:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    return stmt


def safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def csv_row(event: AuditEvent) -> list[str]:
    data = event_json(event)
    cells = [data["id"], data["occurred_at"], data["action"], data["severity"],
             event.actor_type, event.actor_id or "", event.target_type or "",
             event.target_id or "", data["ip"] or "", event.user_agent or "",
             json.dumps(event.details, sort_keys=True, separators=(",", ":"))]
    return [safe_cell(c) for c in cells]


_EXPORT_COLUMNS = [
    AuditEvent.id, AuditEvent.occurred_at, AuditEvent.action, AuditEvent.severity,
    AuditEvent.actor_type, AuditEvent.actor_id, AuditEvent.target_type, AuditEvent.target_id,
    func.host(AuditEvent.ip).label("ip"), AuditEvent.user_agent, AuditEvent.details,
]


def stream_events(db: Session, tenant_id: uuid.UUID, since: datetime,
                  until: datetime) -> Iterator[Any]:
    """Plain rows (not ORM objects) through a server-side cursor: same attribute names as
    an AuditEvent, so ``event_json`` and ``csv_row`` take either."""
    stmt = (query(tenant_id, since=since, until=until)
            .with_only_columns(*_EXPORT_COLUMNS)
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
            .execution_options(yield_per=5000, stream_results=True))
    yield from db.execute(stmt)


def count_events(db: Session, tenant_id: uuid.UUID, since: datetime, until: datetime) -> int:
    stmt = query(tenant_id, since=since, until=until).with_only_columns(func.count())
    return int(db.scalar(stmt) or 0)


def write_export(db: Session, tenant_id: uuid.UUID, since: datetime, until: datetime,
                 fmt: str, out: IO[str],
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Write every matching row to ``out``; calls ``progress(done, total)`` as it goes."""
    total = count_events(db, tenant_id, since, until)
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    done = 0
    for event in stream_events(db, tenant_id, since, until):
        if writer is not None:
            writer.writerow(csv_row(event))
        else:
            out.write(json.dumps(event_json(event), separators=(",", ":")) + "\n")
        done += 1
        if progress and done % 5000 == 0:
            progress(done, total)
    if progress:
        progress(done, max(total, done))
    return done


def record_export(db: Session, tenant_id: uuid.UUID, actor: Actor, origin: Origin,
                  details: dict[str, Any]) -> None:
    """Audit and alert an export, in the caller's transaction."""
    audit_log.record(db, AuditRecord(
        action="audit.exported", actor=actor, tenant_id=tenant_id,
        severity=severity_of("audit.exported"), target=Target("tenant", str(tenant_id)),
        origin=origin, details=details))
    raise_alert(db, tenant_id, AlertType.audit_export, severity_of("audit.exported"),
                "The audit log was exported", actor, origin.ip, details)


def request_export(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID, since: datetime,
                   until: datetime, fmt: str, origin: Origin) -> uuid.UUID:
    args = {"since": since.isoformat(), "until": until.isoformat(), "format": fmt}
    job = create_job(db, tenant_id=tenant_id, kind="audit.export", task_name=EXPORT_TASK,
                     args=args, created_by_user_id=user_id)
    record_export(db, tenant_id, Actor("user", str(user_id)), origin,
                  {**args, "job_id": str(job.id)})
    return job.id


def spooled_text() -> tempfile.SpooledTemporaryFile[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)


def text_view(raw: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)


def run(tenant_id: uuid.UUID, job_id: uuid.UUID, args: dict[str, Any],
        progress: Callable[[int], None]) -> dict[str, Any]:
    """The export job: rows → spooled file → storage (encrypted) → share link."""
    from config import get_settings
    from portcullis.db import tenant_session
    from portcullis.jobs.results import sealed
    from portcullis.links import service as links
    from workers.storage import ObjectStore

    since = datetime.fromisoformat(args["since"])
    until = datetime.fromisoformat(args["until"])
    fmt = args["format"]
    settings = get_settings()
    raw = spooled_text()
    text = text_view(raw)
    with tenant_session(tenant_id) as db:
        rows = write_export(db, tenant_id, since, until, fmt, text,
                            lambda done, total: progress(int(90 * done / max(total, 1))))
    text.flush()
    text.detach()
    size = raw.tell()
    raw.seek(0)
    key = f"exports/{uuid.uuid4().hex}"  # random: no tenant or job id in the object name
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    ObjectStore.from_settings(settings).put_stream(settings.S3_BUCKET, key, raw, content_type)
    raw.close()
    filename = f"audit-{since:%Y%m%d}-{until:%Y%m%d}.{fmt}"
    with tenant_session(tenant_id) as db:
        link = links.create(db, tenant_id, kind="export", bucket=settings.S3_BUCKET,
                            object_key=key, filename=filename, content_type=content_type,
                            size=size, expires_in=LINK_LIFETIME)
        expires_at = link.link.expires_at.isoformat()
    return {"url": sealed(link.url), "rows": rows, "format": fmt, "bytes": size,
            "expires_at": expires_at, "job_id": str(job_id)}
