"""``portcullis files rescan``: stored files virus scanned again, at once."""

from __future__ import annotations

import sys
import uuid

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from portcullis.cli.actor import CLI
from portcullis.cli.outcome import refusals_exit_1
from portcullis.errors import DependencyUnavailable
from portcullis.storage import service as storage
from portcullis.tenants import service as tenants


@click.group("files")
def files_group() -> None:
    """Stored files."""


@files_group.command()
@click.option("--tenant", "tenant_id", type=click.UUID, default=None, metavar="ID",
              help="Rescan one tenant's files (default: every tenant's).")
@refusals_exit_1
def rescan(tenant_id: uuid.UUID | None) -> None:
    """Virus scan stored files again, with a progress bar: those scanned under an older
    signature version than clamd's first, then those last scanned more than
    RESCAN_AFTER_DAYS ago. A file found infected is quarantined at once (audited
    file.quarantined in its tenant's events, alert.malware_detected)."""
    if tenant_id is not None:
        tenants.get(tenant_id)  # an unknown tenant: one line, exit 1
    columns = (TextColumn("rescanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not sys.stderr.isatty()) as progress:
            bar = progress.add_task("files", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(bar, completed=done, total=total)

            result = storage.rescan_files(CLI, tenant_id, advance)
    except DependencyUnavailable as exc:
        click.echo(f"error: {exc.dependency} is unavailable; the files not rescanned yet "
                   "stay due", err=True)
        sys.exit(1)
    scanned = result.clean + result.quarantined
    click.echo(f"rescanned {scanned} file(s): {result.quarantined} quarantined, "
               f"{result.unscanned} without a verdict")
