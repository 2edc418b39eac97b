"""``portcullis sessions revoke``: one user's sessions, or every session of a tenant."""

from __future__ import annotations

import uuid

import click

from portcullis.accounts import sessions
from portcullis.cli.actor import CLI
from portcullis.cli.outcome import refusals_exit_1
from portcullis.tenants import service as tenants


@click.group("sessions")
def sessions_group() -> None:
    """Members' sessions (incident response: a stolen cookie)."""


@sessions_group.command()
@click.option("--tenant", "tenant_id", type=click.UUID, required=True)
@click.option("--user", "user_id", type=click.UUID, default=None, help="One user, by id.")
@click.option("--all", "every", is_flag=True, help="Every user of the tenant.")
@refusals_exit_1
def revoke(tenant_id: uuid.UUID, user_id: uuid.UUID | None, every: bool) -> None:
    """Revoke at once: each revoked session answers 401 on its next request. Audited
    per session."""
    if (user_id is None) == (not every):
        raise click.UsageError("give exactly one of --user ID and --all")
    tenant = tenants.get(tenant_id)
    count = sessions.revoke_sessions(CLI.for_tenant(tenant.id), user_id)
    whose = f"user {user_id}" if user_id else "every user"
    click.echo(f"revoked {count} session(s) of {whose} of {tenant.id}")
