"""A small process supervisor: what ``scripts/up`` runs web, worker, beat and Flower under.

A child that exits is started again after a backoff (1 s, doubling to 30 s, back to 1 s
once it has stayed up for a minute). A child with a liveness file (``workers.liveness``) is
also restarted when the file is older than its ``max_age``, or still missing ``grace``
seconds after a start: a worker that stays up but stops consuming is not left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from workers.liveness import age

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0


def _pump(name: str, stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>7} | {line.decode(errors='replace')}")
        sys.stdout.flush()


@dataclass
class Child:
    """One supervised command. ``log`` set: output goes there; unset: to stdout, prefixed."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    cwd: Path
    liveness: Path | None = None
    max_age: float = 60.0
    grace: float = 120.0
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0
    backoff: float = BACKOFF_START
    restart_at: float | None = None
    history: list[str] = field(default_factory=list)

    def start(self) -> None:
        if self.liveness is not None:
            self.liveness.unlink(missing_ok=True)  # live only once this run touched it
        out: IO[bytes] | int = subprocess.PIPE
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = self.log.open("ab")
        self.proc = subprocess.Popen(list(self.argv), cwd=self.cwd, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        if self.log is None:
            assert self.proc.stdout is not None
            threading.Thread(target=_pump, args=(self.name, self.proc.stdout),
                             daemon=True).start()
        else:
            out.close()  # type: ignore[union-attr]
        self.started_at = time.monotonic()
        self.starts += 1
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stale(self) -> str | None:
        """Why this running child counts as not live, or None."""
        if self.liveness is None:
            return None
        seconds = age(self.liveness)
        if seconds is None:
            up = time.monotonic() - self.started_at
            return f"not live {up:.0f}s after its start" if up > self.grace else None
        return f"liveness file {seconds:.0f}s old" if seconds > self.max_age else None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the child's process group (a worker finishes its tasks), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
            os.killpg(self.proc.pid, signal.SIGCONT)  # a stopped child must hear it
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # what is left of its group, at once
            os.killpg(self.proc.pid, signal.SIGKILL)


class Supervisor:
    """Keeps its children running; ``check()`` is one pass, ``run()`` loops until stopped."""

    def __init__(self, children: Sequence[Child], *,
                 say: Callable[[str], None] | None = None, stop_timeout: float = 30.0) -> None:
        self.children = {child.name: child for child in children}
        self.say = say or (lambda text: print(text, flush=True))
        self.stop_timeout = stop_timeout
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Supervisor:
        for child in self.children.values():
            child.start()
        return self

    def check(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if self.stopping.is_set():
                return
            if child.running:
                if now - child.started_at > STABLE_AFTER:
                    child.backoff = BACKOFF_START
                reason = child.stale()
                if reason is None:
                    continue
                self._note(child, f"{child.name} is not live ({reason}); restarting it")
                child.stop(self.stop_timeout)
                child.start()
                continue
            if child.restart_at is None:
                code = child.proc.returncode if child.proc is not None else None
                self._note(child, f"{child.name} exited (rc {code}); starting it again in "
                                  f"{child.backoff:.0f}s")
                child.restart_at = now + child.backoff
                child.backoff = min(child.backoff * 2, BACKOFF_MAX)
            elif now >= child.restart_at:
                child.start()

    def _note(self, child: Child, text: str) -> None:
        child.history.append(text)
        self.say(text)

    def run(self, every: float = 1.0) -> None:
        while not self.stopping.wait(every):
            self.check()

    def run_in_thread(self, every: float = 0.5) -> Supervisor:
        self._thread = threading.Thread(target=self.run, args=(every,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop supervising, then stop every child (all get SIGTERM first, in parallel)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        children = [c for c in self.children.values() if c.proc is not None]
        for child in children:
            if child.running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        for child in children:
            child.stop(self.stop_timeout)
