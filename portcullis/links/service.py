"""Create share links and resolve a token to the object it names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import get_settings
from portcullis import secrets_gen
from portcullis.db import system_session, tenant_session
from portcullis.errors import Gone, NotFound
from portcullis.links.models import ShareLink


@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    url: str


def create(db: Session, tenant_id: uuid.UUID, *, kind: str, bucket: str, object_key: str,
           filename: str, content_type: str, size: int | None, expires_in: timedelta,
           created_by_user_id: uuid.UUID | None = None) -> NewLink:
    token = secrets_gen.new_token()
    link = ShareLink(tenant_id=tenant_id, kind=kind, token_hash=secrets_gen.digest(token),
                     bucket=bucket, object_key=object_key, filename=filename,
                     content_type=content_type, size=size,
                     created_by_user_id=created_by_user_id,
                     expires_at=datetime.now(UTC) + expires_in)
    db.add(link)
    db.flush()
    return NewLink(link, f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/s/{token}")


@dataclass(frozen=True)
class Download:
    tenant_id: uuid.UUID
    link_id: uuid.UUID
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
        return Download(link.tenant_id, link.id, link.bucket, link.object_key, link.filename,
                        link.content_type, link.size)
