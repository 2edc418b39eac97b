"""A worker or beat that stays up but stops working is caught, one that exits comes back:
the liveness file and its check, the devstack supervisor acting on both, and an ack on a
channel a broker restart closed that no longer ends the worker."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kombu import Exchange, Queue

from devstack.redis import RedisServer
from devstack.stack import LocalStack
from devstack.supervisor import Child, Supervisor
from tests.support.worker import ROOT, CeleryProcess, celery_argv, celery_env, worker_args
from tests.workers.test_job_runner import enqueue, wait_finished
from workers.liveness import ENV as LIVENESS_ENV


def check(path: Path, max_age: float) -> int:
    """``python -m workers.liveness``, as a supervisor or HEALTHCHECK runs it."""
    return subprocess.run([sys.executable, "-m", "workers.liveness", "--file", str(path),
                           "--max-age", str(max_age)], cwd=ROOT, capture_output=True,
                          timeout=30, check=False).returncode


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.2)


def test_check_reports_a_stopped_or_disconnected_worker(stack: LocalStack,
                                                        worker: CeleryProcess,
                                                        tmp_path: Path) -> None:
    assert check(tmp_path / "missing.alive", 60) == 1
    worker.wait_live()
    assert check(worker.liveness, 10) == 0

    worker.send_signal(signal.SIGSTOP)  # up, but its event loop no longer runs
    try:
        wait_for(lambda: check(worker.liveness, 3) == 1, 30, "stale while stopped")
    finally:
        worker.send_signal(signal.SIGCONT)
    wait_for(lambda: check(worker.liveness, 3) == 0, 30, "live again")

    redis_server: RedisServer = stack["redis"]
    redis_server.stop()  # up and running, but consuming nothing
    try:
        wait_for(lambda: check(worker.liveness, 3) == 1, 30, "stale while disconnected")
    finally:
        redis_server.start()
    wait_for(lambda: check(worker.liveness, 3) == 0, 60, "live after the broker returned")
    assert wait_finished(enqueue("tasks.default.sample_steps"), 60).status == "succeeded"


@pytest.mark.usefixtures("stack")
def test_supervisor_restarts_a_worker_that_exits_or_stops_consuming(tmp_path: Path) -> None:
    liveness = tmp_path / "worker.alive"
    child = Child("worker", celery_argv(worker_args("supervised", concurrency=1)),
                  celery_env({LIVENESS_ENV: str(liveness)}), ROOT, liveness=liveness,
                  max_age=4, grace=90, log=tmp_path / "worker.log")
    said: list[str] = []
    supervisor = Supervisor([child], say=said.append).start().run_in_thread()

    def live_again(after: float) -> Callable[[], bool]:
        return lambda: (child.running and liveness.exists()
                        and liveness.stat().st_mtime > after)

    try:
        wait_for(live_again(0), 90, "first start live")
        first = child.proc.pid  # type: ignore[union-attr]
        os.killpg(first, signal.SIGKILL)  # exits: started again after a backoff
        killed = time.time()
        wait_for(live_again(killed), 90, "restarted after exiting")
        second = child.proc.pid  # type: ignore[union-attr]
        assert second != first

        os.killpg(second, signal.SIGSTOP)  # stays up, stops consuming: restarted
        stopped = time.time()
        wait_for(live_again(stopped), 90, "restarted after going stale")  # and consuming
        assert child.proc.pid != second  # type: ignore[union-attr]
    finally:
        supervisor.stop()
    assert any("exited" in line for line in said), said
    assert any("is not live" in line for line in said), said
    assert not child.running


def test_ack_on_a_channel_a_broker_restart_closed_does_not_end_the_worker(
        stack: LocalStack) -> None:
    """The state a broker restart leaves a task's channel in: its connection was closed
    while Redis was down (so the channel could not close), then its pool was dropped. Stock
    kombu raises ``AttributeError: 'NoneType' object has no attribute 'hostname'`` from
    ``_connparams`` on the ack, which ``ack_log_error`` does not catch, and the worker exits;
    with ``workers.broker`` it is a connection error, logged."""
    # Imported here: the app reads the stack's settings when it is first imported.
    from tasks.maintenance import requeue_stuck_jobs
    from workers.celery_app import celery_app

    queue = Queue("acktest", Exchange("acktest"), routing_key="acktest")
    celery_app.send_task(requeue_stuck_jobs.name, queue=queue)
    connection = celery_app.connection_for_read()
    message = None
    deadline = time.monotonic() + 10
    while message is None and time.monotonic() < deadline:
        message = queue(connection.default_channel).get(no_ack=False)
    assert message is not None
    redis_server: RedisServer = stack["redis"]
    redis_server.stop()
    try:
        connection.close()  # what the consumer does to its old connection on a reconnect
    finally:
        redis_server.start()
    message.channel._disconnect_pools()  # as the channel does after a connection error

    # What a worker's request does after the task returns (kombu/message.py).
    message.ack_log_error(logging.getLogger("test"), connection.connection_errors)
