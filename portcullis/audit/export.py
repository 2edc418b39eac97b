"""Audit queries and exports: one row shape for the API, JSONL and CSV.

Exports are PostgreSQL's own ``COPY (SELECT ...) TO STDOUT`` under the tenant's row-level
security, streamed in batches into a temporary file (bounded memory), then to storage, and
answered with a share link. The SELECT renders each row as the API renders it
(``event_json``): the same timestamps, the same JSON values. CSV cells that a spreadsheet
would run as a formula are escaped. The vocabulary columns (action, severity, actor and
target type) hold identifiers only (checked by the table), so they need no escaping.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from psycopg import sql
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
BATCH_ROWS = 4096  # rows per write (about 2 MB) and per progress report


def timestamp(value: datetime) -> str:
    """RFC 3339 UTC with microseconds: what the API and the exports both print."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "occurred_at": timestamp(event.occurred_at),
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


# --- the export's SELECT, rendered by PostgreSQL -------------------------------------------

_TIMESTAMP = """to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _formula_safe(column: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in a free-text column."""
    return (f"CASE WHEN ascii({column}) IN (61, 43, 45, 64, 9, 13) "  # = + - @ tab CR
            f"THEN '''' || {column} ELSE {column} END")


def _json(column: str) -> str:
    return f"coalesce(to_json({column})::text, 'null')"


_CSV_SELECT = ", ".join([
    "id", f"{_TIMESTAMP} AS occurred_at", "action", "severity", "actor_type",
    f"{_formula_safe('actor_id')} AS actor_id", "target_type",
    f"{_formula_safe('target_id')} AS target_id", "host(ip) AS ip",
    f"{_formula_safe('user_agent')} AS user_agent", "details",
])

# One JSON object per row, keys in event_json's order. Concatenation costs a fraction of
# json_build_object; free text goes through to_json, identifiers are quoted as they are.
_JSONL_SELECT = " || ".join([
    """'{"id":"' || id""",
    """'","occurred_at":"' || """ + _TIMESTAMP,
    """'","action":"' || action""",
    """'","severity":"' || severity""",
    """'","actor":{"type":"' || actor_type""",
    """'","id":' || """ + _json("actor_id"),
    """'},"target":' || CASE WHEN target_type IS NULL THEN 'null' ELSE """
    """'{"type":"' || target_type || '","id":' || """ + _json("target_id") + " || '}' END",
    """',"ip":' || coalesce('"' || host(ip) || '"', 'null')""",
    """',"user_agent":' || """ + _json("user_agent"),
    """',"details":' || details::text || '}'""",
])

# Valid JSON may hold U+2028, U+2029 and U+0085 raw, and many line readers split on them:
# a hostile user agent must not cut its own event in two. ``_LINE_BREAKS`` escapes them
# (they read the same); in Python, one byte search per batch, far cheaper than in SQL.
_LINE_BREAKS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"),
                (b"\xc2\x85", b"\\u0085"))


def _write_lines(out: IO[bytes], buffer: bytearray, fmt: str) -> None:
    """Write and empty ``buffer`` (whole lines), escaping line breaks in JSONL."""
    data = buffer
    # A lead byte is a memchr; the exact searches (and a copy) only where one turns up.
    if fmt == "jsonl" and (b"\xe2" in data or b"\xc2" in data):
        for raw, escaped in _LINE_BREAKS:
            if raw in data:
                data = data.replace(raw, escaped)
    out.write(data)
    buffer.clear()


# JSON text never holds a raw control character, so CSV with these as quote and delimiter
# never quotes: each output line is the JSON object as it is.
_COPY_OPTIONS = {
    "csv": "FORMAT csv, HEADER, ENCODING 'UTF8'",
    "jsonl": "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02', ENCODING 'UTF8'",
}


def copy_statement(fmt: str, tenant_id: uuid.UUID, since: datetime,
                   until: datetime) -> sql.Composed:
    columns = _CSV_SELECT if fmt == "csv" else _JSONL_SELECT
    return sql.SQL(
        "COPY (SELECT {columns} FROM audit_events WHERE tenant_id = {tenant} "
        "AND occurred_at >= {since} AND occurred_at < {until} "
        "ORDER BY audit_events.occurred_at, audit_events.id) "  # the columns, not the aliases
        "TO STDOUT ({options})"
    ).format(columns=sql.SQL(columns),
             tenant=sql.Literal(tenant_id), since=sql.Literal(since),
             until=sql.Literal(until), options=sql.SQL(_COPY_OPTIONS[fmt]))


def count_events(db: Session, tenant_id: uuid.UUID, since: datetime, until: datetime) -> int:
    stmt = query(tenant_id, since=since, until=until).with_only_columns(func.count())
    return int(db.scalar(stmt) or 0)


def write_export(db: Session, tenant_id: uuid.UUID, since: datetime, until: datetime,
                 fmt: str, out: IO[bytes],
                 progress: Callable[[int, int], None] | None = None) -> int:
    """COPY every matching row into ``out`` as UTF-8; returns the number of rows.

    Runs in ``db``'s transaction, so the tenant scope and row-level security hold. Rows are
    gathered into batches: one write, one escape check per batch, not per row. Calls
    ``progress(rows so far, total)`` per batch: PostgreSQL sends each row of a COPY as one
    message, so the messages count the rows.
    """
    total = count_events(db, tenant_id, since, until) if progress else 0
    statement = copy_statement(fmt, tenant_id, since, until)
    connection = db.connection().connection.driver_connection
    buffer = bytearray()
    with connection.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for messages, row in enumerate(copy, 1):
                buffer += row
                if not messages % BATCH_ROWS:
                    _write_lines(out, buffer, fmt)
                    if progress:
                        progress(min(messages, total), total)
            _write_lines(out, buffer, fmt)
        rows = int(cursor.rowcount)
    if progress:
        progress(rows, max(total, rows))
    return rows


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


def spool_file() -> IO[bytes]:
    """An anonymous temporary file: bounded memory, and a buffered write in C per row."""
    return tempfile.TemporaryFile()


def run(tenant_id: uuid.UUID, job_id: uuid.UUID, args: dict[str, Any],
        progress: Callable[[int], None]) -> dict[str, Any]:
    """The export job: rows → temporary file → storage (encrypted) → share link."""
    from config import get_settings
    from portcullis.clients.object_store import ObjectStore
    from portcullis.db import tenant_session
    from portcullis.jobs.results import sealed
    from portcullis.links import service as links

    since = datetime.fromisoformat(args["since"])
    until = datetime.fromisoformat(args["until"])
    fmt = args["format"]
    settings = get_settings()
    with spool_file() as spool:
        reported = -1

        def report(done: int, total: int) -> None:  # one job-row update per percent
            nonlocal reported
            percent = int(90 * done / max(total, 1))
            if percent != reported:
                reported = percent
                progress(percent)

        with tenant_session(tenant_id) as db:
            rows = write_export(db, tenant_id, since, until, fmt, spool, report)
        size = spool.tell()
        spool.seek(0)
        key = f"exports/{uuid.uuid4().hex}"  # random: no tenant or job id in the object name
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        ObjectStore.from_settings(settings).put_stream(settings.S3_BUCKET, key, spool,
                                                       content_type)
    filename = f"audit-{since:%Y%m%d}-{until:%Y%m%d}.{fmt}"
    with tenant_session(tenant_id) as db:
        link = links.create(db, tenant_id, kind="export", bucket=settings.S3_BUCKET,
                            object_key=key, filename=filename, content_type=content_type,
                            size=size, expires_in=LINK_LIFETIME)
        expires_at = link.link.expires_at.isoformat()
    return {"url": sealed(link.url), "rows": rows, "format": fmt, "bytes": size,
            "expires_at": expires_at, "job_id": str(job_id)}
