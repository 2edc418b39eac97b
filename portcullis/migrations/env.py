"""Alembic environment: migrations run as the owner named by ``DATABASE_URL``."""

from __future__ import annotations

from alembic import context

from portcullis import models  # noqa: F401 - registers every table
from portcullis.db.base import Base
from portcullis.db.engine import owner_engine


def run_migrations_online() -> None:
    engine = owner_engine()
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
