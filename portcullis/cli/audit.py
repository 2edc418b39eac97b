"""``portcullis audit``: verify the per-tenant hash chains."""

from __future__ import annotations

import sys
import uuid

import click
from rich.progress import Progress

from portcullis.audit.service import count_events, tenants_with_events, verify_chain
from portcullis.db import system_session


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option("--tenant", "tenant", type=click.UUID, default=None,
              help="Check one tenant's chain (default: every chain).")
def verify(tenant: uuid.UUID | None) -> None:
    """Exit 1 naming, for each broken chain, the first event that was edited or deleted."""
    broken_chains = 0
    with system_session() as session:
        tenants = [tenant] if tenant else tenants_with_events(session)
        counts = {t: count_events(session, t) for t in tenants}
        total = sum(counts.values())
        with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
            bar = progress.add_task("verifying", total=max(total, 1))
            for tenant_id in tenants:
                broken = verify_chain(session, tenant_id)
                if broken is not None:
                    broken_chains += 1
                    click.echo(f"BROKEN {broken.describe()}", err=True)
                progress.advance(bar, counts[tenant_id])
    if broken_chains:
        click.echo(f"{broken_chains} of {len(tenants)} chain(s) broken", err=True)
        sys.exit(1)
    click.echo(f"ok: {len(tenants)} chain(s), {total} event(s) verified")
