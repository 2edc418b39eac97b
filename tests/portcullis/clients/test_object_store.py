"""ObjectStore against moto's S3 server running as a real subprocess."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import Settings
from devstack.s3 import S3Server
from portcullis.clients.object_store import MiB, ObjectNotFound, ObjectStore
from portcullis.errors import DependencyUnavailable

RAW = "raw-no-default-encryption"  # so SSE seen on objects can only come from ObjectStore


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


def _settings(server: S3Server, **overrides: str) -> Settings:
    return Settings(**{"PORTCULLIS_ENV": "test", **server.env(), **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store(s3: S3Server) -> ObjectStore:
    store = ObjectStore.from_settings(_settings(s3), multipart_threshold=5 * MiB,
                                      part_size=5 * MiB)
    store.client.create_bucket(Bucket=RAW)
    return store


@pytest.fixture()
def calls(store: ObjectStore) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every S3 operation and its parameters, as the client sends them."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, dict(params)))

    store.client.meta.events.register("provide-client-params.s3", record)
    yield seen
    store.client.meta.events.unregister("provide-client-params.s3", record)


class Source(io.RawIOBase):
    """A non-seekable stream of deterministic bytes that remembers its largest read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.largest_read = 0
        self.block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.largest_read = max(self.largest_read, n)
        out = (self.block * (n // len(self.block) + 1))[:n]
        self.left -= n
        return out


def _writes(calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    names = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy"}
    return [c for c in calls if c[0] in names]


def test_put_sets_sse_visible_via_head(store: ObjectStore, calls: list) -> None:
    assert store.put_stream(RAW, "small", io.BytesIO(b"hello"), "text/plain") == 5
    head = store.head(RAW, "small")
    assert head is not None
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == 5
    assert head["ContentType"] == "text/plain"
    assert [p["ServerSideEncryption"] for _, p in _writes(calls)] == ["AES256"]
    # Control: the same bucket does not encrypt by itself, so the header above is ours.
    store.client.put_object(Bucket=RAW, Key="control", Body=b"x")
    assert "ServerSideEncryption" not in store.client.head_object(Bucket=RAW, Key="control")


def test_stream_round_trip_multipart(store: ObjectStore, calls: list) -> None:
    size = 11 * MiB + 123
    source = Source(size)
    assert store.put_stream(RAW, "big", source, "audio/mpeg") == size
    assert source.largest_read <= 5 * MiB
    ops = [name for name, _ in _writes(calls)]
    assert ops == ["CreateMultipartUpload"]
    assert all(p["ServerSideEncryption"] == "AES256" for _, p in _writes(calls))

    expected = hashlib.sha256()
    reference = Source(size)
    while chunk := reference.read(MiB):
        expected.update(chunk)
    got, total, largest = hashlib.sha256(), 0, 0
    for chunk in store.open_stream(RAW, "big", chunk_size=256 * 1024):
        got.update(chunk)
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert (total, got.hexdigest()) == (size, expected.hexdigest())
    assert largest <= 256 * 1024
    head = store.head(RAW, "big")
    assert head is not None and head["ServerSideEncryption"] == "AES256"


def test_seekable_multipart_counts_each_byte_once(store: ObjectStore) -> None:
    data = bytes(range(256)) * (6 * MiB // 256 + 7)
    assert store.put_stream(RAW, "seekable", io.BytesIO(data)) == len(data)
    assert b"".join(store.open_stream(RAW, "seekable")) == data


def test_copy_keeps_sse_and_content_type(store: ObjectStore, calls: list) -> None:
    store.put_stream(RAW, "src", io.BytesIO(b"payload"), "image/png")
    store.copy(RAW, "src", store.bucket, "dst")
    copied = [p for name, p in calls if name == "CopyObject"]
    assert copied and copied[0]["ServerSideEncryption"] == "AES256"
    head = store.head(store.bucket, "dst")
    assert head is not None
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "image/png"
    assert b"".join(store.open_stream(store.bucket, "dst")) == b"payload"


def test_copy_of_a_known_size_is_one_copy_object(store: ObjectStore, calls: list) -> None:
    """No HeadObject first (the managed copy's), and the same SSE, content type and bytes."""
    store.put_stream(RAW, "sized", io.BytesIO(b"payload"), "image/png")
    calls.clear()
    store.copy(RAW, "sized", store.bucket, "sized-dst", size=len(b"payload"))
    assert [name for name, _ in calls] == ["CopyObject"]
    assert calls[0][1]["ServerSideEncryption"] == "AES256"
    head = store.head(store.bucket, "sized-dst")
    assert head is not None and head["ContentType"] == "image/png"
    assert b"".join(store.open_stream(store.bucket, "sized-dst")) == b"payload"
    with pytest.raises(ObjectNotFound):
        store.copy(RAW, "nope", RAW, "also-nope", size=1)


def test_missing_objects(store: ObjectStore) -> None:
    assert store.head(RAW, "nope") is None
    with pytest.raises(ObjectNotFound):
        store.open_stream(RAW, "nope")
    with pytest.raises(ObjectNotFound):
        store.copy(RAW, "nope", RAW, "also-nope")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_stream(RAW, "gone", io.BytesIO(b"x"))
    store.delete(RAW, "gone")
    store.delete(RAW, "gone")
    store.delete(RAW, "never-existed")
    assert store.head(RAW, "gone") is None


def test_ensure_buckets_creates_encrypted_buckets(s3: S3Server) -> None:
    store = ObjectStore.from_settings(_settings(
        s3, S3_BUCKET="fresh-files", S3_QUARANTINE_BUCKET="fresh-quarantine"))
    assert not store.ping()
    store.ensure_buckets()
    store.ensure_buckets()  # idempotent
    assert store.ping()
    for name in ("fresh-files", "fresh-quarantine"):
        rules = store.client.get_bucket_encryption(Bucket=name)[
            "ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_ping(store: ObjectStore) -> None:
    assert store.ping()


def test_custom_endpoint_uses_path_style(store: ObjectStore) -> None:
    assert store.client.meta.config.s3["addressing_style"] == "path"


def test_source_errors_pass_through(store: ObjectStore) -> None:
    """An upload limit or client disconnect raised by the stream is not a storage outage."""

    class TooLarge(Exception):
        pass

    class Failing(Source):
        def read(self, n: int = -1) -> bytes:
            if self.left < 6 * MiB:
                raise TooLarge()
            return super().read(n)

    with pytest.raises(TooLarge):
        store.put_stream(RAW, "partial", Failing(12 * MiB))
    assert store.head(RAW, "partial") is None
    assert not store.client.list_multipart_uploads(Bucket=RAW).get("Uploads")  # aborted


# Keep last: moto forgets everything on restart (S3Server recreates only its own buckets).
def test_server_down_is_dependency_unavailable_then_restart(
        s3: S3Server, store: ObjectStore) -> None:
    s3.stop()
    try:
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as caught:
            store.put_stream(store.bucket, "k", io.BytesIO(b"x"))
        assert time.monotonic() - started < 10
        assert caught.value.dependency == "storage"
        assert "testing" not in str(caught.value) and s3.url not in str(caught.value)
        with pytest.raises(DependencyUnavailable):
            store.head(store.bucket, "k")
        with pytest.raises(DependencyUnavailable):
            store.open_stream(store.bucket, "k")
        with pytest.raises(DependencyUnavailable):
            store.delete(store.bucket, "k")
        assert store.ping() is False
    finally:
        s3.restart()
    assert store.ping()
    store.put_stream(store.bucket, "after", io.BytesIO(b"back"))
    assert b"".join(store.open_stream(store.bucket, "after")) == b"back"

