"""The same guarantees on RabbitMQ (``CELERY_BROKER_URL=amqp://…``): a private node started
here, web-side sends, workers and beat all on it. A worker SIGKILLed mid-task hands its job
back; a message waiting in a queue survives a broker restart (durable queue, persistent
message, confirmed publish); a job accepted while the broker is down runs once it is back;
workers keep consuming across restarts.

The shared (Redis) worker is stopped throughout, so nothing here can be run by it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from config import get_settings
from devstack.rabbitmq import RabbitMQServer
from devstack.stack import LocalStack
from portcullis.jobs.queue import QUEUES, reset_producer, transport_config
from tests.support.worker import CeleryProcess, start_beat, start_worker
from tests.workers.test_job_runner import enqueue, load, wait_finished
from tests.workers.test_reliability import wait_running

pytestmark = pytest.mark.usefixtures("shared_worker_paused")


@pytest.fixture(scope="module")
def rabbit(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node; this process and every worker or beat started meanwhile
    send to it."""
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")).start()
    saved = os.environ.get("CELERY_BROKER_URL")
    os.environ.update(server.env())
    get_settings.cache_clear()
    reset_producer()
    try:
        yield server
    finally:
        if saved is not None:
            os.environ["CELERY_BROKER_URL"] = saved
        get_settings.cache_clear()
        reset_producer()
        server.close()


@pytest.fixture(scope="module")
def rabbit_worker(rabbit: RabbitMQServer, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[CeleryProcess]:
    """One worker on the node for the whole module; tests stop, kill and restart it."""
    process = start_worker(tmp_path_factory.mktemp("rabbit-worker") / "worker.log",
                           "rabbit", concurrency=1)
    try:
        yield process
    finally:
        process.stop(timeout=30)


def _restart(worker: CeleryProcess) -> None:
    worker.start()
    worker.wait_for_log("ready.", timeout=60)


def test_the_worker_and_producer_use_rabbitmq_with_confirms(
        rabbit: RabbitMQServer, rabbit_worker: CeleryProcess) -> None:
    config = transport_config(get_settings())
    assert config["broker_url"].startswith("amqp://")
    assert config["broker_transport_options"]["confirm_publish"] is True
    assert "visibility_timeout" not in config["broker_transport_options"]

    job_id = enqueue("tasks.default.sample_steps", {"steps": 2, "pause": 0.05})
    assert wait_finished(job_id, timeout=60).status == "succeeded"
    log = rabbit_worker.log.read_text(errors="replace")
    assert "amqp://portcullis:**@127.0.0.1" in log
    with Connection(rabbit.url()) as conn:  # every queue durable, declared by the worker
        channel = conn.channel()
        for queue in QUEUES:
            channel.queue_declare(queue=queue, passive=True, durable=True)


def test_a_worker_killed_mid_task_hands_the_job_back(rabbit_worker: CeleryProcess) -> None:
    job_id = enqueue("tasks.default.sample_steps", {"steps": 20, "pause": 0.3})
    wait_running(job_id)
    rabbit_worker.kill()
    assert load(job_id).status == "running"  # nobody acknowledged it

    _restart(rabbit_worker)
    job = wait_finished(job_id, timeout=90)
    assert job.status == "succeeded"
    assert job.result == {"steps": 20, "attempt": 2}


def test_a_queued_message_survives_a_broker_restart(rabbit: RabbitMQServer,
                                                    rabbit_worker: CeleryProcess) -> None:
    """No worker and no beat (no sweeper to resend it): only RabbitMQ keeps the message."""
    rabbit_worker.stop(timeout=30)
    try:
        job_id = enqueue("tasks.default.sample_steps", {"steps": 1, "pause": 0})
        rabbit.restart()
    finally:
        _restart(rabbit_worker)
    job = wait_finished(job_id, timeout=60)
    assert job.status == "succeeded"
    assert job.attempts == 1  # delivered once, not resent


def test_a_job_accepted_while_the_broker_is_down_runs_once_it_is_back(
        rabbit: RabbitMQServer, rabbit_worker: CeleryProcess, tmp_path: Path) -> None:
    beat = start_beat(tmp_path / "beat.log", "rabbit-beat")
    try:
        beat.wait_for_log("beat: Acquired lock", timeout=60)
        rabbit.stop()
        try:
            started = time.monotonic()
            job_id = enqueue("tasks.default.sample_steps", {"steps": 2, "pause": 0.1})
            assert time.monotonic() - started < 10, "enqueue must not hang on a dead broker"
            assert load(job_id).status == "queued"  # committed: the database is the truth
            time.sleep(1)
        finally:
            rabbit.start()
        job = wait_finished(job_id, timeout=120)  # the sweeper resent it
        assert job.status == "succeeded"

        # The worker reconnected: the next job runs without any resend.
        later = enqueue("tasks.default.sample_steps", {"steps": 1, "pause": 0})
        assert wait_finished(later, timeout=60).status == "succeeded"
        assert rabbit_worker.running, rabbit_worker.tail()
        assert beat.running, beat.tail()
    finally:
        beat.stop()


def test_a_retry_with_backoff_is_delivered_again(rabbit_worker: CeleryProcess) -> None:
    """A dependency down for the first attempt: the retry's countdown on RabbitMQ."""
    job_id = enqueue("tasks.default.sample_fail", {"mode": "dependency"})
    job = wait_finished(job_id, timeout=60)
    assert job.status == "succeeded"
    assert job.result == {"attempt": 2}
