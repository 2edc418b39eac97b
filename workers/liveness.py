"""Liveness files: a worker or beat proves it is doing its job by touching a file.

A process that exits is restarted by whatever runs it; one that stays up but stops working
(a worker whose consumer no longer consumes, a wedged event loop, a stopped process) is not.
So the worker touches its file only from its consumer's event loop and only while it is
connected and consuming every queue, and beat touches its file on every scheduler tick. The
check below, run by a supervisor (``scripts/up``'s, a Docker HEALTHCHECK, a platform probe),
turns a file older than ``--max-age`` into a non-zero exit that the supervisor acts on.

The file's path comes from ``PORTCULLIS_LIVENESS_FILE``: it is process wiring (one file per
process on a machine, like ``PORT``), not application configuration. Unset, nothing is
touched.

    python -m workers.liveness [--file PATH] [--max-age SECONDS]   # exit 0 live, 1 not
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)

ENV = "PORTCULLIS_LIVENESS_FILE"
TOUCH_EVERY_SECONDS = 1.0
DEFAULT_MAX_AGE_SECONDS = 60.0


def liveness_file() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def touch(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.touch()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def age(path: Path) -> float | None:
    """Seconds since the file was last touched; None when there is no file."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def is_live(path: Path, max_age: float = DEFAULT_MAX_AGE_SECONDS) -> bool:
    seconds = age(path)
    return seconds is not None and seconds <= max_age


def _consuming(consumer: Any) -> bool:
    """Connected, the consumer blueprint running, and a consumer on every queue."""
    connection = consumer.connection
    if connection is None or not connection.connected:
        return False
    if consumer.blueprint is None or consumer.blueprint.state != bootsteps.RUN:
        return False
    tasks = consumer.task_consumer
    return tasks is not None and bool(tasks.queues) and all(
        tasks.consuming_from(queue) for queue in tasks.queues)


class ConsumerLiveness(bootsteps.StartStopStep):
    """A consumer bootstep: while consuming, touch the liveness file from the event loop.

    The timer runs inside the consumer's loop, so a loop that is stuck, reconnecting or
    stopped (SIGSTOP) stops touching and the file goes stale.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.path = liveness_file()
        self.entry: Any = None

    def start(self, parent: Any) -> None:
        if self.path is None or parent.timer is None:
            return
        self.entry = parent.timer.call_repeatedly(TOUCH_EVERY_SECONDS, self._touch, (parent,))
        self._touch(parent)

    def _touch(self, parent: Any) -> None:
        if self.path is not None and _consuming(parent):
            try:
                touch(self.path)
            except OSError as exc:  # a full disk must not stop the consumer; it goes stale
                log.warning("liveness file %s not touched: %s", self.path, exc)

    def stop(self, parent: Any) -> None:
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.liveness",
        description="Exit 0 when the liveness file was touched recently, 1 otherwise.")
    parser.add_argument("--file", type=Path, default=liveness_file(),
                        help=f"the liveness file (default: ${ENV})")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_SECONDS,
                        help="seconds since the last touch still counted as live")
    args = parser.parse_args(argv)
    if args.file is None:
        print(f"no liveness file: set {ENV} or pass --file", file=sys.stderr)
        return 2
    seconds = age(args.file)
    if seconds is None:
        print(f"not live: {args.file} does not exist", file=sys.stderr)
        return 1
    if seconds > args.max_age:
        print(f"not live: {args.file} last touched {seconds:.0f}s ago "
              f"(more than {args.max_age:.0f}s)", file=sys.stderr)
        return 1
    print(f"live: {args.file} touched {seconds:.1f}s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
