"""logins: ``POST /api/v1/auth/login`` throughput against the bcrypt-bound ceiling.

Ceiling = cores ÷ (seconds for one bcrypt check at cost 12, measured in this run with
``portcullis.accounts.passwords.verify_password``): what the machine could do if a login
were nothing but its password check. Measured: logins/s under gunicorn (the Procfile's web
command, WEB_CONCURRENCY = cores) with distinct verified view-only accounts, each login a
full success (session row, audit event, cookies).

Ratio = measured ÷ ceiling; goal >= 0.8.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from bench.harness import (
    Connection,
    CpuWatch,
    Services,
    cores,
    gunicorn,
    median,
    post_json,
    run_load,
    verdict,
    viewonly_members,
)

NAME = "logins"
GOAL = 0.8
ACCOUNTS = 200
TENANTS = 10  # audit chains are per tenant; spread the accounts like real traffic
THREADS = 4  # per worker
HASH_SAMPLES = 5
MEASURED_LOGINS = 80
TIME_LIMIT = 45.0  # seconds; the measured run stops early if it is hit
LOGIN = "/api/v1/auth/login"


def run(svc: Services) -> bool:
    from config import get_settings
    from portcullis.accounts.passwords import hash_password, verify_password
    from tests.support.factories import PASSWORD

    n_cores = cores()
    rounds = get_settings().BCRYPT_ROUNDS
    workers, concurrency = n_cores, n_cores * THREADS
    print(f"[{NAME}] POST {LOGIN}; BCRYPT_ROUNDS={rounds}, {n_cores} cores, gunicorn "
          f"{workers} workers x {THREADS} threads, {concurrency} keep-alive connections, "
          f"{ACCOUNTS} accounts in {TENANTS} tenants", flush=True)

    password_hash = hash_password(PASSWORD)  # the cost the factories' accounts have
    if not verify_password(PASSWORD, password_hash):
        raise RuntimeError("the password hash does not verify")
    accounts = viewonly_members(ACCOUNTS, TENANTS, "login")
    bodies = [post_json(LOGIN, json.dumps({"email": a.email, "password": PASSWORD}).encode())
              for a in accounts]
    warmup = concurrency  # one login per connection: pools, imports, first queries
    if warmup + MEASURED_LOGINS >= len(bodies):
        raise RuntimeError("not enough distinct accounts for the run")

    def ok(status: int, body: bytes) -> bool:
        return status == 200 and b'"ok"' in body

    def check() -> object:
        return verify_password(PASSWORD, password_hash)

    with gunicorn(svc, NAME, workers=workers, threads=THREADS) as port:
        conn = Connection(port)
        status, body = conn.request(bodies[-1])  # an account the runs below never use
        conn.close()
        if not ok(status, body):
            raise RuntimeError(f"login answered {status}: {body[:300]!r}")
        run_load(port, lambda seq, _c: bodies[seq], ok, total=warmup,
                 concurrency=concurrency, time_limit=TIME_LIMIT)
        # The server is idle now: time bcrypt here, then the logins, in one window.
        with CpuWatch() as watch:
            samples = []
            for _ in range(HASH_SAMPLES):
                started = time.perf_counter()
                check()
                samples.append(time.perf_counter() - started)
            parallel = _parallel_rate(n_cores, check)
            load = run_load(port, lambda seq, _c: bodies[warmup + seq], ok,
                            total=MEASURED_LOGINS, concurrency=concurrency,
                            time_limit=TIME_LIMIT)

    one_hash = median(samples)
    ceiling = n_cores / one_hash
    print(f"[{NAME}] one bcrypt check (cost {rounds}): {one_hash * 1000:.0f} ms "
          f"(median of {HASH_SAMPLES}); ceiling = {n_cores} / {one_hash:.3f}s "
          f"= {ceiling:.2f} logins/s", flush=True)
    print(f"[{NAME}] (info) bcrypt alone on {n_cores} threads at once: "
          f"{parallel:.2f} checks/s", flush=True)
    print(f"[{NAME}] measured: {load.describe()}", flush=True)
    print(f"[{NAME}] {watch.describe()}", flush=True)
    if load.errors:
        print(f"[{NAME}] WARNING: {load.errors} logins failed; only successes are counted",
              flush=True)
    print(f"[{NAME}] {load.rate:.2f} logins/s measured vs {ceiling:.2f} logins/s ceiling",
          flush=True)
    print(f"[{NAME}] (info) measured / bcrypt alone on {n_cores} threads = "
          f"{load.rate / parallel:.3f} (against what the cores really gave bcrypt just now)",
          flush=True)
    return verdict(NAME, load.rate / ceiling, GOAL, "measured/ceiling")


def _parallel_rate(threads: int, check: Callable[[], object], per_thread: int = 3) -> float:
    """Checks per second with ``threads`` threads hashing at once (bcrypt drops the GIL)."""
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            check()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * per_thread / (time.perf_counter() - started)
