"""links: ``GET /s/{token}`` download throughput against a bare boto3 get of the same
object, and the cost of a password check.

Throughput: one clean file per size (1 MiB and 25 MiB of random bytes, made with the test
suite's factories: the object in the files bucket of the stack's S3 server, moto) and a
plain link to it (no budget, no password, no address list). Baseline, the same run, the same
server and object: ``get_object`` of the file's key with boto3 (the app's own client
settings, ``ObjectStore.from_settings``), the body read to the end in 64 KiB chunks, on
``CLIENTS`` threads. Measured: the same number of downloads of the link through gunicorn (the
Procfile's web command, its default workers and threads) on ``CLIENTS`` keep-alive
connections, each body read to the end and discarded (a client that costs next to nothing:
``recv_into`` one buffer). What the app does per download on top of the get: the token's
lookup under row-level security, the checks, the counted download and its ``link.downloaded``
audit event (one transaction), streaming every chunk through the worker, and the egress row.
``ROUNDS`` rounds, bare then app in each; ratio = app MB/s ÷ bare MB/s of its round, the
median round's; goal >= 0.7 per size.

Password check: a password link to a 1 KiB file, ``PASSWORD_SAMPLES`` downloads one at a time
on one connection with the right password in HTTP Basic (each pays the bcrypt check at
``BCRYPT_ROUNDS`` = 12, the production default); goal: p95 under 300 ms. For context, the
same file through a plain link and one bcrypt check alone (median), timed in the same window.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.audit_page import percentile
from bench.harness import HOST, CpuWatch, Services, get, gunicorn, median, verdict

NAME = "links"
GOAL_RATIO = 0.7
GOAL_P95_MS = 300.0
MIB = 1024 * 1024
SIZES = {"1 MiB": (1 * MIB, 48), "25 MiB": (25 * MIB, 8)}  # label: (bytes, downloads/round)
ROUNDS = 3
CLIENTS = 4
PHASE_LIMIT_S = 90.0
PASSWORD_SAMPLES = 30
PASSWORD = "bench link password"
READ_CHUNK = 64 * 1024


# --- a client that costs next to nothing: headers parsed, the body drained into one buffer


class Drain:
    """One keep-alive connection; ``get`` answers the status and the body's size."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = bytearray(MIB)
        self.view = memoryview(self.buf)
        self.digest: Any = None  # a hashlib object: what the bodies hold

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def get(self, raw: bytes) -> tuple[int, int]:
        sock = self._connect()
        sock.sendall(raw)
        head = b""
        while (end := head.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                raise ConnectionError("connection closed before the headers")
            head += chunk
        lines = head[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip().lower()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        rest = head[end + 4:]
        if self.digest is not None:
            self.digest.update(rest)
        remaining = length - len(rest)
        while remaining > 0:
            got = sock.recv_into(self.view, min(remaining, len(self.buf)))
            if not got:
                raise ConnectionError("connection closed mid-body")
            if self.digest is not None:
                self.digest.update(self.view[:got])
            remaining -= got
        if headers.get("connection") == "close":
            self.close()
        return status, length


# --- the two sides ------------------------------------------------------------------------


@dataclass
class Phase:
    downloads: int
    bytes: int
    seconds: float
    failures: int

    @property
    def mb_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        bad = f", {self.failures} failed" if self.failures else ""
        return (f"{self.downloads} downloads, {self.bytes / MIB:.0f} MiB in "
                f"{self.seconds:.2f}s = {self.mb_s:6.1f} MiB/s{bad}")


def _parallel(count: int, make_worker: Callable[[], Callable[[], int]]) -> Phase:
    """``count`` downloads over ``CLIENTS`` threads; each worker call answers the bytes it
    read (negative: a failure). Workers are built before the clock starts."""
    workers = [make_worker() for _ in range(CLIENTS)]
    remaining = [count]
    lock = threading.Lock()
    totals = {"bytes": 0, "ok": 0, "failed": 0}
    barrier = threading.Barrier(CLIENTS + 1)
    deadline = [0.0]

    def loop(work: Callable[[], int]) -> None:
        barrier.wait()
        while True:
            with lock:
                if remaining[0] <= 0 or time.perf_counter() > deadline[0]:
                    return
                remaining[0] -= 1
            try:
                got = work()
            except (OSError, ValueError):
                got = -1
            with lock:
                if got < 0:
                    totals["failed"] += 1
                else:
                    totals["ok"] += 1
                    totals["bytes"] += got

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + PHASE_LIMIT_S
    barrier.wait()
    for thread in threads:
        thread.join()
    return Phase(totals["ok"], totals["bytes"], time.perf_counter() - started, totals["failed"])


def _bare(bucket: str, key: str, size: int, count: int) -> Phase:
    from config import get_settings
    from portcullis.clients.object_store import ObjectStore

    client = ObjectStore.from_settings(get_settings()).client

    def make_worker() -> Callable[[], int]:
        def work() -> int:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            read = sum(len(chunk) for chunk in body.iter_chunks(READ_CHUNK))
            body.close()
            return read if read == size else -1

        return work

    return _parallel(count, make_worker)


def _through_app(port: int, path: str, size: int, count: int) -> Phase:
    request = get(path)
    drains: list[Drain] = []

    def make_worker() -> Callable[[], int]:
        drain = Drain(port)
        drain._connect()
        drains.append(drain)

        def work() -> int:
            status, length = drain.get(request)
            return length if status == 200 and length == size else -1

        return work

    try:
        return _parallel(count, make_worker)
    finally:
        for drain in drains:
            drain.close()


def _sha256_through_app(port: int, path: str, headers: dict[str, str] | None = None) -> str:
    drain = Drain(port)
    drain.digest = hashlib.sha256()
    try:
        status, _ = drain.get(get(path, headers))
    finally:
        drain.close()
    if status != 200:
        raise RuntimeError(f"GET {path.split('/s/')[0]}/s/<token> answered {status}")
    return drain.digest.hexdigest()


# --- the run ------------------------------------------------------------------------------


def _timed_gets(port: int, path: str, headers: dict[str, str] | None,
                samples: int) -> list[float]:
    """Milliseconds per download, one at a time on one keep-alive connection."""
    request = get(path, headers)
    drain = Drain(port)
    times = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            status, _ = drain.get(request)
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"a password download answered {status}")
    finally:
        drain.close()
    return times


def run(svc: Services) -> bool:
    from config import get_settings
    from portcullis.accounts import service as accounts
    from tests.support.factories import (
        make_bucket,
        make_file,
        make_file_link,
        make_member,
        make_tenant,
    )

    settings = get_settings()
    tenant = make_tenant("Bench Links")
    admin = make_member(tenant)
    bucket = make_bucket(admin)
    print(f"[{NAME}] GET /s/<token> vs boto3 get_object of the same object, {CLIENTS} "
          f"clients, {ROUNDS} rounds; BCRYPT_ROUNDS={settings.BCRYPT_ROUNDS}", flush=True)
    files = {}
    for label, (size, _) in SIZES.items():
        data = os.urandom(size)
        stored = make_file(admin, bucket, data, filename=f"bench-{size}.png")
        files[label] = (stored, make_file_link(stored), hashlib.sha256(data).hexdigest())
    small = make_file(admin, bucket, os.urandom(1024), filename="small.png")
    protected = make_file_link(small, password=PASSWORD)
    plain_small = make_file_link(small)
    auth = {"Authorization": "Basic " + base64.b64encode(
        f"bench:{PASSWORD}".encode()).decode()}

    results: dict[str, float] = {}
    with gunicorn(svc, NAME) as port:
        for label, (stored, link, sha) in files.items():  # precheck: the right bytes
            if _sha256_through_app(port, link.path) != sha:
                raise RuntimeError(f"the {label} link served other bytes")
            _bare(settings.S3_BUCKET, stored.storage_key, stored.size, CLIENTS)  # warm-up
            _through_app(port, link.path, stored.size, CLIENTS * 2)
        if _sha256_through_app(port, protected.path, auth) != _sha256_through_app(
                port, plain_small.path):
            raise RuntimeError("the password link served other bytes")

        with CpuWatch() as watch:
            for label, (stored, link, _) in files.items():
                count = SIZES[label][1]
                ratios = []
                for n in range(1, ROUNDS + 1):
                    bare = _bare(settings.S3_BUCKET, stored.storage_key, stored.size, count)
                    app = _through_app(port, link.path, stored.size, count)
                    ratio = app.mb_s / bare.mb_s if bare.mb_s else 0.0
                    ratios.append(ratio)
                    print(f"[{NAME}] {label} round {n}: bare {bare.describe()}", flush=True)
                    print(f"[{NAME}] {label} round {n}: app  {app.describe()}  "
                          f"ratio {ratio:.3f}", flush=True)
                    if bare.failures or app.failures:
                        ratios[-1] = 0.0
                results[label] = median(ratios)

            checks = []
            for _ in range(5):
                started = time.perf_counter()
                accounts.verify_secret(PASSWORD, _hash_of(protected.id))
                checks.append((time.perf_counter() - started) * 1000)
            _timed_gets(port, plain_small.path, None, 3)  # warm
            plain_ms = _timed_gets(port, plain_small.path, None, PASSWORD_SAMPLES)
            password_ms = _timed_gets(port, protected.path, auth, PASSWORD_SAMPLES)

    print(f"[{NAME}] {watch.describe()}", flush=True)
    met = True
    for label, ratio in results.items():
        met = verdict(f"{NAME} {label}", ratio, GOAL_RATIO,
                       "app MiB/s / bare boto3 MiB/s (median round)") and met
    p95 = percentile(password_ms, 95)
    print(f"[{NAME}] one bcrypt check alone: {statistics.median(checks):.0f} ms (median of 5)",
          flush=True)
    print(f"[{NAME}] 1 KiB, plain link: p50 {percentile(plain_ms, 50):.1f} ms  "
          f"p95 {percentile(plain_ms, 95):.1f} ms (n={len(plain_ms)})", flush=True)
    print(f"[{NAME}] 1 KiB, password link: p50 {percentile(password_ms, 50):.1f} ms  "
          f"p95 {p95:.1f} ms  max {max(password_ms):.1f} ms (n={len(password_ms)})",
          flush=True)
    password_met = p95 < GOAL_P95_MS
    print(f"[{NAME} password] p95 = {p95:.1f} ms   goal < {GOAL_P95_MS:.0f} ms   "
          f"{'MET' if password_met else 'NOT MET'}", flush=True)
    return met and password_met


def _hash_of(link_id: object) -> str:
    """The stored hash of the password link (what each check compares with)."""
    from portcullis.db import system_session
    from portcullis.links.models import ShareLink

    with system_session() as db:
        link = db.get_one(ShareLink, link_id)
        assert link.password_hash is not None
        return link.password_hash
