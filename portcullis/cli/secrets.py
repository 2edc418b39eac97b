"""``portcullis secrets reencrypt``: everything sealed at rest, under the current key.

Run it after setting a new ``SESSION_SECRET`` with the old one as
``SESSION_SECRET_PREVIOUS``; once it has finished, the previous value can be removed.
"""

from __future__ import annotations

import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from portcullis.accounts import rekey
from portcullis.jobs import service as jobs


@click.group("secrets")
def secrets_group() -> None:
    """Secrets at rest (rotation)."""


@secrets_group.command()
def reencrypt() -> None:
    """Seal TOTP seeds and jobs' sealed results again under SESSION_SECRET, with a
    progress bar. Safe to repeat and to run while the system serves."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, disable=not sys.stderr.isatty()) as progress:
        seeds = progress.add_task("TOTP seeds", total=None)
        users, unreadable_seeds = rekey.reseal_second_factors(
            lambda done, total: progress.update(seeds, completed=done, total=total))
        results = progress.add_task("job results", total=None)
        sealed, unreadable_results = jobs.reseal_results(
            lambda done, total: progress.update(results, completed=done, total=total))
    click.echo(f"re-sealed the second factors of {users} user(s) and {sealed} job "
               f"result(s) under the current key")
    if unreadable_seeds or unreadable_results:
        click.echo(f"error: no configured key opens {unreadable_seeds} TOTP seed(s) and "
                   f"{unreadable_results} job result(s); they were left as they are (is the "
                   "previous SESSION_SECRET still set?)", err=True)
        sys.exit(1)
