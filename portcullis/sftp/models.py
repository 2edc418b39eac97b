"""An SFTP account: a tenant's SFTPGo user, jailed to a key prefix, feeding one bucket."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, created_at, uuid_pk


class SftpAccountStatus(StrEnum):
    provisioning = "provisioning"
    active = "active"
    failed = "failed"
    deleting = "deleting"
    deleted = "deleted"  # kept, so the username is never given again; not listed


class SftpAccount(Base):
    __tablename__ = "sftp_accounts"
    __table_args__ = (
        UniqueConstraint("id", "tenant_id", name="uq_sftp_accounts_id_tenant"),
        CheckConstraint("bucket_id IS NOT NULL OR status = 'deleted'", name="bucket"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    # None once deleted: the bucket may go, the username stays reserved.
    bucket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("buckets.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=SftpAccountStatus.provisioning)
    created_at: Mapped[datetime] = created_at()
    # The ``status`` last set in SFTPGo (True 1, False 0); None before it has a user.
    sftpgo_enabled: Mapped[bool | None] = mapped_column(Boolean)
