"""``timebank verify`` checks the SQLite database file itself: a page of zeros, a file cut in half or a file
that is no database at all ends with exit 1 and one line naming the damage, never a traceback.

Each case runs the real command in its own process, as an operator would, over a copy of a database
with data in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import IS_POSTGRES, TEST_DB_URL
from server_support import server_env, timebank

sqlite_only = pytest.mark.skipif(IS_POSTGRES, reason="the database file's own check is SQLite's")


@pytest.fixture
def database(world, app, tmp_path) -> Path:
    """A copy of a database with households, points and a few ledger transactions: every page in use."""
    for name in ("张家", "李家", "王家"):
        h = world.household(name=name)
        for points in (5, 7, 11):
            world.grant(h, points)
    source = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    copy = tmp_path / "copy" / "timebank.sqlite"
    copy.parent.mkdir()
    con = sqlite3.connect(source)
    con.execute("VACUUM INTO ?", (str(copy),))  # no free pages: every page belongs to a table or an index
    con.close()
    return copy


def _verify(path: Path, tmp_path: Path):
    env = server_env(tmp_path / "verify-instance", f"sqlite:///{path}")
    done = timebank(env, "verify")
    return done.returncode, (done.stdout + done.stderr).strip()


def _pages(path: Path) -> tuple[int, int]:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA page_size").fetchone()[0], con.execute("PRAGMA page_count").fetchone()[0]
    finally:
        con.close()


@sqlite_only
def test_intact_database_verifies(database, tmp_path):
    code, output = _verify(database, tmp_path)
    assert code == 0, output
    assert output.startswith("OK: 9 transactions")


@sqlite_only
def test_a_zeroed_page_fails_in_one_line(database, tmp_path):
    size, count = _pages(database)
    assert count > 10
    with open(database, "r+b") as handle:
        handle.seek((count // 2) * size)  # page count // 2 + 1, counting from 1
        handle.write(b"\0" * size)
    code, output = _verify(database, tmp_path)
    assert code == 1, output
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output
    assert output.startswith("FAILED") and "damaged" in output and str(database) in output


@sqlite_only
def test_a_truncated_file_fails_in_one_line(database, tmp_path):
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 2])
    code, output = _verify(database, tmp_path)
    assert code == 1, output
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output
    assert output.startswith("FAILED") and str(database) in output


@sqlite_only
def test_a_file_that_is_no_database_fails_in_one_line(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"these are not the pages of a database\n" * 200)
    code, output = _verify(junk, tmp_path)
    assert code == 1, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert output.startswith("FAILED") and "not a database" in output


@sqlite_only
def test_a_missing_file_is_not_created(tmp_path):
    missing = tmp_path / "nowhere" / "timebank.sqlite"
    code, output = _verify(missing, tmp_path)
    assert code == 1, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert output.startswith("FAILED") and "no database" in output
    assert not missing.exists()


@pytest.mark.skipif(not IS_POSTGRES, reason="a PostgreSQL server to ask for a database it does not have")
def test_a_postgres_database_that_cannot_be_reached_fails_in_one_line(tmp_path):
    """No file to check on PostgreSQL; a database that is not there still ends in one line."""
    missing = make_url(TEST_DB_URL).set(database="timebank_no_such_database")
    env = server_env(tmp_path / "verify-instance", missing.render_as_string(hide_password=False))
    done = timebank(env, "verify")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert output.startswith("FAILED: the database cannot be read") and "timebank_no_such_database" in output
