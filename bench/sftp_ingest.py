"""sftp_ingest: drop-box intake against API uploads of the same amount of bytes.

The whole pipeline runs for real: one Celery worker (concurrency 2, every queue, as the test
suite starts it) and one beat (``workers.beat:BeatScheduler``, with
``SFTP_INGEST_INTERVAL`` = ``INTERVAL_S``) on the benchmark's private stack; gunicorn (the
Procfile's web command) for the API side. Files are valid PNG and WAV of random bytes (the
uploads benchmark's makers): 200 small ones (100 kB) and 10 of 25 MiB.

SFTP side: 20 active SFTP accounts of one tenant, each feeding the tenant's bucket. The
files are written under the accounts' prefixes in the quarantine bucket the way SFTPGo's S3
filesystem writes them (PutObject, 2 writers), round robin over the accounts. The clock
runs from the first write until the last upload made from them has a verdict (its
``finished_at``). The first file's latency is from the first write until the bucket's file
list (``GET /api/v1/buckets/{id}/files``, polled every 0.1 s) shows a file; goal: within
``INTERVAL_S`` + 5 s.

Baseline, same run, just before: a twin set (same sizes, types and count, other random
bytes, so clamd's cache of clean files helps neither side) posted through
``POST /api/v1/buckets/{id}/uploads`` on 2 connections; the clock runs from the first POST
until the last verdict. Ratio = API seconds / SFTP seconds (SFTP throughput relative to the
API's); goal >= 0.8.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.audit_page import admin_cookie
from bench.harness import Connection, Services, get, gunicorn, verdict
from bench.uploads import Client, Sample, make_bucket, make_png, make_wav, pipeline_run

NAME = "sftp_ingest"
GOAL_RATIO = 0.8
INTERVAL_S = 2
GOAL_FIRST_S = INTERVAL_S + 5.0
ACCOUNTS = 20
SMALL = (100_000, 200)  # bytes, files
LARGE = (25 * 1024 * 1024, 10)
WRITERS = 2
WAIT_LIMIT_S = 300.0
TERMINAL = ("clean", "rejected", "infected")


def _files(label: str) -> list[Sample]:
    files = []
    for size, count in (SMALL, LARGE):
        for i in range(count):
            if i % 2:
                files.append(Sample(f"{label}-{size}-{i}.wav", "audio/wav", make_wav(size)))
            else:
                files.append(Sample(f"{label}-{size}-{i}.png", "image/png", make_png(size)))
    return files


def _accounts(tenant_id: uuid.UUID, bucket_id: uuid.UUID) -> list[uuid.UUID]:
    from tests.support.factories.billing import make_sftp_account

    return [make_sftp_account(tenant_id, bucket_id) for _ in range(ACCOUNTS)]


def _verdicts(tenant_id: uuid.UUID, accounts: list[uuid.UUID]) -> tuple[int, float | None]:
    """How many drop-box uploads have a verdict, and the latest ``finished_at``."""
    from sqlalchemy import func, select

    from portcullis.db import tenant_session
    from portcullis.storage.models import Upload

    with tenant_session(tenant_id) as db:
        done, last = db.execute(
            select(func.count(), func.max(Upload.finished_at))
            .where(Upload.sftp_account_id.in_(accounts), Upload.status.in_(TERMINAL))).one()
    return int(done), last.timestamp() if last else None


def _first_file(port: int, client: Client, started: float, found: dict[str, float],
                stop: threading.Event) -> None:
    conn = Connection(port)
    try:
        while not stop.is_set():
            status, body = conn.request(get(f"/api/v1/buckets/{client.bucket}/files?limit=1",
                                            client.read_headers))
            if status == 200 and json.loads(body)["items"]:
                found["first"] = time.time() - started
                return
            time.sleep(0.1)
    finally:
        conn.close()


def sftp_run(port: int, client: Client, tenant_id: uuid.UUID, accounts: list[uuid.UUID],
             files: list[Sample]) -> tuple[float, float, float]:
    """Seconds from the first write to the last verdict, to the first listed file, and
    spent writing."""
    from config import get_settings
    from portcullis.clients.object_store import ObjectStore

    settings = get_settings()
    s3 = ObjectStore.from_settings(settings).client
    stop = threading.Event()
    found: dict[str, float] = {}
    started = time.time()
    watcher = threading.Thread(target=_first_file, args=(port, client, started, found, stop),
                               daemon=True)
    watcher.start()

    def write(item: tuple[int, Sample]) -> None:
        index, sample = item
        account = accounts[index % len(accounts)]
        s3.put_object(Bucket=settings.S3_QUARANTINE_BUCKET,
                      Key=f"sftp/{account.hex}/incoming/{sample.name}", Body=sample.data)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(write, enumerate(files)))
    writing = time.time() - started
    deadline = time.monotonic() + WAIT_LIMIT_S
    while True:
        done, last = _verdicts(tenant_id, accounts)
        if done >= len(files) and last is not None:
            break
        if time.monotonic() > deadline:
            stop.set()
            raise RuntimeError(f"only {done}/{len(files)} drop-box files had a verdict in "
                               f"{WAIT_LIMIT_S:.0f}s")
        time.sleep(0.25)
    watcher.join(timeout=INTERVAL_S + 30)
    stop.set()
    return last - started, found.get("first", float("inf")), writing


def run(svc: Services) -> bool:
    from tests.support.worker import start_beat, start_worker

    print(f"[{NAME}] {SMALL[1]} x {SMALL[0]:,} B + {LARGE[1]} x 25 MiB over {ACCOUNTS} drop "
          f"boxes vs the API; SFTP_INGEST_INTERVAL={INTERVAL_S}s, worker concurrency 2",
          flush=True)
    api_files, sftp_files = _files("api"), _files("sftp")
    total = sum(len(f.data) for f in sftp_files)
    tenant_id, cookie, csrf = admin_cookie("Bench SFTP ingest")
    interval = {"SFTP_INGEST_INTERVAL": str(INTERVAL_S)}
    worker = start_worker(svc.logs / "sftp-worker.log", f"bench-sftp-{os.getpid()}",
                          concurrency=2, env=interval)
    beat = start_beat(svc.logs / "sftp-beat.log", f"bench-sftp-beat-{os.getpid()}", interval)
    try:
        with gunicorn(svc, NAME) as port:
            api_client = Client(port, make_bucket(port, cookie, csrf), cookie, csrf)
            api_s, posting, _median, tally = pipeline_run(api_client, tenant_id, api_files)
            print(f"[{NAME}] API: {len(api_files)} files, {total / 1e6:.0f} MB in "
                  f"{api_s:.1f}s ({total / api_s / 1e6:.1f} MB/s; posting {posting:.1f}s) "
                  f"{tally}", flush=True)
            sftp_client = Client(port, make_bucket(port, cookie, csrf), cookie, csrf)
            accounts = _accounts(tenant_id, uuid.UUID(sftp_client.bucket))
            sftp_s, first_s, writing = sftp_run(port, sftp_client, tenant_id, accounts,
                                                sftp_files)
            print(f"[{NAME}] SFTP: {len(sftp_files)} files, {total / 1e6:.0f} MB in "
                  f"{sftp_s:.1f}s ({total / sftp_s / 1e6:.1f} MB/s; writing {writing:.1f}s); "
                  f"first file listed after {first_s:.1f}s", flush=True)
    finally:
        beat.stop()
        worker.stop(timeout=30)
    ratio_met = verdict(NAME, api_s / sftp_s, GOAL_RATIO, "SFTP throughput / API throughput")
    first_met = first_s <= GOAL_FIRST_S
    print(f"[{NAME}] first file listed after {first_s:.1f}s; goal <= {GOAL_FIRST_S:.0f}s "
          f"(SFTP_INGEST_INTERVAL + 5 s): {'MET' if first_met else 'NOT MET'}", flush=True)
    return ratio_met and first_met
