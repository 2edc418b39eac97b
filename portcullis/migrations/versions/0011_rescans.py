"""Rescans: when and under which signature version each file was last scanned; quarantine

Each file records its last scan's time and clamd's signature version. Existing files were
scanned just before their upload's clean verdict, so ``scanned_at`` is that verdict's time
(the file's creation where an upload has none); their version was never recorded (NULL),
which the rescan takes for older than any, so they are scanned again first.

``quarantined_files`` keeps what a rescan took out: the file's details, the signature and
where its object now lies in the quarantine bucket. Tenant row-level security as its
neighbours; the roles insert and read, update only ``source_removed_at`` and never delete.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE
from portcullis.migrations import security

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("scanned_at", sa.DateTime(timezone=True),
                                     server_default=sa.text("now()"), nullable=True))
    op.add_column("files", sa.Column("signature_version", sa.BigInteger(), nullable=True))
    # Row-level security is forced on files: the backfill runs as the system role.
    op.execute(f"SET LOCAL ROLE {SYSTEM_ROLE}")
    op.execute("""
        UPDATE files SET scanned_at = coalesce(uploads.finished_at, files.created_at)
          FROM uploads WHERE uploads.id = files.upload_id""")
    op.execute("RESET ROLE")
    op.alter_column("files", "scanned_at", existing_type=sa.DateTime(timezone=True),
                    nullable=False)
    op.create_index("ix_files_signature_version_scanned", "files",
                    ["signature_version", "scanned_at"], unique=False)
    op.create_index("ix_files_scanned_at", "files", ["scanned_at"], unique=False)

    op.create_table(
        "quarantined_files",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("upload_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("malware_name", sa.String(length=255), nullable=False),
        sa.Column("signature_version", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("quarantine_key", sa.String(length=255), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True),
                  server_default=sa.text("now()"), nullable=False),
        sa.Column("source_removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_quarantined_files_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_files")),
    )
    op.create_index(op.f("ix_quarantined_files_tenant_id"), "quarantined_files",
                    ["tenant_id"], unique=False)
    security.tenant_rls("quarantined_files", privileges="SELECT, INSERT")
    op.execute(f"GRANT UPDATE (source_removed_at) ON quarantined_files "
               f"TO {APP_ROLE}, {SYSTEM_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f("ix_quarantined_files_tenant_id"), table_name="quarantined_files")
    op.drop_table("quarantined_files")
    op.drop_index("ix_files_scanned_at", table_name="files")
    op.drop_index("ix_files_signature_version_scanned", table_name="files")
    op.drop_column("files", "signature_version")
    op.drop_column("files", "scanned_at")
