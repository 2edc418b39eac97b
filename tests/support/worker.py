"""A real Celery worker (or beat) subprocess against the test broker.

Each process touches its own liveness file next to its log (``CeleryProcess.liveness``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack.process import ServiceProcess
from portcullis.jobs.queue import QUEUES
from workers.liveness import ENV as LIVENESS_ENV
from workers.liveness import is_live

ROOT = Path(__file__).resolve().parents[2]
ALL_QUEUES = ",".join(QUEUES)


def eventually(read: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``read()``'s first truthy value, polled while a worker does its part."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("the worker did not get there in time")


def celery_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


class CeleryProcess(ServiceProcess):
    def __init__(self, name: str, args: list[str], log: Path,
                 env: dict[str, str] | None = None) -> None:
        argv = celery_argv(args)
        self.liveness = log.with_suffix(".alive")
        super().__init__(name, argv, log, env=celery_env({LIVENESS_ENV: str(self.liveness),
                                                    **(env or {})}), cwd=ROOT)

    def start(self) -> CeleryProcess:
        self.liveness.unlink(missing_ok=True)  # live only once this run has touched it
        super().start()
        return self

    def is_live(self, max_age: float = 10.0) -> bool:
        return self.running and is_live(self.liveness, max_age)

    def wait_live(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_live():
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not live in {timeout}s:\n{self.tail()}")
            time.sleep(0.1)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: {text!r} not logged in {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no warm shutdown, no acks, like a lost machine."""
        self.stop(timeout=5, sig=signal.SIGKILL)


def worker_args(name: str, concurrency: int = 2) -> list[str]:
    """``celery --app workers.celery_app`` arguments for a test worker named ``name``."""
    return ["worker", "--loglevel", "INFO", "--queues", ALL_QUEUES, "--concurrency",
            str(concurrency), "--hostname", f"{name}@%h", "--include",
            "tests.support.sample_tasks", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]


def celery_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "--app", "workers.celery_app", *args]


def start_worker(log: Path, name: str, concurrency: int = 2,
                 env: dict[str, str] | None = None) -> CeleryProcess:
    worker = CeleryProcess(name, worker_args(name, concurrency), log, env)
    worker.start()
    worker.wait_for_log("ready.", timeout=60)
    return worker


BEAT_SCHEDULER = "workers.beat:BeatScheduler"


def start_beat(log: Path, name: str, env: dict[str, str] | None = None) -> CeleryProcess:
    beat = CeleryProcess(name, ["beat", "--loglevel", "DEBUG", "--scheduler",
                                BEAT_SCHEDULER], log, env)
    beat.start()
    return beat
