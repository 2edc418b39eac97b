"""``portcullis operator-keys``: keys for operators, who belong to no tenant."""

from __future__ import annotations

import click


@click.group("operator-keys")
def operator_keys() -> None:
    """Operator keys (pco_...), accepted only on /api/v1/operator/*."""


@operator_keys.command()
@click.option("--name", required=True, help="Who or what holds the key.")
def create(name: str) -> None:
    """Create a key and print it once, alone on the last line."""
    from portcullis.access_keys.service import create_operator_key

    secret = create_operator_key(name)
    click.echo(f"Operator key '{name}' created. Store it now: it is not shown again.")
    click.echo(secret)
