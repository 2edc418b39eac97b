"""Share links: create them, revoke them, resolve a token to the object it names.

Links name stored objects; they reach storage only through ``portcullis.storage.service``
(is the file readable, where are its bytes, count the egress). A deleted file's links are
revoked by the database (a trigger on ``files``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import get_settings
from portcullis import secrets_gen
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.clients.object_store import ObjectNotFound, ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.errors import DependencyUnavailable, Forbidden, Gone, NotFound
from portcullis.links.models import ShareLink
from portcullis.storage import service as storage

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    url: str


def create(db: Session, tenant_id: uuid.UUID, *, kind: str, bucket: str, object_key: str,
           filename: str, content_type: str, size: int | None, expires_in: timedelta,
           created_by_user_id: uuid.UUID | None = None, file_id: uuid.UUID | None = None,
           bucket_id: uuid.UUID | None = None) -> NewLink:
    """A link to any stored object, in the caller's transaction (an export's, a file's)."""
    token = secrets_gen.new_token()
    link = ShareLink(tenant_id=tenant_id, kind=kind, token_hash=secrets_gen.digest(token),
                     bucket=bucket, object_key=object_key, filename=filename,
                     content_type=content_type, size=size,
                     created_by_user_id=created_by_user_id, file_id=file_id,
                     bucket_id=bucket_id, expires_at=datetime.now(UTC) + expires_in)
    db.add(link)
    db.flush()
    return NewLink(link, f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/s/{token}")


@dataclass(frozen=True)
class CreatedLink:
    """A new file link: its URL and token are shown this once."""

    id: uuid.UUID
    url: str
    token: str
    expires_at: datetime


def _tenant(caller: Caller) -> uuid.UUID:
    if caller.tenant_id is None:
        raise NotFound("link")
    return caller.tenant_id


def create_for_file(caller: Caller, file_id: uuid.UUID, expires_in: int) -> CreatedLink:
    """Anyone who may read the file; audited ``link.created``."""
    tenant_id = _tenant(caller)
    settings = get_settings()
    with tenant_session(tenant_id) as db:
        file = storage.readable_file(db, caller, file_id)
        new = create(db, tenant_id, kind="file", bucket=settings.S3_BUCKET,
                     object_key=file.storage_key, filename=file.filename,
                     content_type=file.content_type, size=file.size,
                     expires_in=timedelta(seconds=expires_in),
                     created_by_user_id=caller.user_id, file_id=file.id,
                     bucket_id=file.bucket_id)
        record(db, caller, "link.created", Target("link", str(new.link.id)),
               {"file_id": str(file.id), "expires_at": new.link.expires_at.isoformat()})
        return CreatedLink(new.link.id, new.url, new.url.rsplit("/", 1)[-1],
                           new.link.expires_at)


def link_for(db: Session, caller: Caller, link_id: uuid.UUID, change: bool = False,
             lock: bool = False) -> ShareLink:
    """A file link, if the caller may read it (else 404): its creator, an admin, or anyone
    who may read its file's bucket (they may list its links). Changing it (``change``) is
    for its creator or an admin only (else 403)."""
    stmt = select(ShareLink).where(ShareLink.id == link_id,
                                   ShareLink.tenant_id == caller.tenant_id,
                                   ShareLink.kind == "file")
    link = db.scalars(stmt.with_for_update() if lock else stmt).first()
    if link is None:
        raise NotFound("link")
    own = caller.role is Role.admin or link.created_by_user_id == caller.user_id
    if not own:
        if link.bucket_id is None or not storage.can_read_bucket(db, caller, link.bucket_id):
            raise NotFound("link")
        if change:
            raise Forbidden("forbidden", "Only the link's creator or an admin may change it.")
    return link


def revoke(caller: Caller, link_id: uuid.UUID) -> None:
    """The link's creator or an admin; a reader of its bucket gets 403, anyone else 404."""
    with tenant_session(_tenant(caller)) as db:
        link = link_for(db, caller, link_id, change=True, lock=True)
        if link.revoked_at is None:
            link.revoked_at = datetime.now(UTC)
            record(db, caller, "link.revoked", Target("link", str(link.id)),
                   {"file_id": str(link.file_id)})


@dataclass(frozen=True)
class Download:
    tenant_id: uuid.UUID
    link_id: uuid.UUID
    bucket_id: uuid.UUID | None
    bucket: str
    object_key: str
    filename: str
    content_type: str
    size: int | None


def resolve(token: str) -> Download:
    """The object behind a live token: unknown or revoked → 404, expired → 410."""
    digest = secrets_gen.digest(token)
    with system_session() as db:
        owner = db.execute(select(ShareLink.tenant_id, ShareLink.id)
                           .where(ShareLink.token_hash == digest)).first()
    if owner is None:
        raise NotFound("link")
    with tenant_session(owner.tenant_id) as db:
        link = db.get(ShareLink, owner.id)
        if link is None or link.revoked_at is not None:
            raise NotFound("link")
        if datetime.now(UTC) >= link.expires_at:
            raise Gone("link_expired", "This link has expired.")
        return Download(link.tenant_id, link.id, link.bucket_id, link.bucket, link.object_key,
                        link.filename, link.content_type, link.size)


def count_egress(download: Download, sent: int) -> None:
    """Add bytes served to the day's egress of the link's bucket (what billing reads)."""
    if download.bucket_id is None or sent <= 0:
        return
    storage.record_egress(download.tenant_id, download.bucket_id, sent)


@dataclass(frozen=True)
class Served:
    """An object being served through a link: what to call it, and its bytes. Iterating
    ``body`` counts what was sent as egress when it ends (also when it is cut short);
    ``close`` releases the storage connection (safe to call more than once)."""

    filename: str
    content_type: str
    size: int | None
    body: Iterator[bytes]
    close: Callable[[], None]


def download(token: str) -> Served:
    """Open the object behind a live token (unknown or revoked: 404, expired: 410). It is
    opened and its first chunk read before anything is answered, so storage that is down is
    a DependencyUnavailable here and an object the link outlived is a 404."""
    found = resolve(token)
    store = ObjectStore.from_settings(get_settings())
    try:
        chunks = store.open_stream(found.bucket, found.object_key)
        first = next(chunks, b"")
    except ObjectNotFound:  # the link outlived its object: as if it never existed
        raise NotFound("link") from None
    close: Callable[[], None] = getattr(chunks, "close", lambda: None)

    def counted() -> Iterator[bytes]:
        sent = 0
        try:
            if first:
                sent += len(first)
                yield first
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
        except DependencyUnavailable:
            # The answer has started: re-raising makes the server drop the connection, so
            # the client sees a truncated body, not a short "complete" one. No URL is logged.
            log.warning("share-link download cut short: storage failed mid-stream")
            raise
        finally:
            close()
            count_egress(found, sent)  # what was actually served, even if cut short

    return Served(found.filename, found.content_type, found.size, counted(), close)
