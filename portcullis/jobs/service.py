"""The life of a job: created with its transaction, claimed under a lease, finished once.

Claiming is a conditional UPDATE, so a duplicated message (sweeper resend, broker
redelivery) runs the job at most once at a time; a job whose worker died is claimable
again when its heartbeat is older than the lease.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Select, Text, bindparam, literal_column, or_, select, update
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.callers import Caller, Kind
from portcullis.db import system_session, tenant_session
from portcullis.db.session import compiled_sql, system_cursor
from portcullis.errors import NotFound
from portcullis.jobs import dispatch, results
from portcullis.jobs.models import Job, JobStatus
from portcullis.secretbox import Unsealable

log = logging.getLogger(__name__)

GiveUp = Callable[[uuid.UUID | None, dict[str, Any]], None]  # (tenant_id, job args)
_give_up_handlers: dict[str, GiveUp] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def on_give_up(kind: str) -> Callable[[GiveUp], GiveUp]:
    """Register what the domain does when a job of ``kind`` fails for good.

    A failed job is never run again, so whatever waited on it (an upload still
    ``scanning``) must be settled here, or it waits forever.
    """

    def register(handler: GiveUp) -> GiveUp:
        _give_up_handlers[kind] = handler
        return handler

    return register


def _gave_up(kind: str, tenant_id: uuid.UUID | None, args: dict[str, Any]) -> None:
    handler = _give_up_handlers.get(kind)
    if handler is None:
        return
    try:
        handler(tenant_id, args)
    except Exception:  # the job is failed either way; the handler's own failure is logged
        log.exception("settling failed job of kind %s failed", kind)


def create_job(
    session: Session,
    *,
    tenant_id: uuid.UUID | None,
    kind: str,
    task_name: str,
    args: dict[str, Any] | None = None,
    created_by_user_id: uuid.UUID | None = None,
    operator_key_id: uuid.UUID | None = None,
    flush: bool = True,
) -> Job:
    """Add a queued job to the caller's transaction; its task is sent after commit.
    ``flush=False`` leaves the insert to the next flush (a batch inserts its jobs at once)."""
    job = Job(
        id=uuid.uuid4(), tenant_id=tenant_id, kind=kind, task_name=task_name, args=args or {},
        status=JobStatus.queued, progress=0, attempts=0,
        created_by_user_id=created_by_user_id, created_by_operator_key_id=operator_key_id,
    )
    session.add(job)
    if flush:
        session.flush()
    dispatch.send_after_commit(session, task_name, job.id)
    return job


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    kind: str
    args: dict[str, Any]
    attempts: int


_CLAIM = compiled_sql(
    update(Job)
    .where(Job.id == bindparam("job_id"))
    .where(or_(Job.status == literal_column(f"'{JobStatus.queued}'"),
               (Job.status == literal_column(f"'{JobStatus.running}'"))
               & (Job.heartbeat_at < bindparam("stale_before"))))
    .values(status=literal_column(f"'{JobStatus.running}'"),
            attempts=Job.attempts + literal_column("1"), heartbeat_at=bindparam("now"),
            started_at=bindparam("now"), error=literal_column("NULL"))
    .returning(Job.id, Job.tenant_id, Job.kind, Job.args, Job.attempts))

# The runner's statements go through ``system_cursor``: one pipelined transaction each,
# without a session's bookkeeping, which cost more than the statements on every job.
_JSON_COLUMNS = frozenset({"result", "error"})
_UPDATES: dict[tuple[str, ...], str] = {}


def claim(job_id: uuid.UUID) -> ClaimedJob | None:
    """Mark the job running for this worker, or None if it is finished or alive elsewhere."""
    now = _now()
    stale_before = now - timedelta(seconds=get_settings().JOB_LEASE_SECONDS)
    with system_cursor() as cur:
        cur.execute(_CLAIM, {"job_id": job_id, "now": now, "stale_before": stale_before})
        row = cur.fetchone()
    if row is None:
        return None
    return ClaimedJob(row.id, row.tenant_id, row.kind, dict(row.args), row.attempts)


def lease_left(job_id: uuid.UUID) -> float | None:
    """Seconds until a running job's lease runs out (0 once it has); None when it is not
    running. A message delivered again while its job still runs elsewhere (RabbitMQ hands a
    dead worker's message back at once, before its lease ran out) waits this long and tries
    the claim again, instead of being dropped for the sweeper to find."""
    with system_session() as db:
        heartbeat = db.scalar(select(Job.heartbeat_at).where(
            Job.id == job_id, Job.status == JobStatus.running))
    if heartbeat is None:
        return None
    lease = timedelta(seconds=get_settings().JOB_LEASE_SECONDS)
    return max(0.0, (heartbeat + lease - _now()).total_seconds())


def _update_sql(columns: tuple[str, ...]) -> str:
    sql = _UPDATES.get(columns)
    if sql is None:
        sql = _UPDATES[columns] = compiled_sql(
            update(Job).where(Job.id == bindparam("job_id"),
                              Job.status == literal_column(f"'{JobStatus.running}'"),
                              Job.attempts == bindparam("attempts"))
            .values({name: bindparam(f"v_{name}") for name in columns})
            .returning(Job.id))
    return sql


def _update_running(job: ClaimedJob, **values: Any) -> bool:
    """Update the job only while this claim holds it: a worker whose lease ran out and whose
    job another worker took over (a later attempt) changes nothing."""
    columns = tuple(sorted(values))
    params: dict[str, Any] = {"job_id": job.id, "attempts": job.attempts}
    for name in columns:
        value = values[name]
        if name in _JSON_COLUMNS and value is not None:
            value = Jsonb(value)
        elif isinstance(value, StrEnum):
            value = str(value)
        params[f"v_{name}"] = value
    with system_cursor() as cur:
        return cur.execute(_update_sql(columns), params).fetchone() is not None


def heartbeat(job: ClaimedJob) -> None:
    _update_running(job, heartbeat_at=_now())


def report_progress(job: ClaimedJob, percent: int) -> None:
    _update_running(job, progress=max(0, min(100, int(percent))), heartbeat_at=_now())


def succeed(job: ClaimedJob, result: dict[str, Any] | None) -> None:
    _update_running(job, status=JobStatus.succeeded, progress=100, result=result,
                    finished_at=_now())


def fail(job: ClaimedJob, code: str, detail: str) -> None:
    failed = _update_running(job, status=JobStatus.failed,
                             error={"code": code, "detail": detail}, finished_at=_now())
    if failed:
        _gave_up(job.kind, job.tenant_id, job.args)


def release_for_retry(job: ClaimedJob, retry_at: datetime) -> None:
    """Back to queued while a dependency is down; the sweeper waits until after ``retry_at``."""
    _update_running(job, status=JobStatus.queued, sent_at=retry_at)


def requeue_stuck(limit: int = 500) -> int:
    """Resend queued jobs never picked up and jobs whose worker died; returns how many."""
    settings = get_settings()
    now = _now()
    requeue_before = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS)
    lease_before = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    to_send: list[tuple[str, str]] = []
    given_up: list[tuple[str, uuid.UUID | None, dict[str, Any]]] = []
    with system_session() as session:
        jobs = session.scalars(
            select(Job)
            .where(or_(
                (Job.status == JobStatus.queued)
                & (Job.sent_at.is_(None) & (Job.created_at < requeue_before)
                   | (Job.sent_at < requeue_before)),
                (Job.status == JobStatus.running) & (Job.heartbeat_at < lease_before),
            ))
            .order_by(Job.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            if job.status == JobStatus.running and job.attempts >= settings.JOB_MAX_ATTEMPTS:
                job.status = JobStatus.failed
                job.error = {"code": "worker_lost",
                             "detail": f"the worker stopped during {job.attempts} attempts"}
                job.finished_at = now
                given_up.append((job.kind, job.tenant_id, dict(job.args)))
                continue
            job.status = JobStatus.queued
            job.sent_at = now
            to_send.append((job.task_name, str(job.id)))
    for kind, tenant_id, args in given_up:  # after the commit that failed them
        _gave_up(kind, tenant_id, args)
    return sum(dispatch.send_now(task_name, job_id) for task_name, job_id in to_send)


def get_job(session: Session, job_id: uuid.UUID) -> Job | None:
    """A job visible to the session's scope (row-level security hides other tenants')."""
    return session.get(Job, job_id)


@dataclass(frozen=True)
class JobView:
    """A job as its reader sees it: sealed secrets in its result revealed."""

    id: uuid.UUID
    kind: str
    status: str
    progress: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _view(session: Session, job: Job, creator: bool) -> JobView:
    """The job as ``creator`` (or another reader) sees it. The creator's first read of a
    secret sealed once reveals it and spends it, under the job's row lock so two reads at
    once cannot both reveal it."""
    once = False
    if creator and results.has_once(job.result):
        session.refresh(job, with_for_update=True)
        once = results.has_once(job.result)
    view = JobView(job.id, job.kind, job.status, job.progress,
                   results.reveal(job.result, once=once), job.error, job.created_at,
                   job.started_at, job.finished_at)
    if once:
        job.result = results.spent(job.result)
    return view


def read_job(caller: Caller, job_id: uuid.UUID) -> JobView:
    """A job its reader may see: an operator the jobs its key started; a member (or a key,
    acting as its creator) the tenant's jobs they started, an admin every job of the tenant.
    Any other job is as if it did not exist."""
    if caller.kind is Kind.operator:
        with system_session() as db:
            job = get_job(db, job_id)
            if job is None or caller.credential_id is None \
                    or job.created_by_operator_key_id != caller.credential_id:
                raise NotFound("job")
            return _view(db, job, creator=True)
    if not caller.is_member or caller.tenant_id is None:
        raise NotFound("job")
    with tenant_session(caller.tenant_id) as db:
        job = get_job(db, job_id)
        if job is None or job.tenant_id != caller.tenant_id or not (
                caller.is_admin or job.created_by_user_id == caller.user_id):
            raise NotFound("job")
        return _view(db, job, creator=job.created_by_user_id == caller.user_id)


# --- for other domains ---------------------------------------------------------------------


def operator_key_of(session: Session, job_id: uuid.UUID) -> uuid.UUID | None:
    """The operator key that started a job, if one did (its work acts as that operator)."""
    return session.scalar(select(Job.created_by_operator_key_id).where(Job.id == job_id))


def unfinished(session: Session, kind: str, args: dict[str, Any]) -> bool:
    """Whether a job of ``kind`` with exactly ``args`` is queued or running: a sweep that
    queues such work starts another only once it is done."""
    return session.scalar(select(Job.id).where(
        Job.status.in_([JobStatus.queued, JobStatus.running]), Job.kind == kind,
        Job.args == args).limit(1)) is not None


def failed_job_ids() -> Select[uuid.UUID]:
    """The ids of jobs that failed for good, as a subquery another domain filters by (what
    waited on them must be settled)."""
    return select(Job.id).where(Job.status == JobStatus.failed)


def send_after_commit(session: Session, task_name: str, object_id: uuid.UUID) -> None:
    """Send ``task_name(object_id)`` for an outbox row once ``session`` commits."""
    dispatch.send_after_commit(session, task_name, object_id)


def send_now(task_name: str, object_id: str) -> bool:
    """Send ``task_name(object_id)`` now; False when the broker is unreachable."""
    return dispatch.send_now(task_name, object_id)


def seal_result(value: str, *, once: bool = False) -> dict[str, Any]:
    """A secret for a job's result, sealed at rest and revealed only to the job's reader;
    ``once``: to its creator, on their first read only (a password)."""
    return results.sealed(value, once=once)


def reseal_results(progress: Callable[[int, int], None] | None = None,
                   batch: int = 500) -> tuple[int, int]:
    """Seal every secret kept in a job's result again under the current key (``secrets
    reencrypt``): how many results changed, and how many hold a secret no configured key
    opens (left as they are). Compare-and-set, so a result read (and spent) meanwhile is
    left as its reader wrote it."""
    with system_session() as db:
        ids = list(db.scalars(select(Job.id).where(Job.result.is_not(None),
                                                   Job.result.cast(Text).contains('"$sealed"'))
                              .order_by(Job.id)))
    changed = unreadable = 0
    for start in range(0, len(ids), batch):
        with system_session() as db:
            for job_id, result in db.execute(select(Job.id, Job.result)
                                             .where(Job.id.in_(ids[start:start + batch]))):
                try:
                    fresh = results.resealed(result)
                except Unsealable:
                    log.warning("job %s: a sealed result no configured key opens", job_id)
                    unreadable += 1
                    continue
                if fresh is not result:
                    done = db.execute(update(Job).where(Job.id == job_id,
                                                        Job.result == result)
                                      .values(result=fresh))
                    changed += int(done.rowcount or 0)  # type: ignore[attr-defined]
        if progress is not None:
            progress(min(start + batch, len(ids)), len(ids))
    return changed, unreadable
