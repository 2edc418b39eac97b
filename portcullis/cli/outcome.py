"""How an operator command ends when the domain refuses: one line on stderr, exit 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from portcullis.errors import DomainError

F = TypeVar("F", bound=Callable[..., Any])


def refusals_exit_1(command: F) -> F:
    """An unknown tenant, key, user or email (or another refusal) changes nothing and
    ends the command with a one-line message and status 1; no traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            click.echo(f"error: {exc.detail or exc.code}", err=True)
        sys.exit(1)

    return run  # type: ignore[return-value]
