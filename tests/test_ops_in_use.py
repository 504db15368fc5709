"""The database's "in use" lock (timebank.core.in_use) between processes' roles, in one process: a holder
makes the restore's exclusive lock fail at once, and a holder that starts during a restore waits for it
and then holds the file the restore put in place. The real server and scheduler are in
test_ops_restore_live.py."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest
from sqlalchemy.engine import make_url

from conftest import IS_POSTGRES, TEST_DB_URL
from timebank.core import in_use


def _release_all():
    """Tests only: let go of what ``hold`` keeps for the process's life (no SQLite connection here has
    these files open, so closing the descriptors takes no one's record locks)."""
    while in_use._HELD:
        held = in_use._HELD.pop()
        if isinstance(held, int):
            os.close(held)
        else:
            engine, connection = held
            connection.close()
            engine.dispose()


@pytest.fixture
def config(db_uri):
    yield {"SQLALCHEMY_DATABASE_URI": db_uri}
    _release_all()
    in_use._Ensured.held, in_use._Ensured.next_try = False, 0.0


def test_a_holder_makes_the_restore_refuse_at_once(config):
    with in_use.exclusive(config):
        pass  # nobody holds it: taken and given back
    assert in_use.hold(config)
    with pytest.raises(in_use.InUse, match="a server or scheduler is using the database"):
        with in_use.exclusive(config):
            pytest.fail("the exclusive lock was taken while a holder held it")
    _release_all()
    with in_use.exclusive(config):
        pass


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite swaps the file; on PostgreSQL the database stays in place")
def test_a_server_starting_during_a_restore_waits_then_holds_the_restored_file(config, db_uri, tmp_path):
    path = in_use.sqlite_file(in_use.database_url(config))
    held = threading.Event()
    with in_use.exclusive(config):
        starter = threading.Thread(target=lambda: (in_use.hold(config), held.set()), daemon=True)
        starter.start()
        assert not held.wait(0.5)  # it waits for the restore
        # The restore's swap: the old file is kept aside, a new one takes its place.
        os.replace(path, path.with_name(path.name + ".before-restore"))
        sqlite3.connect(path).execute("CREATE TABLE restored (x)").connection.close()
    assert held.wait(10)
    starter.join(10)
    fd = in_use._HELD[-1]
    assert os.fstat(fd).st_ino == os.stat(path).st_ino  # the restored file, not the one renamed away
    with pytest.raises(in_use.InUse):
        with in_use.exclusive(config):
            pass


def test_a_server_that_cannot_reach_its_database_starts_and_takes_the_lock_later(config, tmp_path, monkeypatch):
    if IS_POSTGRES:
        unreachable = make_url(TEST_DB_URL).set(database="timebank_no_such_database")
        bad = {"SQLALCHEMY_DATABASE_URI": unreachable.render_as_string(hide_password=False)}
    else:
        bad = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'gone' / 'timebank.sqlite'}"}
    assert in_use.ensure(bad) is False  # no exception: the server starts and answers 503 meanwhile
    assert in_use.ensure(config) is False  # not again before the retry interval
    monkeypatch.setattr(in_use, "RETRY_SECONDS", 0.0)
    in_use._Ensured.next_try = 0.5  # past
    assert in_use.ensure(config) is True  # the database is back: held
    with pytest.raises(in_use.InUse):
        with in_use.exclusive(config):
            pass
    assert in_use.ensure(config) is True
