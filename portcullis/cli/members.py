"""``portcullis members suspend``: cut a member off at once (sessions and keys die)."""

from __future__ import annotations

import uuid

import click

from portcullis.accounts import members
from portcullis.accounts.models import MemberStatus
from portcullis.cli.actor import CLI
from portcullis.cli.outcome import refusals_exit_1
from portcullis.tenants import service as tenants


@click.group("members")
def members_group() -> None:
    """Tenants' members (incident response: suspend)."""


@members_group.command()
@click.option("--tenant", "tenant_id", type=click.UUID, required=True)
@click.option("--email", required=True)
@refusals_exit_1
def suspend(tenant_id: uuid.UUID, email: str) -> None:
    """Suspend the member as the members route does: their sessions and access keys are
    revoked in the same transaction. The last active admin is refused (suspend the tenant
    instead). Audited in the tenant's events."""
    tenant = tenants.get(tenant_id)
    caller = CLI.for_tenant(tenant.id)
    member = members.change_member(caller, members.member_id_by_email(caller, email), None,
                                   MemberStatus.suspended)
    click.echo(f"suspended member {member.id} ({member.email}) of {tenant.id}")
