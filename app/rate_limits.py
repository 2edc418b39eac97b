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
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from limits import RateLimitItem, parse_many

from portcullis.accounts.identity_cache import EPOCH_LUA, Stamp, fresh_epoch

log = logging.getLogger(__name__)

KEY_PREFIX = "portcullis-rl:default"
RETRY_REDIS_AFTER = 5.0  # seconds on the in-memory fallback before Redis is tried again

# KEYS: one sorted set per limit, then any identity epochs to read
# (portcullis.accounts.identity_cache). ARGV: this hit's member, the number of limits, then
# amount and window seconds per limit, then a fresh epoch per epoch key. Returns integers:
# the server time, the index of the first full limit (0: allowed), then per limit its count
# (this hit included when allowed) and its oldest hit time, then the epochs.
_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limits = tonumber(ARGV[2])
local breached = 0
local counts = {}
for i = 1, limits do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - ARGV[2 * i + 2] * 1000000 - 1)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if breached == 0 and counts[i] >= tonumber(ARGV[2 * i + 1]) then breached = i end
end
local out = {now, breached}
for i = 1, limits do
  if breached == 0 then
    redis.call('ZADD', KEYS[i], now, ARGV[1])
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i + 2])
    counts[i] = counts[i] + 1
  end
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  out[#out + 1] = counts[i]
  out[#out + 1] = tonumber(oldest[2]) or now
end
local first_epoch_key, first_epoch_arg = limits + 1, 2 * limits + 3
""" + EPOCH_LUA + """
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
    """The limit's Redis side: one socket per thread, the script sent by digest.

    redis-py's client (connection pool, retries, instrumentation, its reply parser) costs
    several times the round trip itself on every command; the hottest call in the app
    writes its prebuilt command to a socket of its own (opened, authenticated and given
    its database by redis-py) and reads the one short reply itself, reconnecting after any
    error.
    """

    def __init__(self, url: str) -> None:
        self._pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2,
                                                   socket_timeout=2)
        self._local = threading.local()
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's id
        self._memory = _MemoryWindows()
        self._redis_down_until = 0.0
        self._members: itertools.count[int] = itertools.count()
        self._plans: dict[tuple[tuple[RateLimitItem, ...], int], _Plan] = {}
        self._generation = _process_generation[0]

    def _plan(self, items: tuple[RateLimitItem, ...], epochs: int = 0) -> _Plan:
        plan = self._plans.get((items, epochs))
        if plan is None:
            plan = self._plans[items, epochs] = _Plan(items, epochs, self._sha)
        return plan

    def hit(self, identity: str, items: tuple[RateLimitItem, ...]) -> Outcome:
        plan = self._plan(items)
        if time.monotonic() >= self._redis_down_until:
            try:
                return self._hit_redis(plan, identity)
            except (redis.RedisError, OSError, ValueError) as exc:
                self._redis_failed(exc)
        return self._memory.hit(plan.keys(identity), items)

    def start(self, identity: str, items: tuple[RateLimitItem, ...],
              epoch_keys: tuple[str, ...] = ()) -> Pending | None:
        """Send the hit and return without waiting for the answer, so that the caller can
        do other work while Redis counts; the ``Pending``'s ``outcome()`` reads it. The
        same call reads ``epoch_keys`` (the identity cache's: ``Pending.epochs``). None
        while Redis is away (use ``hit``)."""
        if time.monotonic() < self._redis_down_until or getattr(self._local, "pending", False):
            return None
        plan = self._plan(items, len(epoch_keys))
        try:
            conn, sock = self._socket()
            member = self._member()
            rest = plan.rest(identity, member, epoch_keys)
            try:
                _send(sock, plan.evalsha(rest))
            except BaseException:
                conn.disconnect()
                raise
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            return None
        self._local.pending = True
        return Pending(self, plan, identity, member, rest, conn, sock)

    def _redis_failed(self, exc: BaseException) -> None:
        if not self._redis_down_until:
            log.warning("default rate limit: Redis unreachable (%s), enforcing it "
                        "per process in memory", type(exc).__name__)
        self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER

    def _member(self) -> bytes:
        return b"%s:%d" % (_member_prefix[0], next(self._members))

    def _socket(self) -> tuple[Any, socket.socket]:
        local = self._local
        conn: Any = getattr(local, "conn", None)
        if conn is None or local.generation != _process_generation[0]:
            conn = self._pool.make_connection()
            conn.connect()  # AUTH, SELECT, TLS: redis-py's handshake
            local.conn, local.generation = conn, _process_generation[0]
            local.pending = False
        sock = conn._sock
        if sock is None:  # disconnected after an error: connect again
            conn.connect()
            sock = conn._sock
        return conn, sock

    def _eval(self, plan: _Plan, identity: str) -> list[int]:
        nested = getattr(self._local, "pending", False)  # this thread's socket is waiting
        if nested:
            conn: Any = self._pool.make_connection()
            conn.connect()
            sock = conn._sock
        else:
            conn, sock = self._socket()
        rest = plan.rest(identity, self._member())
        try:
            _send(sock, plan.evalsha(rest))
            return _read_reply(sock, plan, rest)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            if nested:
                conn.disconnect()

    def _hit_redis(self, plan: _Plan, identity: str) -> Outcome:
        return self._redis_outcome(plan, self._eval(plan, identity))

    def _redis_outcome(self, plan: _Plan, reply: list[int]) -> Outcome:
        if self._redis_down_until:
            log.warning("default rate limit: Redis is back")
            self._redis_down_until = 0.0
        windows = [(reply[i], reply[i + 1] / 1e6)
                   for i in range(2, 2 + 2 * len(plan.items), 2)]
        return _outcome(plan.items, reply[0] / 1e6, reply[1], windows)


class Pending:
    """A hit sent to Redis and not read yet (``DefaultLimit.start``)."""

    def __init__(self, limit: DefaultLimit, plan: _Plan, identity: str, member: bytes,
                 rest: bytes, conn: Any, sock: socket.socket) -> None:
        self._limit, self._plan, self._identity, self._member = limit, plan, identity, member
        self._rest, self._conn, self._sock = rest, conn, sock
        self._outcome: Outcome | None = None
        self._epochs: Stamp | None = None
        self._counted_in_redis = False

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def items(self) -> tuple[RateLimitItem, ...]:
        return self._plan.items

    def outcome(self) -> Outcome:
        """Read the answer (once); if Redis failed meanwhile, the hit is counted in memory."""
        if self._outcome is not None:
            return self._outcome
        limit = self._limit
        try:
            reply = _read_reply(self._sock, self._plan, self._rest)
            self._outcome = limit._redis_outcome(self._plan, reply)
            self._counted_in_redis = self._outcome.allowed
            if self._plan.epochs:
                self._epochs = tuple(reply[-self._plan.epochs:])
        except (redis.RedisError, OSError, ValueError) as exc:
            self._conn.disconnect()
            limit._redis_failed(exc)
            self._outcome = limit._memory.hit(self._plan.keys(self._identity),
                                              self._plan.items)
        except BaseException:
            self._conn.disconnect()
            raise
        finally:
            limit._local.pending = False
        return self._outcome

    def epochs(self) -> Stamp | None:
        """The epochs this call read (reading the answer first), in ``start``'s order;
        None if Redis did not answer."""
        self.outcome()
        return self._epochs

    def refund(self) -> None:
        """Take the hit back (the request turned out to count against someone else): its
        member leaves every window it entered, as if it had never been sent. Best effort:
        a refund Redis does not get leaves one hit in the window until it moves on."""
        self.outcome()
        if not self._counted_in_redis:
            return  # refused (nothing was recorded) or counted in memory
        self._counted_in_redis = False
        conn, sock = self._limit._socket()
        keys = self._plan.keys(self._identity)
        try:
            _send(sock, b"".join(_command(b"ZREM", k.encode(), self._member) for k in keys))
            _read_lines(sock, len(keys))
        except (redis.RedisError, OSError, ValueError) as exc:
            conn.disconnect()
            log.warning("default rate limit: a refund was lost (%s)", type(exc).__name__)


# A fresh member prefix in every process (so members of two processes never clash) and a
# generation that tells each thread its socket was inherited from the parent.
_member_prefix = [os.urandom(6).hex().encode()]
_process_generation = [0]


def _after_fork() -> None:
    _member_prefix[0] = os.urandom(6).hex().encode()
    _process_generation[0] += 1


os.register_at_fork(after_in_child=_after_fork)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class _Plan:
    """One limit list's commands, prebuilt: only the identity, the member and the epoch
    keys vary."""

    def __init__(self, items: tuple[RateLimitItem, ...], epochs: int, sha: str) -> None:
        self.items = items
        self.epochs = epochs
        self._suffixes = [f":{i.amount}/{i.get_expiry()}" for i in items]
        # command, script, numkeys, keys, member, limit count, amount and window, epochs
        count = 2 + 1 + len(items) + epochs + 2 + 2 * len(items) + epochs
        head = b"*%d\r\n" % count
        n = _bulk(str(len(items) + epochs).encode())
        self._evalsha = head + _bulk(b"EVALSHA") + _bulk(sha.encode()) + n
        self._eval = head + _bulk(b"EVAL") + _bulk(_SCRIPT.encode()) + n
        self._args = _bulk(str(len(items)).encode()) + b"".join(
            _bulk(str(i.amount).encode()) + _bulk(str(i.get_expiry()).encode())
            for i in items)

    def keys(self, identity: str) -> list[str]:
        return [f"{KEY_PREFIX}:{identity}{suffix}" for suffix in self._suffixes]

    def rest(self, identity: str, member: bytes, epoch_keys: tuple[str, ...] = ()) -> bytes:
        """Everything after the script's name: keys and arguments."""
        keys = b"".join(_bulk(k.encode()) for k in (*self.keys(identity), *epoch_keys))
        fresh = b"".join(_bulk(b"%d" % fresh_epoch()) for _ in epoch_keys)
        return keys + _bulk(member) + self._args + fresh

    def evalsha(self, rest: bytes) -> bytes:
        return self._evalsha + rest

    def eval(self, rest: bytes) -> bytes:
        return self._eval + rest


_RECV_SIZE = 4096


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)


def _recv(sock: socket.socket) -> bytes:
    return sock.recv(_RECV_SIZE)


def _command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(p) for p in parts)


def _read_reply(sock: socket.socket, plan: _Plan, rest: bytes) -> list[int]:
    try:
        return _read_integers(sock)
    except redis.exceptions.NoScriptError:  # a fresh or flushed Redis
        _send(sock, plan.eval(rest))
        return _read_integers(sock)


def _read_lines(sock: socket.socket, count: int) -> None:
    """``count`` simple replies (integers); an error reply raises."""
    buf = b""
    while buf.count(b"\r\n") < count:
        chunk = _recv(sock)
        if not chunk:
            raise redis.ConnectionError("Redis closed the connection mid-reply")
        buf += chunk
    for line in buf.split(b"\r\n")[:count]:
        if line[:1] == b"-":
            raise redis.ResponseError(line[1:].decode("utf-8", "replace"))


def _read_integers(sock: socket.socket) -> list[int]:
    """The script's reply: an array of integers, or an error (NOSCRIPT among them)."""
    buf = _recv(sock)
    while True:
        if not buf:
            raise redis.ConnectionError("Redis closed the connection")
        if buf.endswith(b"\r\n"):
            kind = buf[:1]
            if kind == b"-":
                message = buf[1:-2].decode("utf-8", "replace")
                if message.startswith("NOSCRIPT"):
                    raise redis.exceptions.NoScriptError(message)
                raise redis.ResponseError(message)
            if kind != b"*":
                raise redis.ResponseError(f"unexpected reply {buf[:40]!r}")
            lines = buf[:-2].split(b"\r\n")
            if len(lines) == int(lines[0][1:]) + 1:
                return [int(line[1:]) for line in lines[1:]]
        chunk = _recv(sock)
        if not chunk:
            raise redis.ConnectionError("Redis closed the connection mid-reply")
        buf += chunk
