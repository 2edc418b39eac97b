"""auth_me: the front door's own cost, against a plain Flask app in the same run.

Two gunicorns from the Procfile's web command, same config (its defaults: 2 x cores
workers of 2 threads): a plain Flask app (``bench.plain_flask``) and the real app plus
one trivial route (``bench.wsgi_bare``). wrk (2 threads, 32 keep-alive connections)
loads, in rounds that alternate every target so drift on the machine hits all alike:

- plain Flask ``GET /_bench/bare`` -- the baseline;
- the app's ``GET /_bench/bare`` (every app-wide hook: request id, client address, security
  headers, structlog context, the default rate limit per client address in Redis);
- ``GET /healthz`` (the app's own route, exempt from the limiter), for context;
- ``GET /api/v1/auth/me`` with one session on all 32 connections, and with 32 sessions of
  32 members (requests rotate through them on every connection);
- ``GET /api/v1/buckets`` with one access key (``buckets:read``) on all 32 connections.

Goals, each the median over rounds of ``route req/s ÷ plain Flask req/s`` in the same round:
bare >= 0.7, both /me mixes >= 0.4, the key route >= 0.35; and each of those with its
median round's p99 under 80 ms. Every response must be 2xx.
"""

from __future__ import annotations

import json
import os

from bench.audit_page import superuser
from bench.harness import (
    Connection,
    CpuWatch,
    Services,
    WrkResult,
    get,
    gunicorn,
    median,
    require_wrk,
    session_cookie,
    viewonly_members,
    wrk,
)

NAME = "auth_me"
CONNECTIONS = 32
WRK_THREADS = 2
ROUNDS = 7
SECONDS = 2  # per target per round (wrk takes whole seconds)
WARMUP_SECONDS = 1
P99_GOAL_MS = 80.0
BARE = "/_bench/bare"
HEALTHZ = "/healthz"
ME = "/api/v1/auth/me"
BUCKETS = "/api/v1/buckets"
BUCKET_COUNT = 3

# label, ratio goal (None: context only)
TARGETS: list[tuple[str, float | None]] = [
    ("plain", None),
    ("bare", 0.7),
    ("healthz", None),
    ("me-1", 0.4),
    ("me-32", 0.4),
    ("key", 0.35),
]
DESCRIPTIONS = {
    "plain": f"plain Flask GET {BARE}",
    "bare": f"app GET {BARE}",
    "healthz": f"app GET {HEALTHZ}",
    "me-1": f"GET {ME}, 1 session",
    "me-32": f"GET {ME}, 32 sessions",
    "key": f"GET {BUCKETS}, 1 access key",
}


def _seed_key() -> str:
    """An admin's ``buckets:read`` key in a tenant with a few buckets."""
    from portcullis.accounts.models import Role
    from tests.support.factories import make_access_key, make_bucket, make_member, make_tenant

    admin = make_member(make_tenant("Bench key"), Role.admin)
    for i in range(BUCKET_COUNT):
        make_bucket(admin, f"bench-{i}")
    return make_access_key(admin, ["buckets:read"], name="bench").secret


def run(svc: Services) -> bool:
    require_wrk()
    print(f"[{NAME}] wrk {WRK_THREADS} threads x {CONNECTIONS} connections, {ROUNDS} rounds "
          f"of {SECONDS:g}s per target; each gunicorn as its config's defaults are "
          f"(2 x {os.cpu_count()} cores workers x 2 threads, unless WEB_CONCURRENCY or "
          "WEB_THREADS is set)",
          flush=True)
    cookies = [session_cookie(m) for m in viewonly_members(CONNECTIONS, 1, "me")]
    key = _seed_key()
    with superuser(svc) as conn:  # planner statistics, as autovacuum keeps them
        conn.execute("ANALYZE")
    me_32 = [{"Cookie": f"portcullis_session={c}"} for c in cookies]
    plans = {
        "plain": (BARE, [{}]),
        "bare": (BARE, [{}]),
        "healthz": (HEALTHZ, [{}]),
        "me-1": (ME, me_32[:1]),
        "me-32": (ME, me_32),
        "key": (BUCKETS, [{"Authorization": f"Bearer {key}"}]),
    }

    results: dict[str, list[WrkResult]] = {label: [] for label, _ in TARGETS}
    with gunicorn(svc, f"{NAME}-plain",
                  app_module="bench.plain_flask:application") as plain_port, \
            gunicorn(svc, NAME,
                     app_module="bench.wsgi_bare:application") as app_port:
        ports = {label: plain_port if label == "plain" else app_port for label in plans}
        _precheck(plain_port, app_port, plans)

        def load(label: str, seconds: int) -> WrkResult:
            path, headers = plans[label]
            return wrk(ports[label], path, [dict(h) for h in headers], seconds=seconds,
                       connections=CONNECTIONS, threads=WRK_THREADS, base=svc.base)

        for label in plans:
            load(label, WARMUP_SECONDS)
        with CpuWatch() as watch:
            for round_no in range(1, ROUNDS + 1):
                for label, _ in TARGETS:
                    result = load(label, SECONDS)
                    results[label].append(result)
                    print(f"[{NAME}] round {round_no} {label:>7}: {result.describe()}",
                          flush=True)
            # Plain Flask once more, so that every round's targets lie between two plain
            # measurements (the next round's first one, or this one).
            closing = load("plain", SECONDS)
            print(f"[{NAME}] closing   plain: {closing.describe()}", flush=True)

    print(f"[{NAME}] {watch.describe()}", flush=True)
    return _report(results, closing)


def _report(results: dict[str, list[WrkResult]], closing: WrkResult) -> bool:
    """Each round's ratio is against plain Flask around it (the mean of the plain runs that
    open this round and the next), so drift on a shared machine largely cancels out; the
    verdict takes the median round. The server's CPU per request (gunicorn, Redis and
    PostgreSQL together, against plain Flask's) is printed beside it: other work on the
    machine moves it far less than it moves a throughput."""
    opening = results["plain"]
    around = [(a.rate + b.rate) / 2 for a, b in zip(opening, [*opening[1:], closing],
                                                     strict=True)]
    all_met = True
    for label, goal in TARGETS:
        rounds = results[label]
        rate = median([r.rate for r in rounds])
        ratio = (median([r.rate / p for r, p in zip(rounds, around, strict=True) if p])
                 if label != "plain" else 1.0)
        cpu = median([r.cpu_us() for r in rounds])
        cpu_ratio = median([p.cpu_us() / r.cpu_us() for r, p in zip(rounds, opening,
                                                                     strict=True)
                            if r.cpu_us()])
        p99 = median([r.p99_ms for r in rounds])
        worst = max(r.p99_ms for r in rounds)
        bad = sum(r.non_2xx + r.socket_errors for r in rounds)
        line = (f"[{NAME}] {DESCRIPTIONS[label]:<34} {rate:7,.0f} req/s  ratio {ratio:.3f}  "
                f"p99 {p99:5.1f} ms (worst {worst:5.1f})  CPU {cpu:5.0f} us/req "
                f"(plain/this {cpu_ratio:.2f})")
        if bad:
            line += f"  FAILED REQUESTS {bad}"
        if goal is None:
            print(line + ("   baseline" if label == "plain" else "   (context)"), flush=True)
            continue
        met = ratio >= goal and p99 < P99_GOAL_MS and not bad
        all_met &= met
        print(f"{line}   goal >= {goal}, p99 < {P99_GOAL_MS:g} ms   "
              f"{'MET' if met else 'NOT MET'}", flush=True)
    return all_met


def _precheck(plain_port: int, app_port: int,
              plans: dict[str, tuple[str, list[dict[str, str]]]]) -> None:
    """Every target answers 200 with the right body before anything is timed."""
    for label, (path, headers) in plans.items():
        conn = Connection(plain_port if label == "plain" else app_port)
        try:
            for h in headers:
                status, body = conn.request(get(path, h))
                data = json.loads(body) if status == 200 else None
                good = {
                    "plain": lambda d: d == {"ok": True},
                    "bare": lambda d: d == {"ok": True},
                    "healthz": lambda d: d == {"status": "ok"},
                    "me-1": lambda d: d.get("session") == "full",
                    "me-32": lambda d: d.get("session") == "full",
                    "key": lambda d: len(d.get("items", [])) == BUCKET_COUNT,
                }[label]
                if data is None or not good(data):
                    raise RuntimeError(f"{label} {path} answered {status}: {body[:300]!r}")
        finally:
            conn.close()
