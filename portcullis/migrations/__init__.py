"""Alembic migrations; ``portcullis db upgrade`` runs them as the database owner."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)
