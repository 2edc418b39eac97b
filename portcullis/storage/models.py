"""Buckets and what lives in them. Nothing becomes a File until its upload is scanned clean."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, created_at, utcnow, uuid_pk


class Bucket(Base):
    __tablename__ = "buckets"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_buckets_tenant_name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    expire_after_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at()


class BucketPermission(Base):
    __tablename__ = "bucket_permissions"
    __table_args__ = (
        UniqueConstraint("bucket_id", "membership_id", name="uq_bucket_permissions_member"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    bucket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buckets.id", ondelete="CASCADE"))
    membership_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memberships.id"), index=True)
    can_read: Mapped[bool] = mapped_column(Boolean, default=False)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    can_delete: Mapped[bool] = mapped_column(Boolean, default=False)


class UploadStatus(StrEnum):
    pending = "pending"
    scanning = "scanning"
    clean = "clean"
    rejected = "rejected"
    infected = "infected"


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (
        # One upload per drop-box object version, however often it is listed.
        UniqueConstraint("quarantine_key", "source_etag", "source_modified",
                         name="uq_uploads_dropped_version"),
        ForeignKeyConstraint(["sftp_account_id", "tenant_id"],
                             ["sftp_accounts.id", "sftp_accounts.tenant_id"],
                             name="fk_uploads_sftp_account_tenant"),
        CheckConstraint("(sftp_account_id IS NULL) = (source_etag IS NULL)"
                        " AND (source_etag IS NULL) = (source_modified IS NULL)"
                        " AND (sftp_account_id IS NULL OR uploader_user_id IS NULL)",
                        name="dropped"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    bucket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buckets.id"), index=True)
    uploader_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    sftp_account_id: Mapped[uuid.UUID | None]  # the uploader, for a drop-box upload
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id"))
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.pending)
    reason: Mapped[str | None] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    declared_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    # API uploads: a random key; SFTP: the drop-box object's key (read and removed in place).
    quarantine_key: Mapped[str] = mapped_column(String(1024))
    source_etag: Mapped[str | None] = mapped_column(String(128))  # the drop-box version
    source_modified: Mapped[datetime | None]
    file_key: Mapped[str | None] = mapped_column(String(255))  # chosen once, reused on retry
    sniffed_type: Mapped[str | None] = mapped_column(String(127))
    sha256: Mapped[str | None] = mapped_column(String(64))
    file_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = created_at()
    finished_at: Mapped[datetime | None]


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_bucket_created", "bucket_id", "created_at", "id"),
        # The rescan's two questions: which signature version, and how long ago.
        Index("ix_files_signature_version_scanned", "signature_version", "scanned_at"),
        Index("ix_files_scanned_at", "scanned_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    bucket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buckets.id"))
    upload_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("uploads.id"), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()
    # The last scan: when, and under which clamd signature version (None: from before
    # versions were recorded, older than any).
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    signature_version: Mapped[int | None] = mapped_column(BigInteger)


class QuarantinedFile(Base):
    """A file a rescan found infected: taken out of its bucket (the file row is gone, so
    nothing lists, serves or bills it), its object kept in the quarantine bucket.

    Kept, never deleted by the application (no DELETE grant); no foreign key on the bucket
    or upload, so the record outlives them. ``source_removed_at`` is set once the object is
    gone from the files bucket (a later run finishes a move a crash interrupted).
    """

    __tablename__ = "quarantined_files"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the file's id
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    bucket_id: Mapped[uuid.UUID]
    upload_id: Mapped[uuid.UUID]
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    malware_name: Mapped[str] = mapped_column(String(255))
    signature_version: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(255))  # where it was, in the files bucket
    quarantine_key: Mapped[str] = mapped_column(String(255))  # where it is, in quarantine
    quarantined_at: Mapped[datetime] = created_at()
    source_removed_at: Mapped[datetime | None]


class EgressDaily(Base):
    """Bytes served through share links, per tenant, bucket and day (billing reads this).

    No foreign key on the bucket: the history outlives a deleted bucket.
    """

    __tablename__ = "egress_daily"
    __table_args__ = (
        UniqueConstraint("tenant_id", "bucket_id", "day", name="uq_egress_daily_bucket_day"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    bucket_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
