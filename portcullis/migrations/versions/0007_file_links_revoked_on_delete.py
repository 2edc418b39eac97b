"""Deleting a file revokes its share links, in the database

Links name files; files know nothing of links. The rule that a deleted file's live links
stop working (they answer 404, as revoked ones do) was code in the files domain writing the
links table; it is now a trigger on ``files``, so it holds whoever deletes a file (a member,
the lifecycle sweep) in the same transaction. It runs with the deleting role's rights and
its tenant scope, so row-level security still confines it to that tenant's links.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION portcullis_revoke_file_links() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE share_links SET revoked_at = now()
             WHERE tenant_id = OLD.tenant_id AND file_id = OLD.id AND revoked_at IS NULL;
            RETURN OLD;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER files_revoke_links AFTER DELETE ON files
        FOR EACH ROW EXECUTE FUNCTION portcullis_revoke_file_links()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS files_revoke_links ON files")
    op.execute("DROP FUNCTION IF EXISTS portcullis_revoke_file_links()")
