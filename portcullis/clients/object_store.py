"""The one S3 client wrapper: every write is encrypted, every outage is DependencyUnavailable.

Callers never see botocore: an unreachable endpoint, a timeout, throttling or a 5xx after
botocore's own retries raise :class:`DependencyUnavailable` (tasks retry it, the front
door answers 503); a refusal that retrying will not fix raises :class:`StorageError`.
Messages carry the error class or S3 error code only, never the endpoint or credentials.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from portcullis.errors import DependencyUnavailable

SSE = "AES256"
CHUNK_SIZE = 64 * 1024
MiB = 1024 * 1024
_SINGLE_COPY_LIMIT = 5 * 1024 * MiB  # S3's CopyObject limit; larger objects copy in parts
_SINGLE_PUT_LIMIT = 5 * 1024 * MiB  # S3's PutObject limit; larger files go in parts
_BOTO_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_RETRYABLE_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable",
}
# Servers without bucket-level settings answer one of these; the per-object header still holds.
_UNSUPPORTED_CODES = {"NotImplemented", "MethodNotAllowed", "XNotImplemented", "InvalidRequest"}


class StorageError(Exception):
    """S3 refused the request for a reason retrying will not fix (access denied, bad key)."""

    def __init__(self, code: str, operation: str) -> None:
        self.code = code
        self.operation = operation
        super().__init__(f"storage refused {operation}: {code}")


class ObjectNotFound(StorageError):
    """The bucket or key does not exist."""


class VersionChanged(StorageError):
    """The object under the key is no longer the version asked for (If-Match failed)."""


@dataclass(frozen=True)
class Listed:
    """One object of a listing: its key and the version it is (ETag, last modified)."""

    key: str
    etag: str  # without the quotes S3 puts around it
    size: int
    modified: datetime


def _etag(raw: str) -> str:
    return raw.strip().strip('"')


def _quoted(etag: str) -> str:
    """How S3 wants an ETag in If-Match: in double quotes."""
    return f'"{_etag(etag)}"'


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _translate(exc: Exception, operation: str) -> Exception:
    """Map a boto exception onto our two error kinds without echoing URLs or keys."""
    if isinstance(exc, S3UploadFailedError):  # boto3 wraps the real error in its message
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            return _translate(cause, operation)
    if isinstance(exc, ClientError):
        code, status = _code(exc), _status(exc)
        if status >= 500 or code in _RETRYABLE_CODES:
            return DependencyUnavailable("storage", f"{operation}: {code}")
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFound(code, operation)
        if code == "PreconditionFailed" or status == 412:
            return VersionChanged(code, operation)
        return StorageError(code, operation)
    return DependencyUnavailable("storage", f"{operation}: {type(exc).__name__}")


_SHARED: dict[tuple[Any, ...], ObjectStore] = {}  # keyed by settings and pid (fork-safe)
# One build at a time: threads racing on a cold process would each load botocore's S3 model
# (megabytes each) only to throw all but one away.
_SHARED_LOCK = threading.Lock()


def _new_lock_in_child() -> None:  # a lock held by another thread at fork stays held
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


class ObjectStore:
    """Typed access to the two configured buckets (files and quarantine)."""

    def __init__(self, client: Any, bucket: str, quarantine_bucket: str, *,
                 region: str = "us-east-1", multipart_threshold: int = 8 * MiB,
                 part_size: int = 8 * MiB, max_concurrency: int = 4) -> None:
        self.client = client
        self.bucket = bucket
        self.quarantine_bucket = quarantine_bucket
        self.region = region
        # Bounded memory for non-seekable streams: at most max_concurrency parts in flight.
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=part_size,
            max_concurrency=max_concurrency, preferred_transfer_client="classic",
        )
        self.transfer.max_in_memory_upload_chunks = max_concurrency

    @classmethod
    def from_settings(cls, settings: Any, *, connect_timeout: float = 3.0,
                      read_timeout: float = 30.0, max_attempts: int = 3,
                      **kwargs: Any) -> ObjectStore:
        """The process's shared store for these settings (boto3 clients are thread-safe and
        slow to build); other timeouts or options get a client of their own."""
        if connect_timeout == 3.0 and read_timeout == 30.0 and max_attempts == 3 and not kwargs:
            key = (settings.S3_ENDPOINT_URL, settings.S3_REGION, settings.S3_BUCKET,
                   settings.S3_QUARANTINE_BUCKET, settings.S3_ACCESS_KEY_ID.get_secret_value(),
                   settings.S3_SECRET_ACCESS_KEY.get_secret_value(), os.getpid())
            store = _SHARED.get(key)
            if store is None:
                with _SHARED_LOCK:
                    store = _SHARED.get(key)
                    if store is None:
                        store = _SHARED[key] = cls._build(settings, connect_timeout,
                                                          read_timeout, max_attempts)
            return store
        return cls._build(settings, connect_timeout, read_timeout, max_attempts, **kwargs)

    @classmethod
    def _build(cls, settings: Any, connect_timeout: float, read_timeout: float,
               max_attempts: int, **kwargs: Any) -> ObjectStore:
        endpoint = settings.S3_ENDPOINT_URL or None
        options: dict[str, Any] = {
            "connect_timeout": connect_timeout, "read_timeout": read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": max_attempts},
            "signature_version": "s3v4",
        }
        if endpoint:
            # MinIO, Ceph, moto: no virtual-host DNS, and older ones reject the default
            # CRC32 trailer checksums boto3 >= 1.36 adds to every upload.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        key_id = settings.S3_ACCESS_KEY_ID.get_secret_value() or None
        secret = settings.S3_SECRET_ACCESS_KEY.get_secret_value() or None
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=settings.S3_REGION,
            aws_access_key_id=key_id, aws_secret_access_key=secret,
            config=Config(**options),
        )
        return cls(client, settings.S3_BUCKET, settings.S3_QUARANTINE_BUCKET,
                   region=settings.S3_REGION, **kwargs)

    def put_stream(self, bucket: str, key: str, fileobj: IO[bytes],
                   content_type: str | None = None) -> int:
        """Upload from a readable stream (multipart when large) and return the bytes stored."""
        extra: dict[str, str] = {"ServerSideEncryption": SSE}
        if content_type:
            extra["ContentType"] = content_type
        sent = 0
        lock = threading.Lock()

        def progress(amount: int) -> None:  # negative on a retry's rewind
            nonlocal sent
            with lock:
                sent += amount

        try:
            self.client.upload_fileobj(fileobj, bucket, key, ExtraArgs=extra,
                                       Callback=progress, Config=self.transfer)
        except _BOTO_ERRORS as exc:  # the source stream's own errors pass through untouched
            raise _translate(exc, "put") from None
        return sent

    def put_file(self, bucket: str, key: str, fileobj: IO[bytes],
                 content_type: str | None = None) -> int:
        """Upload a seekable file (a spool) in one PutObject and return the bytes stored.

        The body streams from the file as botocore sends it, so memory stays flat whatever
        the size: ``upload_fileobj`` would read each part of a seekable file into memory
        (8 MiB times max_concurrency). Larger than one PUT allows: ``put_stream``'s parts.
        """
        start = fileobj.tell()
        size = fileobj.seek(0, os.SEEK_END) - start
        fileobj.seek(start)
        if size > _SINGLE_PUT_LIMIT:
            return self.put_stream(bucket, key, fileobj, content_type)
        extra: dict[str, Any] = {"ServerSideEncryption": SSE}
        if content_type:
            extra["ContentType"] = content_type
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=fileobj, ContentLength=size,
                                   **extra)
        except _BOTO_ERRORS as exc:  # the source file's own errors pass through untouched
            raise _translate(exc, "put") from None
        return size

    def open_stream(self, bucket: str, key: str, chunk_size: int = CHUNK_SIZE, *,
                    if_match: str | None = None) -> Iterator[bytes]:
        """Chunks of an object; the request is made now, so a missing key raises here.
        With ``if_match`` only that version (ETag) is read: another raises
        :class:`VersionChanged`."""
        extra = {"IfMatch": _quoted(if_match)} if if_match else {}
        try:
            body = self.client.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, "get") from None
        return self._chunks(body, chunk_size)

    @staticmethod
    def _chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _translate(exc, "get") from None
        finally:
            body.close()

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             if_match: str | None = None, size: int | None = None) -> None:
        """Server-side copy; re-states SSE because CopyObject does not carry it over. With
        ``if_match`` only that version of the source is copied (else :class:`VersionChanged`).
        A caller that knows the source's ``size`` saves the managed copy's HeadObject and
        thread pool: one CopyObject does it up to 5 GiB."""
        extra: dict[str, str] = {"ServerSideEncryption": SSE}
        if if_match:
            extra["CopySourceIfMatch"] = _quoted(if_match)
        if size is not None and size <= _SINGLE_COPY_LIMIT:
            try:
                self.client.copy_object(CopySource={"Bucket": src_bucket, "Key": src_key},
                                        Bucket=dst_bucket, Key=dst_key, **extra)
            except _BOTO_ERRORS as exc:
                raise _translate(exc, "copy") from None
            return
        config = TransferConfig(multipart_threshold=_SINGLE_COPY_LIMIT,
                                multipart_chunksize=256 * MiB, max_concurrency=4,
                                preferred_transfer_client="classic")
        try:
            self.client.copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key,
                             ExtraArgs=extra, Config=config)
        except _BOTO_ERRORS as exc:
            raise _translate(exc, "copy") from None

    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> bool:
        """Delete; a key that is already gone is success, so retries are safe. With
        ``if_match`` only that version (ETag) goes: a newer one under the key stays, and
        the answer is False."""
        try:
            if if_match:
                return self._delete_if_match(bucket, key, if_match)
            self.client.delete_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) == "NoSuchKey":
                return True
            raise _translate(exc, "delete") from None
        except BotoCoreError as exc:
            raise _translate(exc, "delete") from None
        return True

    def _delete_if_match(self, bucket: str, key: str, etag: str) -> bool:
        try:
            self.client.delete_object(Bucket=bucket, Key=key, IfMatch=_quoted(etag))
        except ClientError as exc:
            code = _code(exc)
            if code == "PreconditionFailed":
                return False
            if code not in _UNSUPPORTED_CODES and _status(exc) != 501:
                raise
            # A store without conditional deletes: compare, then delete (a narrow race).
            current = self.head(bucket, key)
            if current is None:
                return True
            if _etag(str(current.get("ETag", ""))) != _etag(etag):
                return False
            self.client.delete_object(Bucket=bucket, Key=key)
        return True

    def list_objects(self, bucket: str, prefix: str, limit: int) -> list[Listed]:
        """Up to ``limit`` objects under ``prefix`` in key order, in pages of 1,000.
        "Directory" markers (keys ending in ``/``) are left out and do not count; at most
        ``10 * limit`` keys are read, so a prefix full of markers still ends."""
        found: list[Listed] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix,
                PaginationConfig={"MaxItems": max(10 * limit, 1000), "PageSize": 1000})
            for page in pages:
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):
                        found.append(Listed(item["Key"], _etag(item["ETag"]),
                                            int(item["Size"]), item["LastModified"]))
                if len(found) >= limit:
                    break
        except _BOTO_ERRORS as exc:
            raise _translate(exc, "list") from None
        return found[:limit]

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix`` (a non-empty ``a/b/`` form), in pages of up
        to 1,000; returns how many. Safe to repeat."""
        if not prefix or not prefix.endswith("/") or prefix.startswith("/"):
            raise ValueError("prefix must be a non-empty key prefix ending in '/'")
        deleted = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                            Prefix=prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    answer = self.client.delete_objects(
                        Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                    if answer.get("Errors"):  # some keys stayed: the job retries
                        raise DependencyUnavailable("storage",
                                                    "delete_prefix: some keys were not deleted")
                    deleted += len(keys)
        except _BOTO_ERRORS as exc:
            raise _translate(exc, "delete_prefix") from None
        return deleted

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """Object metadata (ContentLength, ContentType, ServerSideEncryption...) or None."""
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key))
        except (BotoCoreError, ClientError) as exc:
            error = _translate(exc, "head")
            if isinstance(error, ObjectNotFound):
                return None
            raise error from None

    def ensure_buckets(self) -> None:
        """Create the two buckets if missing, encrypted and private by default where supported."""
        for name in (self.bucket, self.quarantine_bucket):
            try:
                self._ensure_bucket(name)
            except (BotoCoreError, ClientError) as exc:
                raise _translate(exc, "ensure_buckets") from None

    def _ensure_bucket(self, name: str) -> None:
        try:
            self.client.head_bucket(Bucket=name)
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND and _status(exc) != 404:
                raise
            params: dict[str, Any] = {"Bucket": name}
            if self.region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self.client.create_bucket(**params)
            except ClientError as create_exc:
                if _code(create_exc) != "BucketAlreadyOwnedByYou":
                    raise
        self._best_effort(self.client.put_bucket_encryption, Bucket=name,
                          ServerSideEncryptionConfiguration={"Rules": [
                              {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE}},
                          ]})
        self._best_effort(self.client.put_public_access_block, Bucket=name,
                          PublicAccessBlockConfiguration={
                              "BlockPublicAcls": True, "IgnorePublicAcls": True,
                              "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
                          })

    @staticmethod
    def _best_effort(call: Any, **params: Any) -> None:
        try:
            call(**params)
        except ClientError as exc:
            if _code(exc) not in _UNSUPPORTED_CODES and _status(exc) not in {400, 405, 501}:
                raise

    def ping(self) -> bool:
        """True when both buckets answer; for /readyz, so it never raises."""
        try:
            for name in (self.bucket, self.quarantine_bucket):
                self.client.head_bucket(Bucket=name)
        except (BotoCoreError, ClientError):
            return False
        return True
