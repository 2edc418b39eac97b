"""``portcullis billing``: the monthly run, usage collection and the overdue check, at once."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from portcullis.billing import service as billing
from portcullis.cli.actor import CLI
from portcullis.errors import DomainError


@click.group()
def billing_group() -> None:
    """Invoices, usage and dunning."""


def _period(_ctx: click.Context, _param: click.Parameter, value: str) -> billing.Period:
    try:
        return billing.Period.parse(value)
    except ValueError:
        raise click.BadParameter("use YYYY-MM, for example 2026-11") from None


@billing_group.command("run")
@click.option("--period", required=True, callback=_period, help="The month to bill, YYYY-MM.")
def run(period: billing.Period) -> None:
    """Issue the month's missing invoices (one per tenant), with a progress bar."""
    columns = (TextColumn("billing {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not sys.stderr.isatty()) as progress:
            bar = progress.add_task(str(period), total=None)

            def advance(done: int, total: int) -> None:
                progress.update(bar, completed=done, total=total)

            result = billing.run_period(CLI, period, advance)
    except DomainError as exc:
        click.echo(f"error: {exc.detail or exc.code}", err=True)
        sys.exit(1)
    click.echo(f"{result.period}: issued {result.issued} invoice(s) "
               f"({result.tenants} tenant(s) had none)")


@billing_group.command("collect-usage")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The day to record the storage under (default: today, UTC).")
def collect_usage(day: datetime | None) -> None:
    """Record every bucket's storage and each tenant's SFTP accounts as they stand now,
    under the given day (replacing that day's figures)."""
    date = day.date() if day else datetime.now(UTC).date()
    if date >= datetime.max.date():
        raise click.BadParameter("no day after it exists", param_hint="--date")
    buckets = billing.collect_usage(date)
    click.echo(f"{date.isoformat()}: recorded {buckets} bucket(s)")


@billing_group.command("check-overdue")
def check_overdue() -> None:
    """Mark overdue invoices, suspend tenants 30 days late, reactivate those settled."""
    result = billing.check_overdue(actor=CLI)
    click.echo(f"overdue: {result.overdue}, suspended: {result.suspended}, "
               f"reactivated: {result.reactivated}")
