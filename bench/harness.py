"""Shared set-up for the benchmarks: private services, seeding, gunicorn, a load client.

Everything runs on this machine only: the services start in a temporary folder on free
ports, gunicorn is started from the Procfile's ``web`` command, and load goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.stack import LocalStack
    from tests.support.factories import Member

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

# Settings every benchmark process (this one and gunicorn) runs with. The default limit is
# lifted so the limiter still runs on every request (as in production) but never throttles.
BENCH_ENV = {
    "PORTCULLIS_ENV": "test",
    "PUBLIC_BASE_URL": "http://portcullis.bench",
    "BCRYPT_ROUNDS": "12",  # the production default
    "RATE_LIMIT_DEFAULT": "1000000/minute",
}

NOISY_CORES = 0.25  # other work above this during a measurement makes its numbers suspect


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- private services -------------------------------------------------------------------


@dataclass
class Services:
    """The test suite's stack (``tests.support.stack``) in a temp folder, with the
    benchmark settings."""

    base: Path
    stack: LocalStack

    @property
    def logs(self) -> Path:
        path = self.base / "bench-logs"
        path.mkdir(exist_ok=True)
        return path


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """What the test suite's ``stack`` fixture starts (``running_stack``), with
    ``BENCH_ENV`` instead of the tests' settings."""
    from tests.support.stack import running_stack

    started = time.monotonic()
    with running_stack(BENCH_ENV, prefix="portcullis-bench-") as stack:
        print(f"services ready in {time.monotonic() - started:.1f}s ({stack.base_dir})",
              flush=True)
        yield Services(stack.base_dir, stack)


# --- seeding: the test suite's factories (tests.support.factories) -----------------------


def viewonly_members(count: int, tenants: int, label: str) -> list[Member]:
    """``count`` verified view-only members (no MFA needed) spread over ``tenants``, all
    with the factories' ``PASSWORD`` (hashed once, at ``BCRYPT_ROUNDS``)."""
    from portcullis.accounts.models import Role
    from tests.support.factories import make_member, make_tenant

    members: list[Member] = []
    per_tenant = -(-count // tenants)
    for t in range(tenants):
        tenant_id = make_tenant(f"Bench {label} {t}")
        for _ in range(min(per_tenant, count - len(members))):
            members.append(make_member(
                tenant_id, Role.viewonly,
                email=f"bench-{label}-{uuid.uuid4().hex[:12]}@example.com"))
    return members


def session_cookie(member: Member) -> str:
    """A live, full session row and its session JWT (what the session cookie carries)."""
    from tests.support.factories import make_session

    return make_session(member).cookie


# --- gunicorn -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def web_command(app_module: str | None = None) -> list[str]:
    """The Procfile's ``web`` command, optionally serving another WSGI module."""
    command = ""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "web":
            command = rest.strip()
    if not command:
        raise RuntimeError("Procfile has no web entry")
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).parent / argv[0])  # the venv's gunicorn
    if app_module is not None:
        if ":" not in argv[-1]:
            raise RuntimeError(f"cannot find the WSGI module in {command!r}")
        argv[-1] = app_module
    return argv


@contextlib.contextmanager
def gunicorn(svc: Services, name: str, *, workers: int | None = None,
             threads: int | None = None, app_module: str | None = None) -> Iterator[int]:
    """Run the web process on a free port; yields the port, stops it afterwards. Workers
    and threads not given are the gunicorn config's defaults."""
    from devstack.process import ServiceProcess

    port = free_port()
    env = dict(os.environ)
    env.update({"PORT": str(port), "PYTHONPATH": str(ROOT)})
    env.pop("WEB_CONCURRENCY", None)
    env.pop("WEB_THREADS", None)
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads is not None:
        env["WEB_THREADS"] = str(threads)
    log = svc.logs / f"{name}.log"
    web = ServiceProcess(f"web-{name}", web_command(app_module), log, env=env, cwd=ROOT)
    web.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            if not web.running:
                raise RuntimeError(f"gunicorn exited early:\n{web.tail()}")
            with contextlib.suppress(OSError, ValueError):
                conn = Connection(port, timeout=5)
                status, _ = conn.request(get("/healthz"))
                conn.close()
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not ready in 60s:\n{web.tail()}")
            time.sleep(0.2)
        yield port
    except BaseException:
        print(f"--- {log} (tail) ---\n{web.tail()}", file=sys.stderr)
        raise
    finally:
        web.stop(timeout=15)


# --- a lean keep-alive HTTP/1.1 client ----------------------------------------------------
# The client shares the machine's cores with the server, so it is kept as cheap as possible:
# prebuilt request bytes, one socket per thread, only status line and framing parsed.


def get(path: str, headers: dict[str, str] | None = None) -> bytes:
    return _request("GET", path, headers or {}, b"")


def post_json(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    return _request("POST", path, {"Content-Type": "application/json", **(headers or {})},
                    body)


def _request(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "User-Agent: portcullis-bench",
             "Accept: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Closed(ConnectionError):
    pass


class Connection:
    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def connect(self) -> None:
        sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.buf = None, b""

    def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request and read its response; a stale keep-alive socket is reopened."""
        for attempt in (0, 1):
            if self.sock is None:
                self.connect()
            assert self.sock is not None
            try:
                self.sock.sendall(raw)
                return self._response()
            except _Closed:
                # The server closed an idle keep-alive socket before reading the request.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed("connection closed by server")
        return chunk

    def _response(self) -> tuple[int, bytes]:
        got_any = False
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            try:
                self.buf += self._recv()
            except _Closed:
                if got_any:
                    raise ConnectionError("connection closed mid-response") from None
                raise
            got_any = True
        head = self.buf[:end].decode("latin-1").split("\r\n")
        self.buf = self.buf[end + 4:]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip().lower()
        if status in (204, 304) or status < 200:
            length = 0
        elif "content-length" in headers:
            length = int(headers["content-length"])
        else:
            raise ValueError(f"unsupported response framing: {headers}")
        while len(self.buf) < length:
            try:
                self.buf += self._recv()
            except _Closed:
                raise ConnectionError("connection closed mid-body") from None
        body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get("connection") == "close":
            self.close()
        return status, body


# --- load ---------------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    ok: int
    elapsed: float
    statuses: Counter[str]

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    def describe(self) -> str:
        bad = {k: v for k, v in self.statuses.items() if k != "ok"}
        extra = f", errors {dict(bad)}" if bad else ""
        return (f"{self.ok}/{self.requests} ok in {self.elapsed:.2f}s"
                f" = {self.rate:,.1f}/s{extra}")


def run_load(port: int, build: Callable[[int, int], bytes],
             check: Callable[[int, bytes], bool], *, total: int, concurrency: int,
             time_limit: float) -> Load:
    """Send ``total`` requests over ``concurrency`` keep-alive connections, or stop at
    ``time_limit`` seconds. ``build(seq, conn_index)`` makes request ``seq``.

    Connections are opened before the clock starts; the rate counts successful responses.
    Each gunicorn worker keeps the connections it accepted: use several connections per
    worker thread so an uneven split still keeps every worker busy.
    """
    sequence = itertools.count()
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    finished: list[float] = []
    started: list[float] = []

    def mark_start() -> None:
        started.append(time.perf_counter())

    barrier = threading.Barrier(concurrency, action=mark_start)

    def worker(index: int) -> None:
        conn = Connection(port)
        local: Counter[str] = Counter()
        try:
            try:
                conn.connect()
            except OSError:
                barrier.abort()
                local["connect_failed"] += 1
                return
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return
            deadline = started[0] + time_limit
            while True:
                seq = next(sequence)
                if seq >= total or time.perf_counter() > deadline:
                    break
                try:
                    status, body = conn.request(build(seq, index))
                except (OSError, ValueError) as exc:
                    local[type(exc).__name__] += 1
                    conn.close()
                    continue
                local["ok" if check(status, body) else str(status)] += 1
        finally:
            conn.close()
            with lock:
                statuses.update(local)
                finished.append(time.perf_counter())

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(finished) - started[0] if started and finished else 0.0
    return Load(sum(statuses.values()), statuses["ok"], elapsed, statuses)


# --- reporting ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


class CpuWatch:
    """How much CPU *other* work on the machine used while a benchmark ran (Linux /proc).

    Busy time of the whole machine minus that of this process and its descendants
    (gunicorn, the services), in cores, plus hypervisor steal: anything well above 0 means
    the numbers were taken on a shared, noisy machine.
    """

    def __enter__(self) -> CpuWatch:
        self._start = self._snapshot()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._end = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, int, int, int] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:9]]
            user, nice, system, _idle, _iowait, irq, softirq, steal = fields
            return time.monotonic(), user + nice + system + irq + softirq, steal, _tree_ticks()
        except (OSError, ValueError):
            return None

    def describe(self) -> str:
        if self._start is None or self._end is None:
            return "other load: unknown"
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = self._end[0] - self._start[0]
        busy = (self._end[1] - self._start[1]) / hz / elapsed
        steal = (self._end[2] - self._start[2]) / hz / elapsed
        own = (self._end[3] - self._start[3]) / hz / elapsed
        other = max(busy - own, 0.0) + steal
        note = (" -- NOISY: other work competed for the cores; rerun on a quiet machine"
                if other > NOISY_CORES else "")
        return (f"CPU over {elapsed:.0f}s: this benchmark {own:.2f} cores, other work "
                f"{max(busy - own, 0.0):.2f} cores, steal {steal:.2f} (of {cores()}){note}")


def _tree_ticks() -> int:
    """utime+stime (children included) of this process and every descendant."""
    me = os.getpid()
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parent[int(entry)] = int(rest[1])
        ticks[int(entry)] = sum(int(v) for v in rest[11:15])
    total = 0
    for pid, value in ticks.items():
        hops, ancestor = 0, pid
        while ancestor not in (me, 0) and hops < 64:
            ancestor, hops = parent.get(ancestor, 0), hops + 1
        if ancestor == me:
            total += value
    return total


# What each kind of process under this one is, by its command line.
_KINDS = (("gunicorn", b"gunicorn"), ("redis", b"redis-server"), ("postgres", b"postgres"))


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds (user + system, children included) used so far by the processes under
    this one, by kind: ``gunicorn`` (masters and workers), ``redis``, ``postgres``."""
    me = os.getpid()
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    kinds: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{entry}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue  # gone meanwhile
        parent[pid] = int(rest[1])
        ticks[pid] = int(rest[11]) + int(rest[12])  # its own user + system time
        for kind, marker in _KINDS:
            if marker in command:
                kinds[pid] = kind
                break
    used: dict[str, float] = {kind: 0.0 for kind, _ in _KINDS}
    hz = os.sysconf("SC_CLK_TCK")
    for pid, kind in kinds.items():
        hops, ancestor = 0, pid
        while ancestor not in (me, 0) and hops < 64:
            ancestor, hops = parent.get(ancestor, 0), hops + 1
        if ancestor == me:
            used[kind] += ticks[pid] / hz
    return used


def gunicorn_workers() -> list[int]:
    """Pids of the gunicorn workers under this process (gunicorns whose parent is one)."""
    me = os.getpid()
    parent: dict[int, int] = {}
    gunicorns: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"gunicorn" in cmdline.read():
                    gunicorns.add(int(entry))
        except OSError:
            continue  # gone meanwhile
    workers = []
    for pid in gunicorns:
        if parent.get(pid) not in gunicorns:
            continue
        hops, ancestor = 0, pid
        while ancestor not in (me, 0) and hops < 64:
            ancestor, hops = parent.get(ancestor, 0), hops + 1
        if ancestor == me:
            workers.append(pid)
    return sorted(workers)


def verdict(name: str, ratio: float, goal: float, what: str) -> bool:
    met = ratio >= goal
    print(f"[{name}] ratio {what} = {ratio:.3f}   goal >= {goal}   "
          f"{'MET' if met else 'NOT MET'}", flush=True)
    return met


# --- wrk ----------------------------------------------------------------------------------
# For throughput against a plain Flask app the load client must cost far less than the
# server: wrk (C, event loop) does; Debian's package is ``wrk``.

WRK_HINT = "wrk is required: apt-get install wrk (Debian/Ubuntu package 'wrk')"


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError(WRK_HINT)
    return path


# Each request is one of the prebuilt ones, in rotation (one per identity); done() prints
# one machine-readable line. Latencies are in microseconds.
_WRK_SCRIPT = r"""
local headers_list = {%s}
local requests = {}
local n = 0
init = function(args)
  for i, h in ipairs(headers_list) do
    requests[i] = wrk.format("GET", "%s", h, nil)
  end
end
request = function()
  n = n + 1
  return requests[(n %% #requests) + 1]
end
done = function(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu: dict[str, float] = field(default_factory=dict)  # server CPU seconds, by kind

    def cpu_us(self, kind: str | None = None) -> float:
        """Server CPU per request in microseconds: one kind, or all of them."""
        spent = sum(self.cpu.values()) if kind is None else self.cpu.get(kind, 0.0)
        return 1e6 * spent / self.requests if self.requests else 0.0

    @property
    def rate(self) -> float:
        """Successful (2xx/3xx) responses per second."""
        good = self.requests - self.non_2xx
        return good / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        bad = (f", non-2xx {self.non_2xx}" if self.non_2xx else "") + (
            f", socket errors {self.socket_errors}" if self.socket_errors else "")
        cpu = ""
        if self.cpu:
            cpu = (f"  server CPU {self.cpu_us():5.0f} us/req (gunicorn "
                   f"{self.cpu_us('gunicorn'):.0f}, redis {self.cpu_us('redis'):.0f}, "
                   f"postgres {self.cpu_us('postgres'):.0f})")
        return (f"{self.rate:8,.0f} req/s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms"
                f"{cpu}  ({self.requests} in {self.seconds:.1f}s{bad})")


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(port: int, path: str, headers: list[dict[str, str]] | None = None, *,
        seconds: int, connections: int = 32, threads: int = 2, base: Path) -> WrkResult:
    """Run wrk against 127.0.0.1:``port``; requests cycle through ``headers`` (one dict per
    identity; several identities are spread over every connection)."""
    headers = headers or [{}]
    for h in headers:
        h.setdefault("Accept", "application/json")
        h.setdefault("User-Agent", "portcullis-bench")
    table = ", ".join("{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}"
                                      for k, v in h.items()) + "}" for h in headers)
    script = base / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(_WRK_SCRIPT % (table, path))
    before = cpu_by_kind()
    try:
        out = subprocess.run(
            [require_wrk(), "-t", str(threads), "-c", str(connections),
             "-d", f"{seconds}s", "--timeout", "5s", "-s", str(script),
             f"http://{HOST}:{port}{path}"],
            capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    finally:
        script.unlink(missing_ok=True)
    after = cpu_by_kind()
    cpu = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
    for line in out.splitlines():
        if line.startswith("WRK-RESULT "):
            (requests, duration, status, connect, read, write, timeout, p50, p90, p99,
             top) = (int(v) for v in line.split()[1:])
            return WrkResult(requests, duration / 1e6, status,
                             connect + read + write + timeout, p50 / 1e3, p90 / 1e3,
                             p99 / 1e3, top / 1e3, cpu)
    raise RuntimeError(f"wrk printed no result:\n{out}")
