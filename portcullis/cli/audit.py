"""``portcullis audit``: verify the per-tenant hash chains, export a tenant's events."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime

import click
from rich.progress import Progress

from portcullis.audit import service as audit_service
from portcullis.cli.actor import CLI
from portcullis.exports import service as exports


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option("--tenant", "tenant", type=click.UUID, default=None,
              help="Check one tenant's chain (default: every chain).")
def verify(tenant: uuid.UUID | None) -> None:
    """Exit 1 naming, for each broken chain, the first event that was edited or deleted."""
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task("verifying", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=max(total, 1))

        result = audit_service.verify_chains(tenant, advance)
    for broken in result.broken:
        click.echo(f"BROKEN {broken.describe()}", err=True)
    if result.broken:
        click.echo(f"{len(result.broken)} of {result.chains} chain(s) broken", err=True)
        sys.exit(1)
    click.echo(f"ok: {result.chains} chain(s), {result.events} event(s) verified")


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
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise click.BadParameter("--until must be after --since")
    path = output or f"audit-{tenant}-{since:%Y%m%d}-{until:%Y%m%d}.{fmt}"
    with Progress(disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task("exporting", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        rows = exports.export_to_file(CLI, tenant, since, until, fmt, path, advance)
    click.echo(f"exported {rows} event(s) to {path}")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
