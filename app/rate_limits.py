"""The default rate limit (``RATE_LIMIT_DEFAULT``): one budget per identity across every
route that is not exempt, as an exact moving window in one Redis round trip.

flask-limiter's moving window on Redis keeps a list per key and costs two round trips a
request (the hit, then the window for the headers), each walking the list: cheap at
``100/minute``, but its cost grows with the limit. Here each limit is a sorted set of hit
times: one Lua call drops the hits older than the window, counts the rest, records this hit
only if every limit has room, and returns what the ``RateLimit-*`` headers need. The
semantics are flask-limiter's moving window (at most N hits in any window of its length;
a refused request does not count), the clock is Redis's own (``TIME``), so every web
process shares one. While Redis is unreachable the same limits are enforced per process in
memory, and Redis is tried again every few seconds.

The limits of single routes (failed logins, MFA codes) stay flask-limiter decorators.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import redis
from limits import RateLimitItem, parse_many

log = logging.getLogger(__name__)

KEY_PREFIX = "portcullis-rl:default"
RETRY_REDIS_AFTER = 5.0  # seconds on the in-memory fallback before Redis is tried again

# KEYS: one sorted set per limit, scored by hit time in microseconds. ARGV: this hit's
# member, then amount and window seconds per key. Returns integers: the server time, the
# index of the first full limit (0: allowed), then per limit its count (this hit included
# when allowed) and its oldest hit time.
_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local breached = 0
local counts = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - ARGV[2 * i + 1] * 1000000 - 1)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if breached == 0 and counts[i] >= tonumber(ARGV[2 * i]) then breached = i end
end
local out = {now, breached}
for i = 1, #KEYS do
  if breached == 0 then
    redis.call('ZADD', KEYS[i], now, ARGV[1])
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i + 1])
    counts[i] = counts[i] + 1
  end
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  out[#out + 1] = counts[i]
  out[#out + 1] = tonumber(oldest[2]) or now
end
return out
"""


@dataclass(frozen=True)
class Outcome:
    """One request's verdict and what its ``RateLimit-*`` headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds, as flask-limiter reports it
    retry_after: int  # seconds from now


@lru_cache(maxsize=8)
def parse(value: str) -> tuple[RateLimitItem, ...]:
    """flask-limiter's notation; shortest window first, as flask-limiter orders them."""
    return tuple(sorted(parse_many(value), key=lambda item: item.get_expiry()))


def _outcome(items: tuple[RateLimitItem, ...], now: float, breached: int,
             windows: list[tuple[int, float]]) -> Outcome:
    # The header names the limit that refused the request, else the shortest one.
    index = breached - 1 if breached else 0
    item, (count, oldest) = items[index], windows[index]
    reset_at = int(oldest + item.get_expiry() + 1)
    return Outcome(not breached, item.amount, max(item.amount - count, 0), reset_at,
                   max(int(reset_at - now), 0))


class _MemoryWindows:
    """The same moving windows in this process only: the fallback while Redis is away."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def hit(self, keys: list[str], items: tuple[RateLimitItem, ...]) -> Outcome:
        now = time.time()
        with self._lock:
            if now - self._swept > 60:
                self._sweep(now, max(i.get_expiry() for i in items))
            windows = []
            breached = 0
            for index, (key, item) in enumerate(zip(keys, items, strict=True), 1):
                hits = self._hits.setdefault(key, deque())
                while hits and hits[0] < now - item.get_expiry():
                    hits.popleft()
                if not breached and len(hits) >= item.amount:
                    breached = index
                windows.append(hits)
            if not breached:
                for hits in windows:
                    hits.append(now)
            stats = [(len(h), h[0] if h else now) for h in windows]
        return _outcome(items, now, breached, stats)

    def _sweep(self, now: float, longest: int) -> None:
        self._swept = now
        for key in [k for k, h in self._hits.items() if not h or h[-1] < now - longest]:
            del self._hits[key]


class DefaultLimit:
    """The limit's Redis side: one connection per thread, the script sent by digest.

    redis-py's client (connection pool, retries, instrumentation) costs several times the
    round trip itself on every command; the hottest call in the app talks to a plain
    ``redis.Connection`` of its own instead, reconnecting after any error.
    """

    def __init__(self, url: str) -> None:
        self._pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2,
                                                   socket_timeout=2)
        self._local = threading.local()
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's id
        self._memory = _MemoryWindows()
        self._redis_down_until = 0.0
        self._pid = 0
        self._members: itertools.count[int] = itertools.count()
        self._member_prefix = ""

    def _member(self) -> str:
        if self._pid != os.getpid():  # a fresh prefix in every process: members never clash
            self._pid, self._member_prefix = os.getpid(), os.urandom(6).hex()
        return f"{self._member_prefix}:{next(self._members)}"

    def hit(self, identity: str, items: tuple[RateLimitItem, ...]) -> Outcome:
        keys = [f"{KEY_PREFIX}:{identity}:{i.amount}/{i.get_expiry()}" for i in items]
        if time.monotonic() >= self._redis_down_until:
            try:
                return self._hit_redis(keys, items)
            except redis.RedisError as exc:
                if not self._redis_down_until:
                    log.warning("default rate limit: Redis unreachable (%s), enforcing it "
                                "per process in memory", type(exc).__name__)
                self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER
        return self._memory.hit(keys, items)

    def _connection(self) -> redis.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._local.conn = self._pool.make_connection()
            self._local.pid = os.getpid()
        return conn

    def _eval(self, keys: list[str], args: list[str]) -> list[int]:
        conn = self._connection()
        try:
            conn.send_packed_command([_pack(b"EVALSHA", self._sha, *keys, *args, n=len(keys))])
            try:
                return conn.read_response()  # type: ignore[no-any-return]
            except redis.exceptions.NoScriptError:  # a fresh or flushed Redis
                conn.send_packed_command([_pack(b"EVAL", _SCRIPT, *keys, *args,
                                                n=len(keys))])
                return conn.read_response()  # type: ignore[no-any-return]
        except BaseException:
            conn.disconnect()
            raise

    def _hit_redis(self, keys: list[str], items: tuple[RateLimitItem, ...]) -> Outcome:
        args = [self._member()]
        for item in items:
            args += [str(item.amount), str(item.get_expiry())]
        reply = self._eval(keys, args)
        if self._redis_down_until:
            log.warning("default rate limit: Redis is back")
            self._redis_down_until = 0.0
        windows = [(reply[i], reply[i + 1] / 1e6) for i in range(2, len(reply), 2)]
        return _outcome(items, reply[0] / 1e6, reply[1], windows)


def _pack(command: bytes, script: bytes | str, *rest: str, n: int) -> bytes:
    """``command script n rest...`` in RESP, ready for the socket."""
    parts = [command, script.encode() if isinstance(script, str) else script,
             str(n).encode(), *(r.encode() for r in rest)]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
