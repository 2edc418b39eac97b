"""SFTP drop boxes: uploads taken in from an account's prefix, once per object version;
what SFTPGo was last told about each account

An upload that came over SFTP names its account (the uploader) and the object version it
was made from: the drop-box key (its ``quarantine_key``, which may be as long as an S3
key), ETag and last-modified time, unique together, so two sweeps, a retry or a rerun can
never take one version in twice. The account must be of the upload's tenant (a composite
foreign key). ``sftpgo_enabled`` is the ``status`` last set in SFTPGo, which the status
sweep compares with the tenant's. A deleted account lets go of its bucket, so the bucket
can be deleted while the username stays reserved.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sftp_accounts", sa.Column("sftpgo_enabled", sa.Boolean(), nullable=True))
    op.alter_column("sftp_accounts", "bucket_id", existing_type=sa.UUID(), nullable=True)
    op.create_unique_constraint(op.f("uq_sftp_accounts_id_tenant"), "sftp_accounts",
                                ["id", "tenant_id"])
    op.create_check_constraint(
        op.f("ck_sftp_accounts_bucket"), "sftp_accounts",
        "bucket_id IS NOT NULL OR status = 'deleted'")

    op.alter_column("uploads", "quarantine_key", existing_type=sa.String(255),
                    type_=sa.String(1024))
    op.add_column("uploads", sa.Column("sftp_account_id", sa.UUID(), nullable=True))
    op.add_column("uploads", sa.Column("source_etag", sa.String(128), nullable=True))
    op.add_column("uploads", sa.Column("source_modified", sa.DateTime(timezone=True),
                                       nullable=True))
    op.create_foreign_key(op.f("fk_uploads_sftp_account_tenant"), "uploads", "sftp_accounts",
                          ["sftp_account_id", "tenant_id"], ["id", "tenant_id"])
    op.create_unique_constraint(op.f("uq_uploads_dropped_version"), "uploads",
                                ["quarantine_key", "source_etag", "source_modified"])
    op.create_check_constraint(
        op.f("ck_uploads_dropped"), "uploads",
        "(sftp_account_id IS NULL) = (source_etag IS NULL)"
        " AND (source_etag IS NULL) = (source_modified IS NULL)"
        " AND (sftp_account_id IS NULL OR uploader_user_id IS NULL)")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_uploads_dropped"), "uploads", type_="check")
    op.drop_constraint(op.f("uq_uploads_dropped_version"), "uploads", type_="unique")
    op.drop_constraint(op.f("fk_uploads_sftp_account_tenant"), "uploads", type_="foreignkey")
    op.drop_column("uploads", "source_modified")
    op.drop_column("uploads", "source_etag")
    op.drop_column("uploads", "sftp_account_id")
    op.alter_column("uploads", "quarantine_key", existing_type=sa.String(1024),
                    type_=sa.String(255))
    op.drop_constraint(op.f("ck_sftp_accounts_bucket"), "sftp_accounts", type_="check")
    op.drop_constraint(op.f("uq_sftp_accounts_id_tenant"), "sftp_accounts", type_="unique")
    op.alter_column("sftp_accounts", "bucket_id", existing_type=sa.UUID(), nullable=False)
    op.drop_column("sftp_accounts", "sftpgo_enabled")
