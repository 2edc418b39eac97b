"""A 25 MiB upload through a real gunicorn worker stays in bounded memory (README: Files).

The worker's peak resident memory (VmHWM, /proc/<pid>/status) is reset after a warm-up upload
of the same size, so one-time imports and caches don't count, and read again after a second
upload: the growth must stay under 8 MiB, where holding the body whole costs 25 MiB or more.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from config import get_settings
from devstack.process import ServiceProcess, wait_until
from portcullis.accounts.models import Role
from portcullis.clients import object_store as storage
from portcullis.clients.object_store import ObjectStore
from tests.support.factories import LoggedIn, make_member, make_session, make_tenant
from tests.support.media import multipart, upload_row
from tests.support.web import start_web

pytestmark = pytest.mark.usefixtures("stack")

MiB = 1024 * 1024
GROWTH_LIMIT = 8 * MiB


def worker_pid(master: int) -> int:
    """The one gunicorn worker: the master's only child."""
    def children() -> list[int]:
        with open(f"/proc/{master}/task/{master}/children") as listed:
            return [int(pid) for pid in listed.read().split()]

    wait_until(lambda: len(children()) == 1, 30, "gunicorn worker")
    return children()[0]


def reset_peak(pid: int) -> None:
    """Set VmHWM back to the current VmRSS (Linux >= 4.0), so the next peak is this one's."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, int]]:
    """The Procfile's web command with one worker and one thread: one upload at a time."""
    web, port = start_web(tmp_path_factory.mktemp("web-memory") / "web.log",
                          {"WEB_CONCURRENCY": "1", "WEB_THREADS": "1"})
    yield web, port
    web.stop()


def _post(port: int, who: LoggedIn, path: str, *, json: dict[str, str] | None = None,
          content: bytes | None = None, content_type: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"portcullis_session={who.cookie}; portcullis_csrf={who.csrf}",
               "X-CSRF-Token": who.csrf}
    if content_type:
        headers["Content-Type"] = content_type
    return httpx.post(f"http://127.0.0.1:{port}{path}", headers=headers, json=json,
                      content=content, timeout=120)


def test_a_25_mib_upload_grows_the_worker_by_under_8_mib(
        web: tuple[ServiceProcess, int]) -> None:
    process, port = web
    assert process.proc is not None
    pid = worker_pid(process.proc.pid)
    admin = make_session(make_member(make_tenant(), Role.admin))
    bucket = _post(port, admin, "/api/v1/buckets", json={"name": f"m-{uuid.uuid4().hex[:8]}"})
    assert bucket.status_code == 201, bucket.text
    size = get_settings().UPLOAD_MAX_BYTES  # exactly the limit: accepted
    body, mimetype = multipart("big.png", "image/png", os.urandom(size))
    path = f"/api/v1/buckets/{bucket.json()['id']}/uploads"

    def upload() -> str:
        response = _post(port, admin, path, content=body, content_type=mimetype)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    upload()  # warm-up: imports, connection pools, allocator arenas
    reset_peak(pid)
    before = memory(pid)
    upload_id = upload()
    after = memory(pid)
    growth = after["VmHWM"] - before["VmHWM"]
    print(f"worker VmHWM {before['VmHWM'] / MiB:.1f} -> {after['VmHWM'] / MiB:.1f} MiB, "
          f"VmRSS {before['VmRSS'] / MiB:.1f} -> {after['VmRSS'] / MiB:.1f} MiB")
    assert growth < GROWTH_LIMIT, f"peak RSS grew {growth / MiB:.1f} MiB for one upload"
    # ...and every byte was stored, encrypted: the memory was not saved by dropping any.
    settings = get_settings()
    head = ObjectStore.from_settings(settings).head(settings.S3_QUARANTINE_BUCKET,
                                                    upload_row(upload_id).quarantine_key)
    assert head is not None
    assert (head["ContentLength"], head["ServerSideEncryption"]) == (size, "AES256")


class Spool(io.BytesIO):
    """A seekable file that remembers its largest read (what a PUT holds of it at once)."""

    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


@pytest.fixture
def store_calls() -> Iterator[tuple[ObjectStore, list[str]]]:
    store = ObjectStore.from_settings(get_settings())
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    store.client.meta.events.register("provide-client-params.s3", record)
    yield store, seen
    store.client.meta.events.unregister("provide-client-params.s3", record)


def test_put_file_streams_one_put_from_the_spool(
        store_calls: tuple[ObjectStore, list[str]]) -> None:
    """upload_fileobj would read 8 MiB parts of a seekable file into memory, several at once."""
    store, calls = store_calls
    data = os.urandom(17 * MiB)
    spool = Spool(data)
    key = f"q/{uuid.uuid4().hex}"
    bucket = get_settings().S3_QUARANTINE_BUCKET
    assert store.put_file(bucket, key, spool, "application/octet-stream") == len(data)
    assert calls == ["PutObject"]
    assert spool.largest_read <= MiB
    head = store.head(bucket, key)
    assert head is not None
    assert (head["ContentLength"], head["ServerSideEncryption"]) == (len(data), "AES256")
    assert b"".join(store.open_stream(bucket, key)) == data


def test_put_file_over_the_single_put_limit_goes_in_parts(
        store_calls: tuple[ObjectStore, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    store, calls = store_calls
    monkeypatch.setattr(storage, "_SINGLE_PUT_LIMIT", MiB)
    data = os.urandom(9 * MiB)  # above the store's 8 MiB multipart threshold
    key = f"q/{uuid.uuid4().hex}"
    bucket = get_settings().S3_QUARANTINE_BUCKET
    assert store.put_file(bucket, key, io.BytesIO(data)) == len(data)
    assert "CreateMultipartUpload" in calls and "PutObject" not in calls
    assert b"".join(store.open_stream(bucket, key)) == data
