"""Audit vocabulary columns hold code-defined identifiers only

Action, severity, actor type and target type are chosen by the code, never by a client.
The checks make that a property of the table: these columns can be written into JSON and
CSV exports without escaping, and never start a spreadsheet formula.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

IDENTIFIER = "'^[a-z][a-z0-9_.]*$'"
CHECKS = {
    "action_identifier": f"action ~ {IDENTIFIER}",
    "severity_known": "severity IN ('info', 'notice', 'warning', 'critical')",
    "actor_type_identifier": f"actor_type ~ {IDENTIFIER}",
    "target_type_identifier": f"target_type ~ {IDENTIFIER}",
}


def upgrade() -> None:
    # NOT VALID (new rows checked at once, a brief lock), committed; then VALIDATE outside
    # that transaction: reading the existing rows takes a lock that lets inserts go on.
    for name, condition in CHECKS.items():
        op.execute(f"ALTER TABLE audit_events ADD CONSTRAINT ck_audit_events_{name} "
                   f"CHECK ({condition}) NOT VALID")
    with op.get_context().autocommit_block():
        for name in CHECKS:
            op.execute(f"ALTER TABLE audit_events VALIDATE CONSTRAINT ck_audit_events_{name}")


def downgrade() -> None:
    for name in CHECKS:
        op.drop_constraint(op.f(f"ck_audit_events_{name}"), "audit_events", type_="check")
