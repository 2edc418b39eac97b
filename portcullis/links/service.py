"""Create share links and resolve a token to the object it names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from config import get_settings
from portcullis import secrets_gen
from portcullis.accounts.caller import Caller
from portcullis.audit.service import Target
from portcullis.db import system_session, tenant_session
from portcullis.errors import Gone, NotFound
from portcullis.links.models import ShareLink
from portcullis.storage.models import EgressDaily


@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    url: str


def create(db: Session, tenant_id: uuid.UUID, *, kind: str, bucket: str, object_key: str,
           filename: str, content_type: str, size: int | None, expires_in: timedelta,
           created_by_user_id: uuid.UUID | None = None, file_id: uuid.UUID | None = None,
           bucket_id: uuid.UUID | None = None) -> NewLink:
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


def create_for_file(caller: Caller, file_id: uuid.UUID, expires_in: int) -> NewLink:
    from portcullis.storage.events import record
    from portcullis.storage.files import file_for

    settings = get_settings()
    with tenant_session(caller.tenant_id) as db:
        file = file_for(db, caller, file_id, "read")
        new = create(db, caller.tenant_id, kind="file", bucket=settings.S3_BUCKET,
                     object_key=file.storage_key, filename=file.filename,
                     content_type=file.content_type, size=file.size,
                     expires_in=timedelta(seconds=expires_in),
                     created_by_user_id=caller.user_id, file_id=file.id,
                     bucket_id=file.bucket_id)
        record(db, caller.tenant_id, "link.created", caller.actor, caller.origin,
               Target("link", str(new.link.id)),
               {"file_id": str(file.id), "expires_at": new.link.expires_at.isoformat()})
        return new


def revoke(caller: Caller, link_id: uuid.UUID) -> None:
    """The link's creator or an admin; a reader of its bucket gets 403, anyone else 404."""
    from portcullis.storage.access import link_for
    from portcullis.storage.events import record

    with tenant_session(caller.tenant_id) as db:
        link = link_for(db, caller, link_id, change=True, lock=True)
        if link.revoked_at is None:
            link.revoked_at = datetime.now(UTC)
            record(db, caller.tenant_id, "link.revoked", caller.actor, caller.origin,
                   Target("link", str(link.id)), {"file_id": str(link.file_id)})


def count_egress(download: Download, sent: int) -> None:
    """Add bytes served to the day's egress of the link's bucket (what billing reads)."""
    if download.bucket_id is None or sent <= 0:
        return
    with tenant_session(download.tenant_id) as db:
        db.execute(insert(EgressDaily).values(
            tenant_id=download.tenant_id, bucket_id=download.bucket_id,
            day=datetime.now(UTC).date(), bytes=sent)
            .on_conflict_do_update(constraint="uq_egress_daily_bucket_day",
                                   set_={"bytes": EgressDaily.bytes + sent}))
