"""SQLite writers: the queue on ``<database>.writers`` and the deferred write lock of the till's sale
(timebank.core.database). PostgreSQL takes its own locks, so these run on SQLite."""

from __future__ import annotations

import fcntl
import os
import sqlite3

import pytest
from sqlalchemy import func, select, text

from conftest import IS_POSTGRES
from faults_support import assert_unavailable, sibling_app, sqlite_path
from timebank.core import accounts
from timebank.core.database import QueuedConnection, defer_write_lock, end_deferred_write_lock, take_write_lock
from timebank.core.extensions import db
from timebank.shop.models import Redemption

pytestmark = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's write lock; PostgreSQL has its own")


def _connect(path, timeout=0.2):
    return sqlite3.connect(path, timeout=timeout, factory=QueuedConnection, isolation_level=None)


def test_writers_take_turns_on_the_lock_file(tmp_path):
    path = tmp_path / "q.sqlite"
    first, second = _connect(path), _connect(path)
    first.begin_immediate()
    assert (tmp_path / "q.sqlite.writers").exists()
    # The second writer waits on the lock file, not on SQLite's lock, and gives up at its timeout.
    with pytest.raises(sqlite3.OperationalError, match="another writer"):
        second.begin_immediate()
    assert not second.in_transaction
    first.commit()  # the turn passes with the commit...
    second.begin_immediate()
    with pytest.raises(sqlite3.OperationalError, match="another writer"):
        first.begin_immediate()
    second.rollback()  # ...and with a rollback...
    first.begin_immediate()
    first.close()  # ...and when a connection closes.
    second.begin_immediate()
    second.execute("CREATE TABLE t (x INTEGER)")
    second.commit()
    second.close()


def test_a_writer_outside_the_queue_is_still_waited_for(tmp_path):
    path = tmp_path / "q.sqlite"
    plain = sqlite3.connect(path, isolation_level=None)
    plain.execute("BEGIN IMMEDIATE")
    queued = _connect(path)
    with pytest.raises(sqlite3.OperationalError) as raised:
        queued.begin_immediate()  # its turn in the queue, then SQLite's busy timeout
    assert "another writer" not in str(raised.value)
    plain.execute("ROLLBACK")
    queued.begin_immediate()  # and the failed attempt left the queue free
    queued.rollback()
    plain.close()
    queued.close()


def test_an_in_memory_database_commits_without_a_queue_or_a_wal():
    con = sqlite3.connect(":memory:", factory=QueuedConnection, isolation_level=None)
    con.begin_immediate()
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    con.close()


def test_a_write_is_on_disk_before_commit_returns_and_after_the_turn_is_handed_on(tmp_path, monkeypatch):
    """SQLite runs with synchronous=NORMAL here; the connection flushes the WAL itself, after letting
    the next writer in and before commit() returns (so before anyone is answered)."""
    path = tmp_path / "d.sqlite"
    con = _connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    flushed, turn_free = [], []
    real = os.fdatasync

    def spy(fd):
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        probe = os.open(str(path) + ".writers", os.O_RDWR)
        try:  # the next writer could take its turn now, while the disk is being waited for
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            turn_free.append(True)
            fcntl.flock(probe, fcntl.LOCK_UN)
        except BlockingIOError:
            turn_free.append(False)
        finally:
            os.close(probe)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    con.begin_immediate()
    con.execute("CREATE TABLE t (x INTEGER)")  # DDL changes no row: the caller says it wrote
    con.mark_written()
    con.commit()
    assert flushed == [str(path) + "-wal"] and turn_free == [True]
    con.begin_immediate()
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    assert len(flushed) == 2 and turn_free == [True, True]
    con.begin_immediate()
    assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)
    con.commit()  # nothing written: nothing to wait for
    con.begin_immediate()
    con.execute("INSERT INTO t VALUES (2)")
    con.rollback()  # nothing kept: nothing to wait for
    assert len(flushed) == 2
    con.close()


def test_the_apps_writes_are_flushed_at_commit(world, app, monkeypatch):
    household, code, item = _shop(world)
    flushed = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (flushed.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    wal = sqlite_path(app) + "-wal"
    r = world.call("POST", "/api/v1/redemptions", "clerk",
                   json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]})
    assert r.status_code == 201 and flushed == [wal]
    assert world.call("GET", f"/api/v1/redemptions/{r.get_json()['id']}", "clerk").status_code == 200
    assert flushed == [wal]  # a read is not flushed
    with app.app_context():
        assert db.session.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL: the flush is ours
        db.session.execute(text("CREATE TABLE scratch (x INTEGER)"))  # DDL through SQLAlchemy
        db.session.commit()
    assert flushed == [wal, wal]


def test_deferred_reads_run_outside_a_transaction_and_the_first_write_takes_the_lock(app):
    with app.app_context():
        token = defer_write_lock()
        try:
            driver = db.session.connection().connection.dbapi_connection
            db.session.execute(text("SELECT count(*) FROM idempotency_records")).scalar_one()
            assert not driver.in_transaction  # a read: no lock taken
            db.session.execute(text("INSERT INTO idempotency_records (scope, key, request_hash, status_code,"
                                    " response_body, created_at) VALUES ('deferred', 'k', 'h', 200, '{}',"
                                    " '2026-01-01 00:00:00.000000')"))
            assert driver.in_transaction  # the write began BEGIN IMMEDIATE first...
            db.session.rollback()  # ...so it is undone with the rest
            assert db.session.execute(text("SELECT count(*) FROM idempotency_records WHERE scope = 'deferred'")
                                      ).scalar_one() == 0
            take_write_lock(db.session)
            assert db.session.connection().connection.dbapi_connection.in_transaction
            db.session.rollback()
        finally:
            end_deferred_write_lock(token)
        # Without deferral every transaction holds the lock from its first statement, reads included.
        db.session.execute(text("SELECT 1")).scalar_one()
        assert db.session.connection().connection.dbapi_connection.in_transaction
        db.session.rollback()


def _shop(world):
    world.user("clerk", "clerk")
    household = world.household()
    world.grant(household, 50)
    r = world.call("POST", "/api/v1/items", "clerk",
                   json={"community_code": "hongxing", "sku": "soap", "name": "肥皂", "price_points": 3})
    item = r.get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "clerk",
                      json={"item_id": item, "quantity": 5, "reason": "donation", "donor": "华联"}).status_code == 201
    with world.app.app_context():
        code = db.session.execute(text("SELECT member_code FROM households WHERE id = :h"),
                                  {"h": household}).scalar_one()
    return household, code, item


def test_the_till_reads_before_it_takes_the_write_lock(world, app, tmp_path):
    """A sale's token, key and member are read before the write lock: a refusal that writes nothing
    answers while another writer holds the lock; a sale waits for it, then 503s and writes nothing."""
    household, code, item = _shop(world)
    impatient = sibling_app(app, tmp_path, "impatient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=200)
    client = impatient.test_client()
    headers = world.headers("clerk")
    holder = sqlite3.connect(sqlite_path(app), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = client.post("/api/v1/redemptions", headers=headers,
                        json={"member_code": "HNOSUCH", "lines": [{"item_id": item, "quantity": 1}]})
        assert r.status_code == 404 and r.get_json()["error"] == "unknown_member"
        assert_unavailable(client.post("/api/v1/redemptions", headers={**headers, "Idempotency-Key": "k1"},
                                       json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}))
        # Other endpoints still take the lock at their first statement: a plain read waits too.
        assert_unavailable(client.get("/api/v1/me", headers=headers))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 0
    assert world.balance(accounts.household_points(household)) == 50
    r = client.post("/api/v1/redemptions", headers={**headers, "Idempotency-Key": "k1"},
                    json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]})
    assert r.status_code == 201 and r.get_json()["balance_after"] == 47
    with impatient.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_writer_holding_the_queue_past_the_timeout_gives_503(world, app, tmp_path):
    household, code, item = _shop(world)
    impatient = sibling_app(app, tmp_path, "impatient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=200)
    client = impatient.test_client()
    headers = world.headers("clerk")
    holder = _connect(sqlite_path(app), timeout=5)
    holder.begin_immediate()  # another worker of this deployment, stuck inside its transaction
    try:
        assert_unavailable(client.post("/api/v1/redemptions", headers={**headers, "Idempotency-Key": "k2"},
                                       json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}))
        assert_unavailable(client.get("/api/v1/me", headers=headers))
    finally:
        holder.rollback()
        holder.close()
    assert world.balance(accounts.household_points(household)) == 50
    assert client.post("/api/v1/redemptions", headers={**headers, "Idempotency-Key": "k2"},
                       json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}).status_code == 201
    with impatient.app_context():
        db.session.remove()
        db.engine.dispose()
