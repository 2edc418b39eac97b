"""Redis lost while web, worker and beat keep running: flushed (``FLUSHALL``), restarted
empty, restarted ten times under load. Every beat_schedule entry runs again (once, with two
beats), every job and alert accepted meanwhile completes, every worker consumes afterwards.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import redis

from beat_schedule import beat_schedule
from config import get_settings
from devstack.redis import RedisServer
from devstack.stack import LocalStack
from portcullis.alerts.models import AlertStatus
from tests.support.factories import make_tenant
from tests.support.worker import CeleryProcess, start_beat, start_worker
from tests.workers.test_alert_delivery import _raise, _row, _wait_delivered
from tests.workers.test_job_runner import enqueue, load, wait_finished

SENT = re.compile(r"^(\S+Z) \[info\s*\] Scheduler: Sending due task (\S+) ", re.MULTILINE)


def interval_entries() -> dict[str, float]:
    """The entries that run every minute or more often (crontab ones and the ten-minute
    drift repair are checked in Redis instead: they have a due time there)."""
    return {name: float(entry["schedule"])
            for name, entry in beat_schedule(get_settings()).items()
            if isinstance(entry["schedule"], float) and entry["schedule"] <= 60}


def sends(beats: Iterable[CeleryProcess]) -> list[tuple[datetime, str, str]]:
    """(time, entry, beat) for every send logged by these beats, in time order."""
    found = []
    for beat in beats:
        for stamp, name in SENT.findall(beat.log.read_text(errors="replace")):
            found.append((datetime.fromisoformat(stamp), name, beat.name))
    return sorted(found)


def wait_each_sent_after(beats: list[CeleryProcess], mark: datetime, what: str,
                         timeout: float) -> None:
    expected = set(interval_entries())
    deadline = time.monotonic() + timeout
    while True:
        seen = {name for stamp, name, _ in sends(beats) if stamp > mark}
        if expected <= seen:
            return
        for beat in beats:
            assert beat.running, f"{beat.name} exited after {what}:\n{beat.tail()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"not sent again after {what}: {sorted(expected - seen)}\n"
                                 + "\n".join(b.tail(15) for b in beats))
        time.sleep(0.2)


def assert_each_due_time_sent_once(beats: list[CeleryProcess]) -> None:
    """Across both beats, two sends of one entry are never closer than half its interval:
    a due time sent by both beats (or twice by one) would be."""
    by_entry: dict[str, list[tuple[datetime, str]]] = {}
    for stamp, name, beat in sends(beats):
        by_entry.setdefault(name, []).append((stamp, beat))
    for name, interval in interval_entries().items():
        timeline = by_entry.get(name, [])
        for (before, first), (after, second) in pairwise(timeline):
            gap = (after - before).total_seconds()
            assert gap > interval / 2, f"{name} sent twice: {first} {before}, {second} {after}"


def now() -> datetime:
    return datetime.now(UTC)


def test_schedule_survives_flushall_and_an_empty_restart(stack: LocalStack,
                                                         worker: CeleryProcess,
                                                         tmp_path: Path) -> None:
    redis_server: RedisServer = stack["redis"]
    window = max(interval_entries().values()) * 2 + 30  # one interval, a tick, a margin
    beats = [start_beat(tmp_path / "beat1.log", "beat1"),
             start_beat(tmp_path / "beat2.log", "beat2")]
    try:
        wait_each_sent_after(beats, datetime.min.replace(tzinfo=UTC), "start", 60)

        mark = now()
        redis_server.flushall()
        wait_each_sent_after(beats, mark, "FLUSHALL", window)

        tenant = make_tenant("Redis Loss Co")
        redis_server.stop()
        try:
            job_id = enqueue("tasks.default.sample_steps", {"steps": 2, "pause": 0.1})
            alert_id = _raise(tenant, 0)
            assert load(job_id).status == "queued"
            assert _row(alert_id).status == AlertStatus.pending
            time.sleep(1)
        finally:
            mark = now()
            redis_server.start()  # empty: nothing persisted
        wait_each_sent_after(beats, mark, "an empty restart", window)
        assert wait_finished(job_id, timeout=60).status == "succeeded"
        _wait_delivered([alert_id], timeout=60)

        from workers.celery_app import celery_app  # configured from the stack's settings

        client = redis.Redis.from_url(get_settings().REDIS_URL, decode_responses=True)
        prefix = celery_app.conf.redbeat_key_prefix
        for name in beat_schedule(get_settings()):  # crontab entries too, with a due time
            assert client.zscore(f"{prefix}:schedule", f"{prefix}{name}") is not None, name

        # A beat that does not hold the lock sends nothing: take it from both of them.
        lock_key = celery_app.conf.redbeat_lock_key
        logged = {beat.name: beat.log.read_text(errors="replace").count("lost the lock")
                  for beat in beats}
        client.set(lock_key, "another-beat", px=120_000)
        _wait(lambda: any(beat.log.read_text(errors="replace").count("lost the lock")
                          > logged[beat.name] for beat in beats), 30, "the loss noticed")
        mark = now()
        time.sleep(max(interval_entries().values()) + 1)  # every entry fell due meanwhile
        assert not [s for s in sends(beats) if s[0] > mark], "sent without the lock"
        client.delete(lock_key)
        wait_each_sent_after(beats, mark, "the lock was free again", window)
        for beat in beats:  # both kept ticking throughout, the standby too
            assert beat.is_live(max_age=15), beat.tail()
    finally:
        for beat in beats:
            beat.stop()
    assert_each_due_time_sent_once(beats)


def _touched_after(process: CeleryProcess, moment: float) -> bool:
    try:
        return process.running and process.liveness.stat().st_mtime > moment
    except FileNotFoundError:
        return False


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def test_ten_broker_restarts_under_load_lose_no_job(stack: LocalStack, worker: CeleryProcess,
                                                    beat: CeleryProcess,
                                                    tmp_path: Path) -> None:
    redis_server: RedisServer = stack["redis"]
    extra = start_worker(tmp_path / "extra.log", "restarts", concurrency=1)
    workers = [worker, extra]
    jobs: list[uuid.UUID] = []
    stop = threading.Event()

    def keep_enqueueing() -> None:
        while not stop.wait(0.25):
            jobs.append(enqueue("tasks.default.sample_steps", {"steps": 2, "pause": 0.05}))

    producer = threading.Thread(target=keep_enqueueing, daemon=True)
    try:
        for process in workers:
            process.wait_live()
        producer.start()
        for restart in range(10):
            restarted = time.time()
            redis_server.restart(down_for=0.3)
            for process in workers:  # reconnected and consuming again before the next one
                _wait(lambda p=process, t=restarted: _touched_after(p, t), 60,
                      f"{process.name} not consuming after restart {restart + 1}:\n"
                      f"{process.tail()}")
        stop.set()
        producer.join(30)
        assert len(jobs) > 20
        for job_id in jobs:
            job = wait_finished(job_id, timeout=120)
            assert job.status == "succeeded", (job_id, job.status, job.error)

        # Every worker still takes work: one-second jobs, one at a time per process.
        offsets = {p.name: len(p.log.read_text(errors="replace")) for p in workers}
        last = [enqueue("tasks.default.sample_steps", {"steps": 4, "pause": 0.25})
                for _ in range(6)]
        for job_id in last:
            assert wait_finished(job_id, timeout=90).status == "succeeded"
        for process in workers:
            assert process.running, process.tail()
            ran = process.log.read_text(errors="replace")[offsets[process.name]:]
            assert "tasks.default.sample_steps[" in ran and "succeeded in" in ran, (
                process.name, process.tail())
        assert beat.running, beat.tail()
    finally:
        stop.set()
        extra.stop(timeout=30)
