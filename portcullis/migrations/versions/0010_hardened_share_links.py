"""Hardened share links: a download budget, a password, allowed addresses

``downloads`` counts the downloads a link has started; with ``max_downloads`` the count is
taken by one conditional UPDATE (``downloads < max_downloads``), and the check keeps the
table itself from ever holding more. ``password_hash`` is a bcrypt hash (never the
password); ``allowed_ips`` holds normalised IPs and CIDRs. The table already has its
row-level security policy (0003), which covers the new columns.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("share_links", sa.Column("max_downloads", sa.Integer(), nullable=True))
    op.add_column("share_links", sa.Column("downloads", sa.Integer(), server_default="0",
                                           nullable=False))
    op.add_column("share_links", sa.Column("password_hash", sa.String(length=72),
                                           nullable=True))
    op.add_column("share_links", sa.Column("allowed_ips",
                                           postgresql.ARRAY(sa.String(length=43)),
                                           nullable=True))
    op.create_check_constraint(
        op.f("ck_share_links_download_budget"), "share_links",
        "downloads >= 0 AND (max_downloads IS NULL"
        " OR (max_downloads BETWEEN 1 AND 10000 AND downloads <= max_downloads))")
    op.create_check_constraint(
        op.f("ck_share_links_allowed_ips_count"), "share_links",
        "allowed_ips IS NULL OR cardinality(allowed_ips) BETWEEN 1 AND 20")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_share_links_allowed_ips_count"), "share_links", type_="check")
    op.drop_constraint(op.f("ck_share_links_download_budget"), "share_links", type_="check")
    op.drop_column("share_links", "allowed_ips")
    op.drop_column("share_links", "password_hash")
    op.drop_column("share_links", "downloads")
    op.drop_column("share_links", "max_downloads")
