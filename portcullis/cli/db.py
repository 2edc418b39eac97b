"""``portcullis db``: schema migrations (the Procfile's release step)."""

from __future__ import annotations

import click


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Apply migrations as the database owner; creates the least-privileged roles."""
    from portcullis.migrations import upgrade as run_upgrade

    run_upgrade(revision)
    click.echo(f"database upgraded to {revision}")
