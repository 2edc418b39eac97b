"""SQL the migrations use to create roles, row-level security and the append-only audit table.

One place, so every tenant-owned table a later migration adds is locked the same way.
"""

from __future__ import annotations

from alembic import op

from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE, TENANT_SETTING


def create_roles() -> None:
    """Create the two NOLOGIN roles and let the migrating owner switch to them."""
    for role in (APP_ROLE, SYSTEM_ROLE):
        op.execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} NOLOGIN NOINHERIT NOBYPASSRLS;
                END IF;
            END $$""")
        op.execute(f"GRANT {role} TO CURRENT_USER")
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION portcullis_current_tenant() RETURNS uuid
        LANGUAGE sql STABLE AS
        $$ SELECT nullif(current_setting('{TENANT_SETTING}', true), '')::uuid $$""")
    op.execute("REVOKE ALL ON FUNCTION portcullis_current_tenant() FROM PUBLIC")
    op.execute(
        f"GRANT EXECUTE ON FUNCTION portcullis_current_tenant() TO {APP_ROLE}, {SYSTEM_ROLE}"
    )


def tenant_rls(table: str, column: str = "tenant_id",
               privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    """The app role sees only the transaction's tenant; the system role sees all.

    FORCE makes the owner subject too: a process that forgot to drop privileges sees nothing.
    Policies apply to every member of their role, and the owner is a member of both, so the
    system policy also checks that the system role is really the one acting.
    """
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"""
        CREATE POLICY {table}_tenant_isolation ON {table} TO {APP_ROLE}
        USING ({column} = portcullis_current_tenant())
        WITH CHECK ({column} = portcullis_current_tenant())""")
    op.execute(f"""
        CREATE POLICY {table}_system_access ON {table} TO {SYSTEM_ROLE}
        USING (current_user = '{SYSTEM_ROLE}') WITH CHECK (current_user = '{SYSTEM_ROLE}')""")
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}, {SYSTEM_ROLE}")


def append_only_audit(table: str) -> None:
    """INSERT and SELECT only, for every role the application uses; a trigger backs it up."""
    tenant_rls(table, privileges="SELECT, INSERT")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}, {SYSTEM_ROLE}")
    op.execute("""
        CREATE OR REPLACE FUNCTION portcullis_audit_append_only() RETURNS trigger
        LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$""")
    op.execute(f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION portcullis_audit_append_only()""")
    op.execute(f"""
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION portcullis_audit_append_only()""")
