"""Share links: create them, revoke them, resolve a token to the object it names.

Links name stored objects; they reach storage only through ``portcullis.storage.service``
(is the file readable, where are its bytes, count the egress). A deleted file's links are
revoked by the database (a trigger on ``files``).

A link may be hardened (API.md): ``max_downloads`` (each download that starts is counted by
one conditional UPDATE, so concurrent requests never exceed it), a password (HTTP Basic,
kept only as accounts' slow hash; wrong ones feed ``alert.link_password_failures``) and
``allowed_ips`` (any other client address is a 404, as an unknown link is). Every download
is audited ``link.downloaded`` with the client address; the token is never recorded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from config import get_settings
from portcullis import secrets_gen
from portcullis.accounts import service as accounts
from portcullis.alerts import service as alerts
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.clients.object_store import ObjectNotFound, ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.errors import DependencyUnavailable, Forbidden, Gone, NotFound, Unauthenticated
from portcullis.links import addresses
from portcullis.links.models import ShareLink
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.storage import service as storage

# Bytes relayed per write: large enough that a 25 MiB download is 25 round trips through
# Python, not 400; one such chunk per download in flight bounds the memory.
RELAY_CHUNK = 1024 * 1024

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    url: str


def create(db: Session, tenant_id: uuid.UUID, *, kind: str, bucket: str, object_key: str,
           filename: str, content_type: str, size: int | None, expires_in: timedelta,
           created_by_user_id: uuid.UUID | None = None, file_id: uuid.UUID | None = None,
           bucket_id: uuid.UUID | None = None, max_downloads: int | None = None,
           password_hash: str | None = None,
           allowed_ips: list[str] | None = None) -> NewLink:
    """A link to any stored object, in the caller's transaction (an export's, a file's)."""
    token = secrets_gen.new_token()
    link = ShareLink(tenant_id=tenant_id, kind=kind, token_hash=secrets_gen.digest(token),
                     bucket=bucket, object_key=object_key, filename=filename,
                     content_type=content_type, size=size,
                     created_by_user_id=created_by_user_id, file_id=file_id,
                     bucket_id=bucket_id, expires_at=datetime.now(UTC) + expires_in,
                     max_downloads=max_downloads, downloads=0, password_hash=password_hash,
                     allowed_ips=addresses.normalise_all(allowed_ips) if allowed_ips else None)
    db.add(link)
    db.flush()
    return NewLink(link, f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/s/{token}")


@dataclass(frozen=True)
class LinkView:
    """A file link as its readers may list it: never its token or URL."""

    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    max_downloads: int | None
    downloads: int
    password_protected: bool
    allowed_ips: list[str] | None
    created_by: uuid.UUID | None


def _view(link: ShareLink) -> LinkView:
    return LinkView(link.id, link.created_at, link.expires_at, link.revoked_at,
                    link.max_downloads, link.downloads, link.password_hash is not None,
                    link.allowed_ips, link.created_by_user_id)


@dataclass(frozen=True)
class CreatedLink:
    """A new file link: its URL and token are shown this once."""

    id: uuid.UUID
    url: str
    token: str
    expires_at: datetime
    max_downloads: int | None
    downloads: int
    password_protected: bool
    allowed_ips: list[str] | None


def _tenant(caller: Caller) -> uuid.UUID:
    if caller.tenant_id is None:
        raise NotFound("link")
    return caller.tenant_id


def create_for_file(caller: Caller, file_id: uuid.UUID, expires_in: int, *,
                    max_downloads: int | None = None, password: str | None = None,
                    allowed_ips: list[str] | None = None) -> CreatedLink:
    """Anyone who may read the file; audited ``link.created`` (whether it has a password,
    never the password)."""
    tenant_id = _tenant(caller)
    settings = get_settings()
    # Hashed before the transaction: the slow hash never holds a database connection.
    password_hash = accounts.hash_secret(password) if password is not None else None
    with tenant_session(tenant_id) as db:
        file = storage.readable_file(db, caller, file_id)
        new = create(db, tenant_id, kind="file", bucket=settings.S3_BUCKET,
                     object_key=file.storage_key, filename=file.filename,
                     content_type=file.content_type, size=file.size,
                     expires_in=timedelta(seconds=expires_in),
                     created_by_user_id=caller.user_id, file_id=file.id,
                     bucket_id=file.bucket_id, max_downloads=max_downloads,
                     password_hash=password_hash, allowed_ips=allowed_ips)
        link = new.link
        record(db, caller, "link.created", Target("link", str(link.id)),
               {"file_id": str(file.id), "expires_at": link.expires_at.isoformat(),
                "max_downloads": link.max_downloads,
                # "protected": a key naming a password would be scrubbed to [redacted]
                "protected": password_hash is not None, "allowed_ips": link.allowed_ips})
        return CreatedLink(link.id, new.url, new.url.rsplit("/", 1)[-1], link.expires_at,
                           link.max_downloads, link.downloads, password_hash is not None,
                           link.allowed_ips)


def list_for_file(caller: Caller, file_id: uuid.UUID, page: PageRequest) -> Page[LinkView]:
    """Every link of a file the caller may read (else 404), newest first."""
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        file = storage.readable_file(db, caller, file_id)
        stmt = select(ShareLink).where(ShareLink.tenant_id == tenant_id,
                                       ShareLink.file_id == file.id, ShareLink.kind == "file")
        found = keyset(db, stmt, [ShareLink.created_at, ShareLink.id], [datetime, uuid.UUID],
                       page)
        return found.map(_view)


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


class PasswordRequired(Unauthenticated):
    """401 with the link's HTTP Basic challenge: no password sent (``password_required``) or
    a wrong one (``invalid_credentials``, which the front door's limit counts)."""


@dataclass(frozen=True)
class Download:
    tenant_id: uuid.UUID
    link_id: uuid.UUID
    kind: str
    file_id: uuid.UUID | None
    bucket_id: uuid.UUID | None
    bucket: str
    object_key: str
    filename: str
    content_type: str
    size: int | None
    max_downloads: int | None
    password_hash: str | None = field(repr=False)  # a hash, yet kept out of any repr


def resolve(caller: Caller, token: str) -> Download:
    """The object behind a live token for this client: unknown, revoked or not for this
    client address → 404; expired or its downloads used up → 410 (checked again, atomically,
    when the download is counted)."""
    digest = secrets_gen.digest(token)
    # The token names its tenant, so its lookup reads across tenants (the system's role);
    # the row it finds is the whole answer, read in that one transaction.
    with system_session() as db:
        link = db.scalars(select(ShareLink).where(ShareLink.token_hash == digest)).first()
        if (link is None or link.revoked_at is not None
                or not addresses.allows(link.allowed_ips, caller.origin.ip)):
            raise NotFound("link")
        if datetime.now(UTC) >= link.expires_at:
            raise Gone("link_expired", "This link has expired.")
        if link.max_downloads is not None and link.downloads >= link.max_downloads:
            raise Gone("link_used_up", "This link's downloads are used up.")
        return Download(link.tenant_id, link.id, link.kind, link.file_id, link.bucket_id,
                        link.bucket, link.object_key, link.filename, link.content_type,
                        link.size, link.max_downloads, link.password_hash)


def _check_password(caller: Caller, found: Download, password: str | None) -> None:
    """The slow hash's check, outside any transaction; a wrong password counts toward the
    link's alert (any address)."""
    if found.password_hash is None:
        return
    if password is None:
        raise PasswordRequired("password_required", "This link needs its password.")
    if accounts.verify_secret(password, found.password_hash):
        return
    with tenant_session(found.tenant_id) as db:
        alerts.link_password_failed(db, found.tenant_id, found.link_id,
                                    caller.for_tenant(found.tenant_id))
    raise PasswordRequired("invalid_credentials", "Wrong password for this link.")


def _count(caller: Caller, found: Download) -> None:
    """Take one download from the link's budget and audit it, in one transaction. The
    UPDATE's own condition decides (PostgreSQL re-checks it on the row's latest version
    after any concurrent UPDATE commits), so at most ``max_downloads`` ever pass."""
    with tenant_session(found.tenant_id) as db:
        downloads = db.execute(
            update(ShareLink)
            .where(ShareLink.id == found.link_id, ShareLink.tenant_id == found.tenant_id,
                   ShareLink.revoked_at.is_(None), ShareLink.expires_at > datetime.now(UTC),
                   or_(ShareLink.max_downloads.is_(None),
                       ShareLink.downloads < ShareLink.max_downloads))
            .values(downloads=ShareLink.downloads + 1)
            .returning(ShareLink.downloads)
            .execution_options(synchronize_session=False)).scalar_one_or_none()
        if downloads is None:  # another request took the last one (or it just ended)
            raise Gone("link_used_up", "This link's downloads are used up.")
        record(db, caller.for_tenant(found.tenant_id), "link.downloaded",
               Target("link", str(found.link_id)),
               {"kind": found.kind, "file_id": str(found.file_id) if found.file_id else None,
                "downloads": downloads, "max_downloads": found.max_downloads})


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


def download(caller: Caller, token: str, password: str | None = None, *,
             count: bool = True) -> Served:
    """Open the object behind a live token for this client (see ``resolve``; a password
    link without the right password: ``PasswordRequired``). It is opened and its first
    chunk read before the download is counted and anything answered, so storage that is
    down is a DependencyUnavailable here (costing no download) and an object the link
    outlived is a 404. ``count`` False (a HEAD) checks everything but takes nothing from
    the budget and records nothing."""
    found = resolve(caller, token)
    _check_password(caller, found, password)
    store = ObjectStore.from_settings(get_settings())
    try:
        chunks = store.open_stream(found.bucket, found.object_key, chunk_size=RELAY_CHUNK)
        first = next(chunks, b"")
    except ObjectNotFound:  # the link outlived its object: as if it never existed
        raise NotFound("link") from None
    close: Callable[[], None] = getattr(chunks, "close", lambda: None)
    if count:
        try:
            _count(caller, found)
        except BaseException:
            close()
            raise

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
