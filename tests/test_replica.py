"""Reports and exports read from the read replica when the deployment has one
(``TIMEBANK_READ_DATABASE_URL``); everything else keeps reading and writing the primary.

The replica is made to lag on purpose, so that what a page shows tells which database answered:

* SQLite: a copy of the database file taken after the first grant (a replica that never catches up);
* PostgreSQL: a real streaming replica of the test server (``tools/pg-replica up`` makes one on port
  5433; its URL in ``TIMEBANK_TEST_REPLICA_URL``), whose replay is paused after the first grant and
  resumed at the end. Without that URL the PostgreSQL case is skipped, except under CI=true, where
  the Makefile starts the replica first and a missing one is a failure.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from sqlalchemy import text

from conftest import IS_POSTGRES, TEST_DB_URL, base_config
from timebank import create_app

REPLICA_URL = os.environ.get("TIMEBANK_TEST_REPLICA_URL")
#: A month after every grant (the set-up's grants are stamped with the real time): its report's
#: outstanding points are every grant's.
MONTH = "2099-12"


class _Replica:
    """The streaming replica, through plain psycopg (the app's engines would ask a standby for
    read-write transactions outside a request)."""

    def __init__(self, url: str):
        import psycopg

        self.conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        self.psycopg = psycopg

    def run(self, sql: str, params=None):
        with self.psycopg.connect(self.conninfo, autocommit=True) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def dispose(self):
        pass


def _replica_for_postgres():
    if not REPLICA_URL:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: TIMEBANK_TEST_REPLICA_URL is not set (make test-postgres starts tools/pg-replica)")
        pytest.skip("no streaming replica: run tools/pg-replica up and set TIMEBANK_TEST_REPLICA_URL")
    return _Replica(REPLICA_URL)


def _caught_up(replica) -> None:
    """Wait until the replica has replayed everything the primary wrote so far."""
    lsn = _Replica(TEST_DB_URL).run("SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + 60
    replica.run("SELECT pg_wal_replay_resume()")
    while replica.run("SELECT pg_last_wal_replay_lsn() >= CAST(%s AS pg_lsn)", (str(lsn),)) is not True:
        assert time.monotonic() < deadline, "the replica did not catch up within 60 s"
        time.sleep(0.05)


@pytest.fixture
def lagging_replica(world, db_uri, tmp_path):
    """A grant of 10, the replica holding it, then a grant of 5 the replica does not see. Yields the
    replica's URL and a function that lets it catch up (None on SQLite, whose copy never does)."""
    household = world.household(name="张家")
    world.grant(household, 10)
    if IS_POSTGRES:
        replica = _replica_for_postgres()
        _caught_up(replica)
        replica.run("SELECT pg_wal_replay_pause()")
        world.grant(household, 5)
        yield {"url": REPLICA_URL, "household": household, "catch_up": lambda: _caught_up(replica)}
        _caught_up(replica)  # never leave the replica paused
        replica.dispose()
        return
    source = db_uri.removeprefix("sqlite:///")
    copy = tmp_path / "replica.sqlite"
    with world.app.app_context():
        from timebank.core.extensions import db

        db.session.remove()
        db.engine.dispose()
    import sqlite3

    con = sqlite3.connect(source)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    shutil.copy(source, copy)
    world.grant(household, 5)
    yield {"url": f"sqlite:///{copy}", "household": household, "catch_up": None}


def _app_with_replica(db_uri, tmp_path, clock, replica_url):
    app = create_app({**base_config(tmp_path / "with-replica", db_uri), "TIMEBANK_READ_DATABASE_URL": replica_url})
    app.extensions["timebank.core.clock"] = clock
    return app


def _login(app, username="auditor"):
    client = app.test_client()
    r = client.post("/api/v1/auth/token", json={"username": username, "password": "secret-pass"})
    assert r.status_code == 200, r.get_json()
    return client, {"Authorization": f"Bearer {r.get_json()['access_token']}"}


def test_reports_and_exports_read_the_replica_and_the_rest_the_primary(world, db_uri, tmp_path, clock,
                                                                      lagging_replica):
    # Logins and tokens live on the primary (the replica does not know this user yet).
    world.user("auditor", "committee")
    replica_points, primary_points = 10, 15
    app = _app_with_replica(db_uri, tmp_path, clock, lagging_replica["url"])
    client, auth = _login(app)

    report = client.get(f"/api/v1/reports/monthly?community_code=hongxing&month={MONTH}", headers=auth)
    assert report.status_code == 200, report.get_json()
    assert report.get_json()["points"]["outstanding"] == replica_points

    export = client.get("/api/v1/ledger/transactions/export?community_code=hongxing", headers=auth)
    assert export.status_code == 200
    body = export.get_data(as_text=True)
    assert body.count(",grant,") == 2 * 1  # the replica's one grant, two postings
    assert export.headers["X-Export-Rows"] == "2"

    # The household itself (not a report) is read on the primary: every grant is there.
    household = client.get(f"/api/v1/households/{lagging_replica['household']}", headers=auth)
    assert household.get_json()["balance_points"] == primary_points

    # Without the setting, the same report reads the primary.
    plain = world.call("GET", f"/api/v1/reports/monthly?community_code=hongxing&month={MONTH}", "auditor")
    assert plain.get_json()["points"]["outstanding"] == primary_points

    if IS_POSTGRES:
        lagging_replica["catch_up"]()
        again = client.get(f"/api/v1/reports/monthly?community_code=hongxing&month={MONTH}", headers=auth)
        assert again.get_json()["points"]["outstanding"] == primary_points


def test_a_replica_block_never_writes(world, db_uri, tmp_path, clock, lagging_replica):
    """Inside the replica block the session is reading: a write is refused before it is sent."""
    from timebank.core.database import WriteWhileReading, reading
    from timebank.core.extensions import db

    app = _app_with_replica(db_uri, tmp_path, clock, lagging_replica["url"])
    with app.app_context():
        with reading(replica=True):
            assert db.session.execute(text("SELECT 1")).scalar_one() == 1
            with pytest.raises(WriteWhileReading):
                db.session.execute(text("UPDATE households SET name = 'x'"))
        db.session.rollback()
