"""``portcullis audit``: verify the per-tenant hash chains."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime

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


@audit.command("export")
@click.option("--tenant", "tenant", type=click.UUID, required=True)
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z",
                                              "%Y-%m-%dT%H:%M:%S"]), required=True,
              help="Inclusive; a date or an ISO time (UTC when no offset).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z",
                                              "%Y-%m-%dT%H:%M:%S"]), required=True,
              help="Exclusive.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="File to write (default: audit-<tenant>-<since>-<until>.<format>).")
def export_command(tenant: uuid.UUID, since: datetime, until: datetime, fmt: str,
                   output: str | None) -> None:
    """Export one tenant's events to a file, with a progress bar; audited and alerted."""
    from portcullis.audit.export import record_export, write_export
    from portcullis.audit.service import Actor, Origin
    from portcullis.db import tenant_session

    since, until = _utc(since), _utc(until)
    if until <= since:
        raise click.BadParameter("--until must be after --since")
    path = output or f"audit-{tenant}-{since:%Y%m%d}-{until:%Y%m%d}.{fmt}"
    with tenant_session(tenant) as db:
        record_export(db, tenant, Actor("operator", "cli"), Origin(None, "portcullis-cli"),
                      {"since": since.isoformat(), "until": until.isoformat(),
                       "format": fmt, "via": "cli"})
    with Progress(disable=not sys.stderr.isatty()) as progress, \
            open(path, "wb") as out, \
            tenant_session(tenant) as db:
        bar = progress.add_task("exporting", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        rows = write_export(db, tenant, since, until, fmt, out, advance)
    click.echo(f"exported {rows} event(s) to {path}")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
