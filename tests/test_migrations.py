"""The migrations build exactly the schema the models describe, and init-db is safe to run twice."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from timebank.core.extensions import db


def test_models_match_migrations(ctx):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_init_db_twice(runner):
    first = runner.invoke(args=["init-db"])
    second = runner.invoke(args=["init-db"])
    assert first.exit_code == 0 and second.exit_code == 0, second.output
