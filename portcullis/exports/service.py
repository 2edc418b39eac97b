"""Audit exports: asked for (audited, alerted, a job), then run by a worker (the rows →
a temporary file → storage → a share link sealed in the job's result).

This sits above the domains it combines: audit renders the rows (and, at the bottom of the
domains, imports none of them), alerts raises ``alert.audit_export``, links makes the link,
jobs carries the work. Each export is audited and alerted in the transaction that asks for
it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from config import get_settings
from portcullis.alerts import service as alerts
from portcullis.audit import service as audit
from portcullis.callers import Caller
from portcullis.clients.object_store import ObjectStore
from portcullis.db import tenant_session
from portcullis.jobs import service as jobs
from portcullis.links import service as links

EXPORT_TASK = "tasks.exports.export_audit_events"
FORMATS = audit.FORMATS
LINK_LIFETIME = timedelta(days=7)
ACTION = "audit.exported"


def _record(db: Session, caller: Caller, tenant_id: uuid.UUID, details: dict[str, Any]) -> None:
    """Audit and alert an export, in the caller's transaction."""
    audit.record(db, caller, ACTION, audit.Target("tenant", str(tenant_id)), details,
                 tenant_id=tenant_id)
    alerts.raise_alert(db, tenant_id, alerts.AlertType.audit_export, audit.severity_of(ACTION),
                       "The audit log was exported", caller, caller.origin.ip, details)


def request_export(caller: Caller, since: datetime, until: datetime, fmt: str) -> uuid.UUID:
    """Queue an export of the caller's tenant's events; returns the job's id."""
    assert caller.tenant_id is not None and caller.user_id is not None and caller.role
    tenant_id = caller.tenant_id
    args = {"since": since.isoformat(), "until": until.isoformat(), "format": fmt}
    with tenant_session(tenant_id) as db:
        # The job is its member's (a key acting as its creator reads it); the audit event
        # and the alert name who asked: the member, or the access key itself.
        job = jobs.create_job(db, tenant_id=tenant_id, kind="audit.export",
                              task_name=EXPORT_TASK, args=args,
                              created_by_user_id=caller.user_id)
        _record(db, caller, tenant_id, {**args, "job_id": str(job.id)})
        return job.id


def export_to_file(caller: Caller, tenant_id: uuid.UUID, since: datetime, until: datetime,
                   fmt: str, path: str,
                   progress: Callable[[int, int], None] | None = None) -> int:
    """Export one tenant's events to the file at ``path`` (the operator CLI); audited and
    alerted first, in a transaction of their own. Returns the number of rows."""
    acting = caller.for_tenant(tenant_id)
    with tenant_session(tenant_id) as db:
        _record(db, acting, tenant_id, {"since": since.isoformat(), "until": until.isoformat(),
                                        "format": fmt, "via": "cli"})
    with open(path, "wb") as out, tenant_session(tenant_id) as db:
        return audit.write_export(db, tenant_id, since, until, fmt, out, progress)


def run(tenant_id: uuid.UUID, job_id: uuid.UUID, args: dict[str, Any],
        progress: Callable[[int], None]) -> dict[str, Any]:
    """The export job: rows → temporary file → storage (encrypted) → share link."""
    since = datetime.fromisoformat(args["since"])
    until = datetime.fromisoformat(args["until"])
    fmt = args["format"]
    settings = get_settings()
    with audit.spool_file() as spool:
        reported = -1

        def report(done: int, total: int) -> None:  # one job-row update per percent
            nonlocal reported
            percent = int(90 * done / max(total, 1))
            if percent != reported:
                reported = percent
                progress(percent)

        with tenant_session(tenant_id) as db:
            rows = audit.write_export(db, tenant_id, since, until, fmt, spool, report)
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
    return {"url": jobs.seal_result(link.url), "rows": rows, "format": fmt, "bytes": size,
            "expires_at": expires_at, "job_id": str(job_id)}
