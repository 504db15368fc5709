"""Faults of the machine, not of the request: a database locked past the timeout, a read-only file, a full
disk, PostgreSQL lock and statement timeouts. Each gives 503 ``service_unavailable`` with Retry-After, as
problem+json, never a 500, and leaves nothing half-written."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, event, func, select, text

import ledger
from conftest import IS_POSTGRES, TEST_DB_URL, base_config
from faults_support import assert_unavailable, sibling_app, sqlite_path, with_clock
from timebank import create_app
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.people.models import Household

sqlite_only = pytest.mark.skipif(IS_POSTGRES, reason="SQLite file faults; the PostgreSQL ones are tested below")
postgres_only = pytest.mark.skipif(not IS_POSTGRES, reason="lock_timeout and statement_timeout exist on PostgreSQL")


def _household_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Household))


def _transaction_count(app):
    with app.app_context():
        return db.session.scalar(text("SELECT count(*) FROM ledger_transactions"))


def _add_grant_route(target_app):
    """A route that posts through the ledger's driver-level hot path (raw driver cursors); the
    request's boundary commits it."""

    def grant(household_id):
        from flask import request

        with_memo = request.args.get("memo_kb", type=int) or 0
        h = db.session.get(Household, household_id)
        tx = ledger.post(db.session, [
            ledger.Leg(accounts.issuance_points(h.community_id, "volunteer"), -5),
            ledger.Leg(accounts.household_points(household_id), 5)],
            kind="grant", category="volunteer", memo="x" * (1024 * with_memo), actor="test")
        return {"transaction_id": tx.id}, 201

    target_app.add_url_rule("/api/v1/test-grant/<int:household_id>", "test_grant", grant, methods=["POST"])


@sqlite_only
def test_lock_held_past_the_busy_timeout_gives_503_and_writes_nothing(world, app, tmp_path):
    h = world.household()
    world.grant(h, 10)
    headers = world.headers("admin")
    impatient = sibling_app(app, tmp_path, "impatient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=200)
    _add_grant_route(impatient)
    client = impatient.test_client()
    before_households, before_tx = _household_count(app), _transaction_count(app)

    holder = sqlite3.connect(sqlite_path(app), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert_unavailable(client.post("/api/v1/households", headers=headers,
                                       json={"community_code": "hongxing", "name": "李家", "address": "1号"}))
        assert_unavailable(client.post(f"/api/v1/test-grant/{h}", headers=headers))
        # Reads run in plain read transactions, which never wait for the write lock.
        assert client.get("/api/v1/me", headers=headers).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert (_household_count(app), _transaction_count(app)) == (before_households, before_tx)
    # Once the lock is gone the same requests work: the 503 was about "now", not about the request.
    r = client.post("/api/v1/households", headers=headers,
                    json={"community_code": "hongxing", "name": "李家", "address": "1号"})
    assert r.status_code == 201
    assert client.post(f"/api/v1/test-grant/{h}", headers=headers).status_code == 201
    with impatient.app_context():
        db.session.remove()
        db.engine.dispose()


@sqlite_only
def test_busy_timeout_is_per_app(world, app, tmp_path):
    """Each app's TIMEBANK_SQLITE_BUSY_TIMEOUT_MS holds for its own connections."""
    impatient = sibling_app(app, tmp_path, "impatient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=250)
    for each, expected in ((impatient, 250), (app, 30_000)):
        with each.app_context():
            raw = db.engine.raw_connection()
            try:
                assert raw.driver_connection.execute("PRAGMA busy_timeout").fetchone()[0] == expected
            finally:
                raw.close()
            db.engine.dispose()


@sqlite_only
def test_read_only_database_gives_503(world, app, tmp_path):
    h = world.household()
    headers = world.headers("admin")
    path = sqlite_path(app)
    read_only = with_clock(create_app(base_config(tmp_path / "ro", f"sqlite:///file:{path}?mode=ro&uri=true")), app)
    _add_grant_route(read_only)
    client = read_only.test_client()
    before = (_household_count(app), _transaction_count(app))
    assert_unavailable(client.post("/api/v1/households", headers=headers,
                                   json={"community_code": "hongxing", "name": "王家", "address": "2号"}))
    assert_unavailable(client.post(f"/api/v1/test-grant/{h}", headers=headers))
    assert_unavailable(client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"}))
    assert (_household_count(app), _transaction_count(app)) == before
    with read_only.app_context():
        db.session.remove()
        db.engine.dispose()


def _full_disk_app(app, tmp_path):
    """The same database, with connections that may not grow the file: SQLite answers "database or disk
    is full" exactly as it does when the disk runs out."""
    full = sibling_app(app, tmp_path, "full")
    with full.app_context():
        engine = db.engine

        @event.listens_for(engine, "connect")
        def _cap(dbapi_connection, _record):
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

        engine.dispose()
    return full


@sqlite_only
def test_full_disk_on_the_ledger_hot_path_gives_503_and_writes_nothing(world, app, tmp_path):
    h = world.household()
    world.grant(h, 10)
    headers = world.headers("admin")
    full = _full_disk_app(app, tmp_path)
    _add_grant_route(full)
    client = full.test_client()
    before = _transaction_count(app)
    # 64 KiB of memo needs new pages, so the driver-level INSERT fails (a bare sqlite3 error).
    assert_unavailable(client.post(f"/api/v1/test-grant/{h}?memo_kb=64", headers=headers))
    assert _transaction_count(app) == before
    assert world.balance(accounts.household_points(h)) == 10
    with app.app_context():
        assert ledger.verify(db.session).ok
    with full.app_context():
        db.session.remove()
        db.engine.dispose()


@sqlite_only
def test_disk_filling_up_under_writes_gives_503_never_500(world, app, tmp_path):
    headers = world.headers("admin")
    full = _full_disk_app(app, tmp_path)
    client = full.test_client()
    before = _household_count(app)
    created = 0
    for i in range(300):
        r = client.post("/api/v1/households", headers=headers,
                        json={"community_code": "hongxing", "name": f"户{i}" + "长" * 190, "address": "路" * 290})
        if r.status_code != 201:
            assert_unavailable(r)
            break
        created += 1
    else:
        pytest.fail("the capped database never filled up")
    assert _household_count(app) == before + created
    with full.app_context():
        db.session.remove()
        db.engine.dispose()


@postgres_only
def test_postgres_lock_timeout_gives_503(world, app, tmp_path):
    h = world.household()
    world.grant(h, 10)
    headers = world.headers("admin")
    impatient = sibling_app(app, tmp_path, "impatient", TIMEBANK_PG_LOCK_TIMEOUT_MS=200)
    _add_grant_route(impatient)
    client = impatient.test_client()
    before = (_household_count(app), _transaction_count(app))
    holder = create_engine(TEST_DB_URL)
    try:
        with holder.connect() as conn:
            tx = conn.begin()
            # The ledger's writer lock (a raw driver cursor waits for it) and a table lock (the ORM waits).
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x7469_6D65})
            conn.execute(text("LOCK TABLE households IN ACCESS EXCLUSIVE MODE"))
            assert_unavailable(client.post(f"/api/v1/test-grant/{h}", headers=headers))
            assert_unavailable(client.post("/api/v1/households", headers=headers,
                                           json={"community_code": "hongxing", "name": "李家", "address": "1号"}))
            tx.rollback()
    finally:
        holder.dispose()
    assert (_household_count(app), _transaction_count(app)) == before
    assert client.post(f"/api/v1/test-grant/{h}", headers=headers).status_code == 201
    with impatient.app_context():
        db.session.remove()
        db.engine.dispose()


@postgres_only
def test_postgres_statement_timeout_gives_503(world, app, tmp_path):
    headers = world.headers("admin")
    slow = sibling_app(app, tmp_path, "slow",
                       TIMEBANK_PG_STATEMENT_TIMEOUT_MS=200)

    def sleepy():
        db.session.execute(text("SELECT pg_sleep(2)"))
        return {}

    slow.add_url_rule("/api/v1/test-slow", "test_slow", sleepy)
    assert_unavailable(slow.test_client().get("/api/v1/test-slow", headers=headers))
    with slow.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_bug_in_the_database_layer_is_still_a_500(world, app):
    """Only "not now" errors become 503: a constraint the code should have checked stays a 500."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken():
        db.session.execute(text("SELECT * FROM no_such_table"))
        return {}

    app.add_url_rule("/api/v1/test-broken", "test_broken", broken)
    r = world.client.get("/api/v1/test-broken")
    assert r.status_code == 500 and r.get_json()["error"] == "internal_error"


@sqlite_only
def test_a_database_that_cannot_be_opened_gives_503_pages_and_problems_never_500(world, app, tmp_path):
    """The database file cannot be opened at all (its folder is gone, or is read-only so SQLite cannot
    make the -wal and -shm files): the error comes at connect, and the page that says so must not itself
    need the database (the signed-in user is looked up for every page), or the 503 turns into a 500."""
    world.user("clerk", "clerk")
    signed_in = app.test_client()
    assert signed_in.post("/login", data={"username": "clerk", "password": "secret-pass"}).status_code == 302
    token = world.token("admin")
    gone = tmp_path / "gone" / "instance"
    broken = with_clock(create_app(base_config(tmp_path / "broken", f"sqlite:///{gone / 'timebank.sqlite'}")), app)
    broken.config["PROPAGATE_EXCEPTIONS"] = False  # what a server does: answer, not raise
    page_client = broken.test_client()
    page_client.set_cookie("session", signed_in.get_cookie("session").value)
    for path in ("/", "/login"):
        r = page_client.get(path)
        assert r.status_code == 503, (path, r.status_code, r.get_data(as_text=True)[:300])
        assert r.mimetype == "text/html" and "503" in r.get_data(as_text=True)
        assert r.headers["Retry-After"]
    api = broken.test_client()
    assert_unavailable(api.get("/api/v1/ledger/verify", headers={"Authorization": f"Bearer {token}"}))
    assert_unavailable(api.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"}))
    assert not gone.exists()
    with broken.app_context():
        db.engine.dispose()
