"""audit_export: audit export throughput against PostgreSQL's own COPY of the same rows.

One tenant holds 200,000 audit events over the last year (written by PostgreSQL itself,
``INSERT ... SELECT generate_series`` as the superuser: NOT a valid hash chain, which an
export never reads). The export covers the whole year.

Measured, same run, alternating: ``portcullis.audit.export.write_export`` (JSONL, then CSV)
inside ``portcullis.db.tenant_session``, with its progress reports, into the export job's
own spooled temporary file (``export.spool_file()``, an anonymous temporary file); and psycopg
``COPY (SELECT <the CSV columns> ... same filter, same order) TO STDOUT (FORMAT csv,
HEADER)`` as the application's role under row-level security, every chunk read. The
storage upload and share link of the real job are part of neither.

Ratio = export rows/s ÷ COPY rows/s (COPY: best of its three runs); goal >= 0.5, for each
format.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.audit_page import admin_cookie, bulk_load, seed_events, superuser, superuser_dsn
from bench.harness import CpuWatch, Services, verdict

NAME = "audit_export"
GOAL = 0.5
EVENTS = 200_000
COPY_RUNS = 3  # COPY is cheap: run before each export and once after, keep the best

COPY_SQL = """
COPY (SELECT id, occurred_at, action, severity, actor_type, actor_id, target_type,
             target_id, ip, user_agent, details
      FROM audit_events
      WHERE tenant_id = {tenant} AND occurred_at >= {since} AND occurred_at < {until}
      ORDER BY occurred_at, id)
TO STDOUT (FORMAT csv, HEADER)
"""


def run(svc: Services) -> bool:
    print(f"[{NAME}] write_export (jsonl, csv) vs COPY ... TO STDOUT (csv) of the same "
          f"{EVENTS:,} events, same run, alternating", flush=True)
    tenant_id, _cookie, _csrf = admin_cookie("Bench audit export")
    now = datetime.now(UTC)
    since, until = now - timedelta(days=366), now + timedelta(minutes=1)
    started = time.monotonic()
    with superuser(svc) as conn:
        with bulk_load(conn, rebuild_indexes=False):
            seed_events(conn, tenant_id, EVENTS, now)
        conn.execute("ANALYZE audit_events")
    print(f"[{NAME}] seeded {EVENTS:,} events with generate_series + ANALYZE in "
          f"{time.monotonic() - started:.1f}s (NOT a valid hash chain - synthetic rows; an "
          f"export never reads the chain)", flush=True)

    _export(tenant_id, since, until, "csv", limit_rows=5_000)  # warm up imports and caches
    _copy(svc, tenant_id, since, until)
    results: dict[str, list[tuple[int, float]]] = {"copy": [], "jsonl": [], "csv": []}

    def copy_once() -> None:
        rows, seconds, size = _copy(svc, tenant_id, since, until)
        results["copy"].append((rows, seconds))
        print(f"[{NAME}] COPY csv:     {rows:,} rows, {size / 1e6:5.1f} MB in {seconds:6.2f}s "
              f"= {rows / seconds:9,.0f} rows/s", flush=True)

    with CpuWatch() as watch:
        for fmt in ("jsonl", "csv"):
            copy_once()
            rows, seconds, size = _export(tenant_id, since, until, fmt)
            results[fmt].append((rows, seconds))
            print(f"[{NAME}] export {fmt:5}: {rows:,} rows, {size / 1e6:5.1f} MB in "
                  f"{seconds:6.2f}s = {rows / seconds:9,.0f} rows/s", flush=True)
        copy_once()
    print(f"[{NAME}] {watch.describe()}", flush=True)

    counts = {rows for rs in results.values() for rows, _ in rs}
    if counts != {EVENTS}:
        print(f"[{NAME}] WARNING: row counts differ: {sorted(counts)} (expected {EVENTS})",
              flush=True)
    best = {k: max(rows / seconds for rows, seconds in rs) for k, rs in results.items()}
    print(f"[{NAME}] best rows/s: COPY {best['copy']:,.0f}, export jsonl "
          f"{best['jsonl']:,.0f}, export csv {best['csv']:,.0f}", flush=True)
    met_jsonl = verdict(f"{NAME} jsonl", best["jsonl"] / best["copy"], GOAL, "export/COPY")
    met_csv = verdict(f"{NAME} csv", best["csv"] / best["copy"], GOAL, "export/COPY")
    met = met_jsonl and met_csv and counts == {EVENTS}
    print(f"[{NAME}] both formats: {'MET' if met else 'NOT MET'}", flush=True)
    return met


def _export(tenant_id: uuid.UUID, since: datetime, until: datetime, fmt: str,
            limit_rows: int | None = None) -> tuple[int, float, int]:
    """write_export into the job's own spooled file; returns (rows, seconds, bytes)."""
    from portcullis.audit import export
    from portcullis.db import tenant_session

    with export.spool_file() as spool:
        started = time.perf_counter()
        with tenant_session(tenant_id) as db:
            if limit_rows is not None:
                until = _nth_time(db, tenant_id, since, limit_rows)
            rows = export.write_export(db, tenant_id, since, until, fmt, spool,
                                       lambda done, total: None)
        seconds = time.perf_counter() - started
        size = spool.tell()
    return rows, seconds, size


def _nth_time(db: Any, tenant_id: uuid.UUID, since: datetime, n: int) -> datetime:
    from sqlalchemy import select

    from portcullis.audit.models import AuditEvent

    stmt = (select(AuditEvent.occurred_at).where(AuditEvent.tenant_id == tenant_id,
                                                 AuditEvent.occurred_at >= since)
            .order_by(AuditEvent.occurred_at).offset(n).limit(1))
    return db.scalar(stmt) or since


def _copy(svc: Services, tenant_id: uuid.UUID, since: datetime,
          until: datetime) -> tuple[int, float, int]:
    """COPY the same rows as the app role under RLS; returns (rows, seconds, bytes)."""
    import psycopg
    from psycopg import sql

    from portcullis.db.roles import APP_ROLE, TENANT_SETTING

    statement = sql.SQL(COPY_SQL).format(tenant=sql.Literal(tenant_id),
                                         since=sql.Literal(since), until=sql.Literal(until))
    size = newlines = 0
    with psycopg.connect(superuser_dsn(svc)) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)))
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant_id)))
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for chunk in copy:
                size += len(chunk)
                newlines += bytes(chunk).count(b"\n")
        seconds = time.perf_counter() - started
    # One line per row plus the header (no field of these rows holds a newline).
    return newlines - 1, seconds, size


if __name__ == "__main__":
    from bench.harness import services

    with services() as _svc:
        run(_svc)
