"""Buckets, permissions, uploads, files, daily egress; file share links

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from portcullis.migrations import security

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "buckets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("expire_after_days", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_buckets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buckets")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_buckets_tenant_name"),
    )
    op.create_index(op.f("ix_buckets_tenant_id"), "buckets", ["tenant_id"], unique=False)
    op.create_table(
        "egress_daily",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_egress_daily_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_egress_daily")),
        sa.UniqueConstraint("tenant_id", "bucket_id", "day", name="uq_egress_daily_bucket_day"),
    )
    op.create_index(op.f("ix_egress_daily_tenant_id"), "egress_daily", ["tenant_id"], unique=False)
    op.create_table(
        "bucket_permissions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("membership_id", sa.UUID(), nullable=False),
        sa.Column("can_read", sa.Boolean(), nullable=False),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.Column("can_delete", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bucket_id"],
            ["buckets.id"],
            name=op.f("fk_bucket_permissions_bucket_id_buckets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_bucket_permissions_membership_id_memberships"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bucket_permissions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bucket_permissions")),
        sa.UniqueConstraint("bucket_id", "membership_id", name="uq_bucket_permissions_member"),
    )
    op.create_index(
        op.f("ix_bucket_permissions_membership_id"),
        "bucket_permissions",
        ["membership_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_bucket_permissions_tenant_id"), "bucket_permissions", ["tenant_id"], unique=False
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("uploader_user_id", sa.UUID(), nullable=True),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("declared_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("quarantine_key", sa.String(length=255), nullable=False),
        sa.Column("file_key", sa.String(length=255), nullable=True),
        sa.Column("sniffed_type", sa.String(length=127), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name=op.f("fk_uploads_bucket_id_buckets")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_uploads_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_uploads_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["uploader_user_id"], ["users.id"], name=op.f("fk_uploads_uploader_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    op.create_index(op.f("ix_uploads_bucket_id"), "uploads", ["bucket_id"], unique=False)
    op.create_index(op.f("ix_uploads_tenant_id"), "uploads", ["tenant_id"], unique=False)
    op.create_table(
        "files",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("upload_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name=op.f("fk_files_bucket_id_buckets")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_files_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_files_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("upload_id", name=op.f("uq_files_upload_id")),
    )
    op.create_index(
        "ix_files_bucket_created", "files", ["bucket_id", "created_at", "id"], unique=False
    )
    op.create_index(op.f("ix_files_tenant_id"), "files", ["tenant_id"], unique=False)
    op.add_column("share_links", sa.Column("file_id", sa.UUID(), nullable=True))
    op.add_column("share_links", sa.Column("bucket_id", sa.UUID(), nullable=True))
    op.create_index(op.f("ix_share_links_file_id"), "share_links", ["file_id"], unique=False)

    for table in ("buckets", "bucket_permissions", "uploads", "files", "egress_daily"):
        security.tenant_rls(table)


def downgrade() -> None:
    op.drop_index(op.f("ix_share_links_file_id"), table_name="share_links")
    op.drop_column("share_links", "bucket_id")
    op.drop_column("share_links", "file_id")
    op.drop_index(op.f("ix_files_tenant_id"), table_name="files")
    op.drop_index("ix_files_bucket_created", table_name="files")
    op.drop_table("files")
    op.drop_index(op.f("ix_uploads_tenant_id"), table_name="uploads")
    op.drop_index(op.f("ix_uploads_bucket_id"), table_name="uploads")
    op.drop_table("uploads")
    op.drop_index(op.f("ix_bucket_permissions_tenant_id"), table_name="bucket_permissions")
    op.drop_index(op.f("ix_bucket_permissions_membership_id"), table_name="bucket_permissions")
    op.drop_table("bucket_permissions")
    op.drop_index(op.f("ix_egress_daily_tenant_id"), table_name="egress_daily")
    op.drop_table("egress_daily")
    op.drop_index(op.f("ix_buckets_tenant_id"), table_name="buckets")
    op.drop_table("buckets")
