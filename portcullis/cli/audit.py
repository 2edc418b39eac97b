"""``portcullis audit``: verify the per-tenant hash chains, export or search a tenant's
events."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import click
from rich.progress import Progress

from portcullis.audit import service as audit_service
from portcullis.audit.models import Severity
from portcullis.cli.actor import CLI
from portcullis.cli.outcome import refusals_exit_1
from portcullis.exports import service as exports
from portcullis.tenants import service as tenants


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


@dataclass(frozen=True)
class _Page:
    limit: int
    cursor: str | None


_TIME = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"])
SEARCH_PAGE = 200


@audit.command("search")
@click.option("--tenant", "tenant_id", type=click.UUID, required=True)
@click.option("--action", default=None, help="One action, e.g. auth.login_failed.")
@click.option("--severity", type=click.Choice([s.value for s in Severity]), default=None)
@click.option("--since", type=_TIME, default=None, help="Inclusive; UTC when no offset.")
@click.option("--until", type=_TIME, default=None, help="Exclusive.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@refusals_exit_1
def search(tenant_id: uuid.UUID, action: str | None, severity: str | None,
           since: datetime | None, until: datetime | None, limit: int) -> None:
    """The tenant's events, newest first, one JSON object per line shaped like the API's
    audit items; streamed page by page."""
    tenant = tenants.get(tenant_id)
    filters = audit_service.EventFilter(action=action, severity=severity,
                                        since=_utc(since) if since else None,
                                        until=_utc(until) if until else None)
    caller, cursor, left = CLI.for_tenant(tenant.id), None, limit
    while left > 0:
        page = audit_service.list_events(caller, filters, _Page(min(left, SEARCH_PAGE), cursor))
        for item in page.items:
            click.echo(json.dumps(item, separators=(",", ":"), default=str))
        left -= len(page.items)
        cursor = page.next_cursor
        if cursor is None or not page.items:
            break
