"""Share links, built directly in the database: a 256-bit token stored as its digest, as
the links service stores it. The raw token is returned; ``GET /s/{token}`` serves it."""

from __future__ import annotations

import io
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from config import get_settings
from portcullis import secrets_gen
from portcullis.db import tenant_session
from portcullis.links.models import ShareLink
from tests.support.factories.storage import StoredFile
from tests.support.factories.tenants import make_tenant


@dataclass(frozen=True)
class Link:
    id: uuid.UUID
    tenant_id: uuid.UUID
    token: str
    object_key: str

    @property
    def path(self) -> str:
        """``/s/{token}``, the download path."""
        return f"/s/{self.token}"

    @property
    def url(self) -> str:
        return f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}{self.path}"


def _add(tenant_id: uuid.UUID, expires_in: timedelta, revoked: bool, **columns: object) -> Link:
    token = secrets_gen.new_token()
    now = datetime.now(UTC)
    link = ShareLink(id=uuid.uuid4(), tenant_id=tenant_id, token_hash=secrets_gen.digest(token),
                     expires_at=now + expires_in, revoked_at=now if revoked else None,
                     **columns)
    with tenant_session(tenant_id) as db:
        db.add(link)
    return Link(link.id, tenant_id, token, link.object_key)


def make_export_link(data: bytes = b"x", *, tenant_id: uuid.UUID | None = None,
                     filename: str = "report.bin",
                     content_type: str = "application/octet-stream",
                     expires_in: timedelta = timedelta(minutes=10),
                     revoked: bool = False) -> Link:
    """A live link to ``data``, stored in the files bucket under a random key: the kind of
    link an audit export answers (no file row, no bucket)."""
    from portcullis.clients.object_store import ObjectStore

    settings = get_settings()
    key = f"test-links/{secrets.token_hex(12)}"
    ObjectStore.from_settings(settings).put_stream(settings.S3_BUCKET, key, io.BytesIO(data),
                                                   content_type)
    return _add(tenant_id or make_tenant("Links"), expires_in, revoked, kind="export",
                bucket=settings.S3_BUCKET, object_key=key, filename=filename,
                content_type=content_type, size=len(data))


def make_file_link(file: StoredFile, *, created_by: uuid.UUID | None = None,
                   expires_in: timedelta = timedelta(minutes=10),
                   revoked: bool = False, max_downloads: int | None = None,
                   downloads: int = 0, password: str | None = None,
                   allowed_ips: list[str] | None = None) -> Link:
    """A link to a stored file (``make_file``), as ``POST /files/{id}/links`` makes one,
    hardened if asked: a download budget (``downloads`` of it already used), a password
    (hashed as the service hashes it) and allowed client addresses."""
    from portcullis.accounts.passwords import hash_password
    from portcullis.links.addresses import normalise_all

    return _add(file.tenant_id, expires_in, revoked, kind="file",
                bucket=get_settings().S3_BUCKET, object_key=file.storage_key,
                filename=file.filename, content_type=file.content_type, size=file.size,
                created_by_user_id=created_by, file_id=file.id, bucket_id=file.bucket_id,
                max_downloads=max_downloads, downloads=downloads,
                password_hash=hash_password(password) if password is not None else None,
                allowed_ips=normalise_all(allowed_ips) if allowed_ips is not None else None)
