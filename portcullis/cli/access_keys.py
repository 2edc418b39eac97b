"""``portcullis access-keys revoke``: one key of a tenant, or all of them, at once."""

from __future__ import annotations

import uuid

import click

from portcullis.access_keys import service as access_keys
from portcullis.cli.actor import CLI
from portcullis.cli.outcome import refusals_exit_1
from portcullis.tenants import service as tenants


@click.group("access-keys")
def access_keys_group() -> None:
    """Tenants' access keys (incident response: revoke)."""


@access_keys_group.command()
@click.option("--tenant", "tenant_id", type=click.UUID, required=True)
@click.option("--key", "key_id", type=click.UUID, default=None, help="One key, by id.")
@click.option("--all", "every", is_flag=True, help="Every live key of the tenant.")
@refusals_exit_1
def revoke(tenant_id: uuid.UUID, key_id: uuid.UUID | None, every: bool) -> None:
    """Revoke at once (the next request with the key answers 401). Audited per key."""
    if (key_id is None) == (not every):
        raise click.UsageError("give exactly one of --key ID and --all")
    tenant = tenants.get(tenant_id)
    caller = CLI.for_tenant(tenant.id)
    if key_id is not None:
        access_keys.revoke(caller, key_id)
        click.echo(f"revoked access key {key_id} of {tenant.id}")
    else:
        click.echo(f"revoked {access_keys.revoke_all(caller)} access key(s) of {tenant.id}")
