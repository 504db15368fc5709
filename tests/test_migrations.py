"""The migrations build exactly the schema the models describe, and init-db is safe to run twice."""

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, text

from conftest import IS_POSTGRES
from timebank.core.extensions import db


def test_models_match_migrations(ctx):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_unit_checks_match_migrations(ctx):
    """The ledger builds its CHECKs on ``unit`` from the units the application declares; they are
    the migrations' (the comparison above does not look at CHECK constraints)."""
    for table in ("ledger_accounts", "ledger_postings"):
        name = f"ck_{table}_unit"
        checks = {c.name: str(c.sqltext) for c in db.metadata.tables[table].constraints
                  if isinstance(c, CheckConstraint)}
        assert checks[name] == "unit IN ('points', 'minutes')"
        if IS_POSTGRES:
            migrated = db.session.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                                               " WHERE conname = :name"), {"name": name}).scalar_one()
            assert re.findall(r"'(\w+)'", migrated) == ["points", "minutes"]
        else:
            migrated = db.session.execute(text("SELECT sql FROM sqlite_master WHERE name = :table"),
                                          {"table": table}).scalar_one()
            assert f"CONSTRAINT {name} CHECK ({checks[name]})" in migrated


def test_init_db_twice(runner):
    first = runner.invoke(args=["init-db"])
    second = runner.invoke(args=["init-db"])
    assert first.exit_code == 0 and second.exit_code == 0, second.output
