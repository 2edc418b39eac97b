"""Beat's scheduler: redbeat, made to survive a Redis that goes away or comes back empty.

redbeat keeps the schedule and its lock in Redis only. Stock, a ``FLUSHALL`` (or a Redis
restarted without its data, or a failover) makes ``lock.extend`` raise
``LockNotOwnedError`` and beat exits; a connection error during an outage does the same;
and even restarted, the entries are gone until a beat starts afresh. Here:

- The lock is taken without blocking, on every tick, by whichever beat finds it free; only
  the beat that has just renewed it sends anything, and it renews again before a send when
  the tick has run long. So two beats still send each entry once.
- A lost lock is "lost, take it again", a Redis or broker error is "try again next tick":
  beat logs and keeps running.
- The holder checks every tick that each entry of ``beat_schedule.py`` is in Redis and
  writes back any that is missing, with the last run this beat remembers (or now), so an
  entry runs again one interval after its last run and never twice for one due time.
- Every tick touches the liveness file (``workers.liveness``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import redis.exceptions
from celery.signals import beat_init
from kombu.exceptions import OperationalError
from redbeat.schedulers import (
    ADD_ENTRY_ERROR,
    RedBeatScheduler,
    acquire_distributed_beat_lock,
    get_redis,
)
from redis.lock import Lock

from workers import liveness

log = logging.getLogger("celery.beat")

# redbeat takes its lock in a blocking beat_init handler; this scheduler takes it per tick.
beat_init.disconnect(acquire_distributed_beat_lock)

#: Errors that mean "Redis or the broker is away": retried on the next tick.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError, redis.exceptions.ReadOnlyError, OperationalError,
    ConnectionError, TimeoutError, OSError,
)


class BeatScheduler(RedBeatScheduler):
    """``--scheduler workers.beat:BeatScheduler``: see the module docstring."""

    lock: Lock | None  # redbeat's attribute: the distributed lock once taken

    def __init__(self, app: Any, **kwargs: Any) -> None:
        self._holding = False
        self._renewed_at = 0.0
        self._installed = False
        self._last_run: dict[str, datetime] = {}
        self._liveness = liveness.liveness_file()
        super().__init__(app, **kwargs)

    # --- the schedule in Redis -----------------------------------------------------------

    def setup_schedule(self) -> None:
        """Deferred to the first tick that holds the lock: only the holder writes the
        schedule, and a Redis that is down at start must not stop beat."""
        self._installed = False

    def update_from_dict(self, dict_: dict[str, Any]) -> None:
        """Store each entry, keeping the last run Redis has, else the one remembered."""
        for name, definition in dict_.items():
            try:
                entry = self._maybe_entry(name, definition)
            except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the others
                log.error(ADD_ENTRY_ERROR, name, exc, definition)
                continue
            try:
                stored = self.Entry.from_key(entry.key, app=self.app)
                entry.last_run_at = stored.last_run_at
            except KeyError:
                entry.last_run_at = self._last_run.get(name, entry.last_run_at)
            entry.save()

    def _repair_schedule(self) -> None:
        """Write back every static entry Redis lost (flushed, restarted empty)."""
        conf = self.app.redbeat_conf
        if not self._installed:
            super().setup_schedule()  # redbeat's: drops removed entries, stores the rest
            self._installed = True
            return
        names = list(conf.schedule)
        if not names:
            return
        client = get_redis(self.app)
        with client.pipeline() as pipe:
            for name in names:
                key = self.Entry.generate_key(self.app, name)
                pipe.zscore(conf.schedule_key, key)
                pipe.hexists(key, "definition")
            found = pipe.execute()
        missing = [name for i, name in enumerate(names)
                   if found[2 * i] is None or not found[2 * i + 1]]
        if missing:
            log.warning("beat: schedule entries missing from Redis, restoring: %s",
                        ", ".join(missing))
            self.update_from_dict({name: conf.schedule[name] for name in missing})
            client.sadd(conf.statics_key, *names)

    # --- the lock --------------------------------------------------------------------

    def _lock(self) -> Lock:
        if self.lock is None:
            self.lock = get_redis(self.app).lock(
                self.lock_key, timeout=self.lock_timeout, thread_local=False)
        lock: Lock = self.lock
        return lock

    def _hold_lock(self) -> bool:
        """Renew the lock if held, else try to take it; True when this beat may send."""
        lock = self._lock()
        if self._holding:
            try:
                lock.reacquire()
            except redis.exceptions.LockNotOwnedError:
                log.warning("beat: lost the lock (Redis flushed, restarted or failed over); "
                            "taking it again")
                self._holding = False
            else:
                self._renewed_at = time.monotonic()
                return True
        if not lock.acquire(blocking=False):
            # Someone else sends; what this beat remembers may be out of date by now.
            self._last_run.clear()
            return False
        log.info("beat: Acquired lock")
        self._holding = True
        self._renewed_at = time.monotonic()
        return True

    def _still_holding(self) -> bool:
        """Before a send late in a long tick: renew, so a lock that expired meanwhile (and
        that another beat may hold now) sends nothing here."""
        if time.monotonic() - self._renewed_at < self.lock_timeout / 3:
            return True
        return self._hold_lock()

    # --- ticking ---------------------------------------------------------------------

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        try:
            return self._tick(min)
        except OUTAGE_ERRORS as exc:
            log.warning("beat: Redis or the broker is unavailable (%s: %s); retrying",
                        type(exc).__name__, exc)
            return float(min(self.max_interval, 2.0))
        finally:
            self._touch_liveness()

    def _tick(self, min: Any) -> float:
        if not self._hold_lock():
            return float(self.max_interval)
        self._repair_schedule()
        remaining: list[float] = []
        try:
            for entry in self.schedule.values():
                if not self._still_holding():
                    return float(self.max_interval)
                next_time_to_run = self.maybe_due(entry, **self._maybe_due_kwargs)
                if next_time_to_run:
                    remaining.append(next_time_to_run)
        except RuntimeError:
            log.debug("beat: RuntimeError", exc_info=True)
        return float(min([*remaining, self.max_interval]))

    def maybe_due(self, entry: Any, **kwargs: Any) -> Any:
        if entry.last_run_at is not None:
            self._last_run[entry.name] = entry.last_run_at
        return super().maybe_due(entry, **kwargs)

    def reserve(self, entry: Any) -> Any:
        new_entry = super().reserve(entry)
        self._last_run[entry.name] = new_entry.last_run_at
        return new_entry

    def _ensure_connected(self) -> Any:
        """Connect to the broker with one short try: an outage fails this tick (retried on
        the next) instead of holding beat in a long retry loop while its lock expires."""
        def _error(exc: Exception, interval: float) -> None:
            log.warning("beat: broker connection error: %s", exc)

        return self.connection.ensure_connection(_error, max_retries=1, interval_start=0.5,
                                                 interval_step=0.5, interval_max=1,
                                                 timeout=5)

    def _touch_liveness(self) -> None:
        if self._liveness is not None:
            try:
                liveness.touch(self._liveness)
            except OSError as exc:
                log.warning("liveness file %s not touched: %s", self._liveness, exc)

    def close(self) -> None:
        """Release the lock if still ours; a Redis that is away must not fail shutdown."""
        lock, self.lock = self.lock, None
        if lock is not None and self._holding:
            try:
                if lock.owned():
                    lock.release()
                    log.info("beat: Released lock")
            except (redis.exceptions.RedisError, *OUTAGE_ERRORS) as exc:  # type: ignore[misc]
                log.warning("beat: lock not released (%s); it expires by itself", exc)
        self._holding = False
        try:
            super(RedBeatScheduler, self).close()
        except OUTAGE_ERRORS as exc:
            log.warning("beat: closing the broker connection failed: %s", exc)
