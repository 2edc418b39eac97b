"""``portcullis jobs``: recover jobs the broker lost or whose worker died."""

from __future__ import annotations

import click


@click.group()
def jobs() -> None:
    """Background jobs."""


@jobs.command("requeue-stuck")
def requeue_stuck() -> None:
    """Send again every queued job never picked up and every job whose worker died."""
    from portcullis.jobs.service import requeue_stuck as run

    click.echo(f"requeued {run()} job(s)")
