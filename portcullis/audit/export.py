"""Audit queries and exports: one row shape for the API, JSONL and CSV.

Exports are PostgreSQL's own ``COPY (SELECT ...) TO STDOUT`` under the tenant's row-level
security, streamed in batches into a file (bounded memory); ``portcullis.exports`` sends it
to storage and answers a share link. The SELECT renders each row as the API renders it
(``event_json``): the same timestamps, the same JSON values. CSV cells that a spreadsheet
would run as a formula are escaped. The vocabulary columns (action, severity, actor and
target type) hold identifiers only (checked by the table), so they need no escaping.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from psycopg import sql
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from portcullis.audit.models import AuditEvent

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ["id", "occurred_at", "action", "severity", "actor_type", "actor_id",
               "target_type", "target_id", "ip", "user_agent", "details"]
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
          until: datetime | None = None) -> Select[AuditEvent]:
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
    assert connection is not None
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


def spool_file() -> IO[bytes]:
    """An anonymous temporary file: bounded memory, and a buffered write in C per row."""
    return tempfile.TemporaryFile()
