"""Billing: profiles, daily usage, invoices kept immutable by the database, payments;
SFTP accounts' table (billing counts them); why a tenant is suspended

Invoices, their lines and payments are written by the system role only (billing runs,
operators' payments) and read by the app role in its tenant. A trigger refuses any change to
an issued invoice but API.md's status transitions and the payment columns, and any DELETE or
TRUNCATE of invoices, lines or payments, whoever asks, the owner included; column grants
keep even the system role from updating what defines an invoice.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE
from portcullis.migrations import security

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The SQLSTATE of every refusal (a user-defined class): the service maps it to 409.
ERRCODE = "PB001"
# What defines an issued invoice; only MUTABLE may change, and only as the trigger allows.
DEFINING = (
    "id",
    "tenant_id",
    "number",
    "period",
    "currency",
    "total_cents",
    "issued_at",
    "due_at",
    "usage",
    "prices",
    "billed_to",
    "issued_xact",
)
XACT = "(pg_current_xact_id()::text)::bigint"
MUTABLE = ("status", "paid_cents", "paid_at", "voided_at", "void_reason")


def upgrade() -> None:
    op.create_table(
        "billing_runs",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column(
            "finished_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("invoices", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_billing_runs")),
    )
    op.create_table(
        "invoice_counters",
        sa.Column("year", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "billing_profiles",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("tax_id_type", sa.String(length=8), nullable=False),
        sa.Column("tax_id", sa.String(length=14), nullable=True),
        sa.Column("address", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billing_profiles_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_billing_profiles")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("usage", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prices", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("billed_to", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("issued_xact", sa.BigInteger(), server_default=sa.text(XACT), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invoices_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("tenant_id", "period", name="uq_invoices_tenant_period"),
        sa.UniqueConstraint("id", "tenant_id", name="uq_invoices_id_tenant"),
        sa.CheckConstraint(
            "status IN ('open', 'paid', 'overdue', 'void')", name=op.f("ck_invoices_status_known")
        ),
        sa.CheckConstraint(
            "total_cents >= 0 AND paid_cents >= 0 AND paid_cents <= total_cents",
            name=op.f("ck_invoices_paid_within_total"),
        ),
    )
    op.create_index(
        "ix_invoices_tenant_issued", "invoices", ["tenant_id", "issued_at", "id"], unique=False
    )
    op.create_index(
        "ix_invoices_unsettled_due",
        "invoices",
        ["due_at"],
        unique=False,
        postgresql_where="status IN ('open', 'overdue')",
    )
    op.create_table(
        "storage_usage_daily",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("objects", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_storage_usage_daily_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_usage_daily")),
        sa.UniqueConstraint("bucket_id", "day", name="uq_storage_usage_daily_bucket_day"),
    )
    op.create_index(
        "ix_storage_usage_daily_tenant_day",
        "storage_usage_daily",
        ["tenant_id", "day"],
        unique=False,
    )
    op.create_table(
        "tenant_usage_daily",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sftp_accounts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_usage_daily_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_usage_daily")),
        sa.UniqueConstraint("tenant_id", "day", name="uq_tenant_usage_daily_tenant_day"),
    )
    op.create_index("ix_tenant_usage_daily_day", "tenant_usage_daily", ["day"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("item", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=28, scale=9), nullable=False),
        sa.Column("unit_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id", "tenant_id"],
            ["invoices.id", "invoices.tenant_id"],
            name="fk_invoice_lines_invoice_tenant",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invoice_lines_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_position"),
    )
    op.create_table(
        "invoice_payments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id", "tenant_id"],
            ["invoices.id", "invoices.tenant_id"],
            name="fk_invoice_payments_invoice_tenant",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invoice_payments_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_payments")),
        sa.UniqueConstraint("invoice_id", "reference", name="uq_invoice_payments_reference"),
    )
    op.create_index(
        op.f("ix_invoice_payments_tenant_id"), "invoice_payments", ["tenant_id"], unique=False
    )
    op.create_table(
        "sftp_accounts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("bucket_id", sa.UUID(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("key_prefix", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name=op.f("fk_sftp_accounts_bucket_id_buckets")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sftp_accounts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sftp_accounts")),
        sa.UniqueConstraint("key_prefix", name=op.f("uq_sftp_accounts_key_prefix")),
        sa.UniqueConstraint("username", name=op.f("uq_sftp_accounts_username")),
    )
    op.create_index(
        op.f("ix_sftp_accounts_bucket_id"), "sftp_accounts", ["bucket_id"], unique=False
    )
    op.create_index(
        op.f("ix_sftp_accounts_tenant_id"), "sftp_accounts", ["tenant_id"], unique=False
    )
    op.add_column("tenants", sa.Column("suspended_by", sa.String(length=16), nullable=True))
    # Tenants are under FORCE row-level security: a non-superuser owner sees their rows only
    # as the system role.
    op.execute(f"SET LOCAL ROLE {SYSTEM_ROLE}")
    op.execute("UPDATE tenants SET suspended_by = 'operator' WHERE status = 'suspended'")
    op.execute("RESET ROLE")
    # A tenant's own scope cannot lift its suspension (the app role may lock its row and
    # keep its name; status changes run as the system role) nor erase billed egress.
    op.execute(f"REVOKE UPDATE ON tenants FROM {APP_ROLE}")
    op.execute(f"GRANT UPDATE (name) ON tenants TO {APP_ROLE}")
    op.execute(f"REVOKE DELETE ON egress_daily FROM {APP_ROLE}")

    security.tenant_rls("billing_profiles")
    security.tenant_rls("sftp_accounts")
    for table in ("storage_usage_daily", "tenant_usage_daily"):
        security.tenant_rls(table, privileges="SELECT")
        op.execute(f"GRANT INSERT, UPDATE ON {table} TO {SYSTEM_ROLE}")
    for table in ("invoices", "invoice_lines", "invoice_payments"):
        security.tenant_rls(table, privileges="SELECT")
        op.execute(f"GRANT INSERT ON {table} TO {SYSTEM_ROLE}")
    op.execute(f"GRANT UPDATE ({', '.join(MUTABLE)}) ON invoices TO {SYSTEM_ROLE}")
    for table in ("invoice_counters", "billing_runs"):
        op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {SYSTEM_ROLE}")

    op.execute(f"""
        CREATE FUNCTION portcullis_invoice_immutable() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' THEN
                RAISE EXCEPTION 'issued invoices are never deleted' USING ERRCODE = '{ERRCODE}';
            END IF;
            IF ({", ".join(f"NEW.{c}" for c in DEFINING)})
                    IS DISTINCT FROM ({", ".join(f"OLD.{c}" for c in DEFINING)}) THEN
                RAISE EXCEPTION 'an issued invoice never changes' USING ERRCODE = '{ERRCODE}';
            END IF;
            IF NEW.status IS DISTINCT FROM OLD.status AND (OLD.status, NEW.status) NOT IN
                    (('open', 'paid'), ('open', 'overdue'), ('open', 'void'),
                     ('overdue', 'paid'), ('overdue', 'void')) THEN
                RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.number, OLD.status,
                    NEW.status USING ERRCODE = '{ERRCODE}';
            END IF;
            IF OLD.status IN ('paid', 'void') AND (NEW.*) IS DISTINCT FROM (OLD.*) THEN
                RAISE EXCEPTION 'invoice % is settled', OLD.number USING ERRCODE = '{ERRCODE}';
            END IF;
            IF NEW.paid_cents < OLD.paid_cents OR NEW.paid_cents > NEW.total_cents
                    OR (NEW.status = 'paid') <> (NEW.paid_cents = NEW.total_cents
                                                 AND NEW.status <> 'void')
                    OR (NEW.paid_at IS NOT NULL) <> (NEW.status = 'paid') THEN
                RAISE EXCEPTION 'invoice % payments do not add up', OLD.number
                    USING ERRCODE = '{ERRCODE}';
            END IF;
            IF (NEW.voided_at IS NOT NULL OR NEW.void_reason IS NOT NULL)
                    <> (NEW.status = 'void') THEN
                RAISE EXCEPTION 'invoice % void without its status', OLD.number
                    USING ERRCODE = '{ERRCODE}';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION portcullis_billing_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows never change', TG_TABLE_NAME USING ERRCODE = '{ERRCODE}';
        END $$""")
    op.execute("""
        CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
        FOR EACH ROW EXECUTE FUNCTION portcullis_invoice_immutable()""")
    # Lines are written only in the transaction that issues their invoice, which the
    # database records itself (an UPDATE gives the row a new xmin; issued_xact never changes).
    op.execute(f"""
        CREATE FUNCTION portcullis_invoice_issued_xact() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.issued_xact := {XACT};
            RETURN NEW;
        END $$""")
    op.execute("""
        CREATE TRIGGER invoices_issued_xact BEFORE INSERT ON invoices
        FOR EACH ROW EXECUTE FUNCTION portcullis_invoice_issued_xact()""")
    op.execute(f"""
        CREATE FUNCTION portcullis_invoice_line_at_issue() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT FROM invoices WHERE id = NEW.invoice_id
                           AND issued_xact = {XACT}) THEN
                RAISE EXCEPTION 'an issued invoice takes no new line' USING ERRCODE = '{ERRCODE}';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("""
        CREATE TRIGGER invoice_lines_at_issue BEFORE INSERT ON invoice_lines
        FOR EACH ROW EXECUTE FUNCTION portcullis_invoice_line_at_issue()""")
    # What an invoice says is paid is what its payments add up to, checked at commit.
    op.execute(f"""
        CREATE FUNCTION portcullis_invoice_paid_matches() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            invoice uuid;
        BEGIN
            IF TG_TABLE_NAME = 'invoices' THEN
                invoice := NEW.id;
            ELSE
                invoice := NEW.invoice_id;
            END IF;
            IF (SELECT paid_cents FROM invoices WHERE id = invoice) IS DISTINCT FROM
               (SELECT coalesce(sum(amount_cents), 0) FROM invoice_payments
                 WHERE invoice_id = invoice) THEN
                RAISE EXCEPTION 'invoice payments do not add up to paid_cents'
                    USING ERRCODE = '{ERRCODE}';
            END IF;
            RETURN NULL;
        END $$""")  # noqa: S608 - constants only
    for table in ("invoices", "invoice_payments"):
        op.execute(f"""
            CREATE CONSTRAINT TRIGGER {table}_paid_matches AFTER INSERT OR UPDATE ON {table}
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION portcullis_invoice_paid_matches()""")
    for table in ("invoices", "invoice_lines", "invoice_payments"):
        if table != "invoices":
            op.execute(f"""
                CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION portcullis_billing_append_only()""")
        op.execute(f"""
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION portcullis_billing_append_only()""")


def downgrade() -> None:
    for table in ("invoices", "invoice_lines", "invoice_payments"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP TRIGGER IF EXISTS invoices_immutable ON invoices")
    op.execute("DROP TRIGGER IF EXISTS invoice_lines_at_issue ON invoice_lines")
    op.execute("DROP TRIGGER IF EXISTS invoices_issued_xact ON invoices")
    op.execute("DROP FUNCTION IF EXISTS portcullis_invoice_issued_xact()")
    for table in ("invoices", "invoice_payments"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_paid_matches ON {table}")
    op.execute("DROP FUNCTION IF EXISTS portcullis_invoice_paid_matches()")
    op.execute("DROP FUNCTION IF EXISTS portcullis_invoice_line_at_issue()")
    op.execute(f"GRANT DELETE ON egress_daily TO {APP_ROLE}")
    op.execute(f"GRANT UPDATE ON tenants TO {APP_ROLE}")
    op.execute("DROP FUNCTION IF EXISTS portcullis_billing_append_only()")
    op.execute("DROP FUNCTION IF EXISTS portcullis_invoice_immutable()")
    op.drop_column("tenants", "suspended_by")
    op.drop_index(op.f("ix_sftp_accounts_tenant_id"), table_name="sftp_accounts")
    op.drop_index(op.f("ix_sftp_accounts_bucket_id"), table_name="sftp_accounts")
    op.drop_table("sftp_accounts")
    op.drop_index(op.f("ix_invoice_payments_tenant_id"), table_name="invoice_payments")
    op.drop_table("invoice_payments")
    op.drop_table("invoice_lines")
    op.drop_index("ix_tenant_usage_daily_day", table_name="tenant_usage_daily")
    op.drop_table("tenant_usage_daily")
    op.drop_index("ix_storage_usage_daily_tenant_day", table_name="storage_usage_daily")
    op.drop_table("storage_usage_daily")
    op.drop_index(
        "ix_invoices_unsettled_due",
        table_name="invoices",
        postgresql_where="status IN ('open', 'overdue')",
    )
    op.drop_index("ix_invoices_tenant_issued", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("billing_profiles")
    op.drop_table("invoice_counters")
    op.drop_table("billing_runs")
