"""A link names an object by a token digest; the URL never shows bucket, key or file id."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, created_at, uuid_pk


class ShareLink(Base):
    __tablename__ = "share_links"
    __table_args__ = (
        CheckConstraint("downloads >= 0 AND (max_downloads IS NULL"
                        " OR (max_downloads BETWEEN 1 AND 10000 AND downloads <= max_downloads))",
                        name="download_budget"),
        CheckConstraint("allowed_ips IS NULL OR cardinality(allowed_ips) BETWEEN 1 AND 20",
                        name="allowed_ips_count"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "export" now; "file" with the files area
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    bucket: Mapped[str] = mapped_column(String(63))
    object_key: Mapped[str] = mapped_column(String(1024))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    file_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    bucket_id: Mapped[uuid.UUID | None]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at()
    # Hardening (all optional): downloads started, counted by one conditional UPDATE; a
    # bcrypt hash of the password HTTP Basic must carry; the client addresses allowed
    # (normalised IPs and CIDRs).
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    password_hash: Mapped[str | None] = mapped_column(String(72))
    allowed_ips: Mapped[list[str] | None] = mapped_column(ARRAY(String(43)))
