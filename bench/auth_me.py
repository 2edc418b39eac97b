"""auth_me: authenticated ``GET /api/v1/auth/me`` against a bare route, same server, same run.

One gunicorn (the Procfile's web command, serving ``bench.wsgi_bare``, 2 workers) answers
both routes. Each client connection is a different view-only member with a full session
row, so requests don't queue on one session row's idle-clock update. Rounds alternate bare
and /me so drift on the machine hits both alike.

Ratio = /me req/s ÷ bare req/s (all rounds pooled); goal >= 0.5.
"""

from __future__ import annotations

import json

from bench.harness import (
    PASSWORD,
    CpuWatch,
    Load,
    Services,
    full_session,
    get,
    gunicorn,
    median,
    run_load,
    seed_viewonly,
    verdict,
)

NAME = "auth_me"
GOAL = 0.5
WORKERS = 2
THREADS = 4  # the gunicorn config's default WEB_THREADS
CONNECTIONS = 32  # 4 per worker thread: an uneven split still keeps both workers busy
WARMUP = 400  # requests per route, not timed
ROUNDS = 3
BARE_REQUESTS = 1500  # per round
ME_REQUESTS = 500  # per round
ROUND_TIME_LIMIT = 10.0  # seconds; a round stops early if it is hit
BARE = "/_bench/bare"
ME = "/api/v1/auth/me"


def run(svc: Services) -> bool:
    from portcullis.accounts.passwords import hash_password

    print(f"[{NAME}] GET {ME} (full session) vs GET {BARE}; gunicorn {WORKERS} workers x "
          f"{THREADS} threads, {CONNECTIONS} keep-alive connections", flush=True)
    accounts = seed_viewonly(CONNECTIONS, 1, hash_password(PASSWORD), "me")
    cookies = [full_session(a) for a in accounts]
    me_requests = [get(ME, {"Cookie": f"portcullis_session={c}"}) for c in cookies]
    bare_request = get(BARE)

    def me(_seq: int, conn: int) -> bytes:
        return me_requests[conn % len(me_requests)]

    def bare(_seq: int, _conn: int) -> bytes:
        return bare_request

    def ok(status: int, _body: bytes) -> bool:
        return status == 200

    with gunicorn(svc, NAME, workers=WORKERS, threads=THREADS,
                  app_module="bench.wsgi_bare:application") as port:
        _precheck(port, me_requests, bare_request)
        for build in (bare, me):
            run_load(port, build, ok, total=WARMUP, concurrency=CONNECTIONS,
                     time_limit=ROUND_TIME_LIMIT)
        results: dict[str, list[Load]] = {"bare": [], "me": []}
        with CpuWatch() as watch:
            for round_no in range(1, ROUNDS + 1):
                for label, build, total in (("bare", bare, BARE_REQUESTS),
                                            ("me", me, ME_REQUESTS)):
                    load = run_load(port, build, ok, total=total, concurrency=CONNECTIONS,
                                    time_limit=ROUND_TIME_LIMIT)
                    results[label].append(load)
                    print(f"[{NAME}] round {round_no} {label:>4}: {load.describe()}",
                          flush=True)

    print(f"[{NAME}] {watch.describe()}", flush=True)
    bare_ok = sum(r.ok for r in results["bare"])
    me_ok = sum(r.ok for r in results["me"])
    bare_rate = bare_ok / sum(r.elapsed for r in results["bare"])
    me_rate = me_ok / sum(r.elapsed for r in results["me"])
    errors = sum(r.errors for rs in results.values() for r in rs)
    print(f"[{NAME}] bare {BARE}: {bare_rate:,.1f} req/s "
          f"(median round {median([r.rate for r in results['bare']]):,.1f})", flush=True)
    print(f"[{NAME}] me   {ME}: {me_rate:,.1f} req/s "
          f"(median round {median([r.rate for r in results['me']]):,.1f})", flush=True)
    if errors:
        print(f"[{NAME}] WARNING: {errors} requests failed; only successes are counted",
              flush=True)
    return verdict(NAME, me_rate / bare_rate if bare_rate else 0.0, GOAL, "me/bare")


def _precheck(port: int, me_requests: list[bytes], bare_request: bytes) -> None:
    """Both routes answer 200, and /me sees a full session, before anything is timed."""
    from bench.harness import Connection

    conn = Connection(port)
    try:
        status, body = conn.request(bare_request)
        if status != 200 or json.loads(body) != {"ok": True}:
            raise RuntimeError(f"{BARE} answered {status}: {body[:200]!r}")
        for raw in me_requests:
            status, body = conn.request(raw)
            if status != 200 or json.loads(body).get("session") != "full":
                raise RuntimeError(f"{ME} answered {status}: {body[:300]!r}")
    finally:
        conn.close()
