"""The migrations build exactly the schema the models describe: nothing added to a model
is missing from the database, and no migration leaves something the models don't know."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, text

from portcullis import models  # noqa: F401 - registers every table
from portcullis.db.base import Base
from portcullis.db.engine import owner_engine

pytestmark = pytest.mark.usefixtures("stack")


def test_migrated_database_matches_the_models() -> None:
    engine = owner_engine()
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_every_check_constraint_of_the_models_exists() -> None:
    """Autogenerate does not compare CHECK constraints; compare their names here."""
    declared = {(table.name, str(c.name)) for table in Base.metadata.tables.values()
                for c in table.constraints if isinstance(c, CheckConstraint)}
    engine = owner_engine()
    try:
        with engine.connect() as connection:
            present = set(connection.execute(text(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint "
                "WHERE contype = 'c' AND connamespace = 'public'::regnamespace")).all())
    finally:
        engine.dispose()
    assert declared
    assert declared <= {(table, name) for table, name in present}
