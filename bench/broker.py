"""broker: what the job runner costs on top of Celery, on Redis and on RabbitMQ.

For each broker (the stack's Redis, and a private RabbitMQ node started here), one worker
(concurrency 2, every queue, as the test suite starts it) and, in the same run:

- jobs: ``BURST`` no-op jobs (``tasks.default.sample_steps`` with no steps) committed and
  sent the way the API does (a job row, then its task after commit), run by the real job
  runner (claim by conditional UPDATE, heartbeat, result recorded); the clock runs from the
  first commit until every row says ``succeeded``;
- baseline: ``BURST`` bare Celery no-op tasks (``tasks.default.sample_noop``) sent to the
  same broker and queue, until every result is in the result backend.

Also the one-at-a-time latency of each (median of ``SINGLE``). Ratio = bare seconds / job
seconds for the burst (the job runner's throughput relative to bare Celery's); goal >= 0.5
on each broker.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select

from bench.harness import Services, median, verdict

NAME = "broker"
GOAL_RATIO = 0.5
BURST = 300
SINGLE = 30
TIMEOUT_S = 300.0


@contextmanager
def _broker(url: str) -> Iterator[None]:
    """This process's producer and settings pointed at ``url`` meanwhile."""
    from config import get_settings
    from portcullis.jobs.queue import reset_producer

    saved = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = url
    get_settings.cache_clear()
    reset_producer()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved
        get_settings.cache_clear()
        reset_producer()


def _enqueue_jobs(tenant: uuid.UUID, count: int) -> list[uuid.UUID]:
    from portcullis.db import tenant_session
    from portcullis.jobs.service import create_job

    ids = []
    for _ in range(count):
        with tenant_session(tenant) as db:
            ids.append(create_job(db, tenant_id=tenant, kind="sample",
                                  task_name="tasks.default.sample_steps",
                                  args={"steps": 0}).id)
    return ids


def _wait_jobs(ids: list[uuid.UUID]) -> None:
    from portcullis.db import system_session
    from portcullis.jobs.models import Job

    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with system_session() as db:
            done = db.scalar(select(func.count()).select_from(Job).where(
                Job.id.in_(ids), Job.status == "succeeded")) or 0
        if done == len(ids):
            return
        time.sleep(0.005)
    raise RuntimeError(f"jobs not finished in {TIMEOUT_S:.0f}s")


def _send_bare(count: int) -> list[object]:
    from portcullis.jobs.queue import producer

    return [producer().send_task("tasks.default.sample_noop") for _ in range(count)]


def _wait_bare(results: list[object]) -> None:
    from celery.result import ResultSet

    ResultSet(results).join(timeout=TIMEOUT_S, interval=0.005)  # type: ignore[arg-type]


def _jobs_seconds(tenant: uuid.UUID, count: int, sent: list[float] | None = None) -> float:
    started = time.perf_counter()
    ids = _enqueue_jobs(tenant, count)
    if sent is not None:
        sent.append(time.perf_counter() - started)
    _wait_jobs(ids)
    return time.perf_counter() - started


def _bare_seconds(count: int) -> float:
    started = time.perf_counter()
    _wait_bare(_send_bare(count))
    return time.perf_counter() - started


def _measure(svc: Services, label: str, url: str) -> bool:
    from tests.support.factories import make_tenant
    from tests.support.worker import start_worker

    with _broker(url):
        worker = start_worker(svc.logs / f"broker-{label}.log", f"bench-{label}",
                              concurrency=2, env={"CELERY_BROKER_URL": url})
        try:
            tenant = make_tenant(f"Bench broker {label}")
            _jobs_seconds(tenant, 20)  # warm both paths: connections, forked children
            _bare_seconds(20)
            single_job = median([_jobs_seconds(tenant, 1) for _ in range(SINGLE)])
            single_bare = median([_bare_seconds(1) for _ in range(SINGLE)])
            bare = _bare_seconds(BURST)
            sent: list[float] = []
            jobs = _jobs_seconds(tenant, BURST, sent)
        finally:
            worker.stop(timeout=30)
    print(f"[{NAME}] {label}: one at a time: job {single_job * 1000:.1f} ms, bare task "
          f"{single_bare * 1000:.1f} ms", flush=True)
    print(f"[{NAME}] {label}: {BURST} at once: jobs {jobs:.2f} s ({BURST / jobs:.0f}/s), "
          f"bare tasks {bare:.2f} s ({BURST / bare:.0f}/s); the jobs' commits and sends took "
          f"{sent[0]:.2f} s", flush=True)
    return verdict(f"{NAME}:{label}", bare / jobs, GOAL_RATIO, "bare seconds / job seconds")


def run(svc: Services) -> bool:
    from devstack.rabbitmq import RabbitMQServer

    redis_url = svc.stack["redis"].url(1)
    met = _measure(svc, "redis", redis_url)
    rabbit = RabbitMQServer(svc.base / "rabbitmq").start()
    try:
        met = _measure(svc, "rabbitmq", rabbit.url()) and met
    finally:
        rabbit.close()
    return met
