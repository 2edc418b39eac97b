"""The tenant scope function is parallel safe

``portcullis_current_tenant()`` only reads a setting, and parallel workers inherit the
leader's settings (the transaction's tenant included) and its role. Marked PARALLEL
UNSAFE (the default), it kept every query on a tenant table, whose row-level security
policy calls it, on one core: a year's audit export ran in one backend.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER FUNCTION portcullis_current_tenant() PARALLEL SAFE")


def downgrade() -> None:
    op.execute("ALTER FUNCTION portcullis_current_tenant() PARALLEL UNSAFE")
