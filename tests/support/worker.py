"""A real Celery worker (or beat) subprocess against the test broker."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from portcullis.devstack.process import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
ALL_QUEUES = "default,scan,sftp,billing,alerts,email,exports"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


class CeleryProcess(ServiceProcess):
    def __init__(self, name: str, args: list[str], log: Path,
                 env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "celery", "--app", "workers.celery_app", *args]
        super().__init__(name, argv, log, env=_env(env), cwd=ROOT)

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


def start_worker(log: Path, name: str, concurrency: int = 2,
                 env: dict[str, str] | None = None) -> CeleryProcess:
    worker = CeleryProcess(name, [
        "worker", "--loglevel", "INFO", "--queues", ALL_QUEUES, "--concurrency",
        str(concurrency), "--hostname", f"{name}@%h", "--include", "tests.support.sample_tasks",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ], log, env)
    worker.start()
    worker.wait_for_log("ready.", timeout=60)
    return worker


def start_beat(log: Path, name: str) -> CeleryProcess:
    beat = CeleryProcess(name, ["beat", "--loglevel", "DEBUG", "--scheduler",
                                "redbeat.RedBeatScheduler"], log)
    beat.start()
    return beat
