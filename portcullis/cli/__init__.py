"""The ``portcullis`` command."""

from __future__ import annotations

import click

import portcullis.models  # noqa: F401 - every table, so foreign keys resolve
from portcullis.cli.access_keys import access_keys_group
from portcullis.cli.audit import audit
from portcullis.cli.billing import billing_group
from portcullis.cli.db import db
from portcullis.cli.files import files_group
from portcullis.cli.jobs import jobs
from portcullis.cli.members import members_group
from portcullis.cli.operator_keys import operator_keys
from portcullis.cli.secrets import secrets_group
from portcullis.cli.sessions import sessions_group
from portcullis.cli.tenants import tenants_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate Portcullis: migrations, operator keys, audit, billing, file rescans, job
    recovery and incident response."""
    from portcullis.observability import configure_logging

    configure_logging()


main.add_command(db)
main.add_command(audit)
main.add_command(billing_group, name="billing")
main.add_command(files_group, name="files")
main.add_command(jobs)
main.add_command(operator_keys)
main.add_command(secrets_group, name="secrets")
# Incident response: each acts at once and is audited in the tenant's events (operator).
main.add_command(tenants_group, name="tenants")
main.add_command(access_keys_group, name="access-keys")
main.add_command(sessions_group, name="sessions")
main.add_command(members_group, name="members")
