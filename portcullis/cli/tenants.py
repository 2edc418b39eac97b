"""``portcullis tenants``: list them; suspend (read-only) or reactivate one at once."""

from __future__ import annotations

import uuid

import click

from portcullis.cli.actor import CLI
from portcullis.cli.outcome import refusals_exit_1
from portcullis.tenants import service as tenants


@click.group("tenants")
def tenants_group() -> None:
    """Tenants (incident response: contain a tenant by making it read-only)."""


@tenants_group.command("list")
def list_tenants() -> None:
    """Every tenant: id, status, name; oldest first."""
    for tenant in tenants.list_all():
        click.echo(f"{tenant.id}  {tenant.status:<9}  {tenant.name}")


@tenants_group.command()
@click.argument("tenant_id", type=click.UUID)
@refusals_exit_1
def suspend(tenant_id: uuid.UUID) -> None:
    """Make the tenant read-only at once (as the operator route); its SFTP logins are
    disabled within a minute. Audited in its events."""
    tenant = tenants.set_status(CLI, tenant_id, tenants.TenantStatus.suspended)
    click.echo(f"suspended {tenant.id} ({tenant.name})")


@tenants_group.command()
@click.argument("tenant_id", type=click.UUID)
@refusals_exit_1
def reactivate(tenant_id: uuid.UUID) -> None:
    """Lift a suspension (an operator's or the overdue rule's). Audited in its events."""
    tenant = tenants.set_status(CLI, tenant_id, tenants.TenantStatus.active)
    click.echo(f"reactivated {tenant.id} ({tenant.name})")
