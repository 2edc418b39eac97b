"""The ``portcullis`` command."""

from __future__ import annotations

import click

import portcullis.models  # noqa: F401 - every table, so foreign keys resolve
from portcullis.cli.audit import audit
from portcullis.cli.billing import billing_group
from portcullis.cli.db import db
from portcullis.cli.jobs import jobs
from portcullis.cli.operator_keys import operator_keys


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate Portcullis: migrations, operator keys, audit chain checks, billing, job recovery."""
    from portcullis.observability import configure_logging

    configure_logging()


main.add_command(db)
main.add_command(audit)
main.add_command(billing_group, name="billing")
main.add_command(jobs)
main.add_command(operator_keys)
