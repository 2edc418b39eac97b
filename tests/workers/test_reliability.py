"""Nothing is lost: the broker down at commit (Redis restarted empty under a running worker
and beat), a worker killed mid-task, a deploy's SIGTERM, and two beats started at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.support.worker import CeleryProcess, start_beat, start_worker
from tests.workers.test_job_runner import enqueue, load, wait_finished


def wait_running(job_id: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = load(job_id)  # type: ignore[arg-type]
        if job.status == "running" and job.progress > 0:
            return
        time.sleep(0.05)
    raise AssertionError("job never started")


@pytest.mark.usefixtures("shared_worker_paused")
def test_worker_killed_mid_task_leaves_the_job_to_run_again(tmp_path: Path,
                                                            beat: CeleryProcess) -> None:
    first = start_worker(tmp_path / "first.log", "first", concurrency=1)
    job_id = enqueue("tasks.default.sample_steps", {"steps": 20, "pause": 0.3})
    wait_running(job_id)
    first.kill()
    assert load(job_id).status == "running"  # the database still says so: nobody acked it

    second = start_worker(tmp_path / "second.log", "second", concurrency=1)
    try:
        job = wait_finished(job_id, timeout=90)
    finally:
        second.stop()
    assert job.status == "succeeded"
    assert job.result == {"steps": 20, "attempt": 2}


@pytest.mark.usefixtures("shared_worker_paused")
def test_sigterm_lets_the_running_task_finish(tmp_path: Path) -> None:
    draining = start_worker(tmp_path / "draining.log", "draining", concurrency=1)
    job_id = enqueue("tasks.default.sample_steps", {"steps": 6, "pause": 0.5})
    wait_running(job_id)
    assert draining.proc is not None
    draining.proc.send_signal(signal.SIGTERM)  # as a deploy does: the main process only
    draining.proc.wait(timeout=60)
    job = load(job_id)
    assert job.status == "succeeded"
    assert job.result == {"steps": 6, "attempt": 1}


def test_job_enqueued_while_redis_is_down_runs_after_it_returns(
        stack: LocalStack, worker: CeleryProcess, beat: CeleryProcess) -> None:
    redis_server = stack["redis"]
    beat.wait_for_log("beat: Acquired lock")  # beat is connected when Redis goes away
    # A send while Redis is up first: a producer that subscribed to task results would now
    # be connected to them, and stall for 20 s reconnecting once Redis is gone.
    earlier = enqueue("tasks.default.sample_steps", {"steps": 1, "pause": 0})
    assert wait_finished(earlier, timeout=60).status == "succeeded"
    redis_server.stop()
    try:
        started = time.monotonic()
        job_id = enqueue("tasks.default.sample_steps", {"steps": 2, "pause": 0.1})
        assert time.monotonic() - started < 10, "enqueue must not hang on a dead broker"
        assert load(job_id).status == "queued"  # committed: the database is the truth
        time.sleep(1)
    finally:
        redis_server.start()
    job = wait_finished(job_id, timeout=120)
    assert job.status == "succeeded"


def test_two_beats_send_each_schedule_once(tmp_path: Path, stack: LocalStack) -> None:
    first = start_beat(tmp_path / "beat1.log", "beat1")
    time.sleep(2)
    second = start_beat(tmp_path / "beat2.log", "beat2")
    try:
        time.sleep(12)
        sent = [p.log.read_text().count("Sending due task requeue-stuck-jobs")
                for p in (first, second)]
    finally:
        first.stop()
        second.stop()
    assert sent[0] >= 1, first.tail()
    assert sent[1] == 0, second.tail()
