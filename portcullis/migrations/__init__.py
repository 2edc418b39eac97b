"""Alembic migrations; ``portcullis db upgrade`` runs them as the database owner."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from portcullis.accounts import identity_cache

HERE = Path(__file__).parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)
    # A migration writes outside any SQLAlchemy session the identity cache listens to: every
    # principal cached anywhere is read again (portcullis/accounts/identity_cache.py).
    identity_cache.bump({identity_cache.GLOBAL})
