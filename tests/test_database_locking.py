"""SQLite's two kinds of transaction (timebank.core.database): reading ones, which never wait for a
writer and never write, and writing ones, which take the write lock up front; and when a write
reaches the disk. PostgreSQL has its own locks; the tests that hold on both say so.

The durability tests watch the system calls of a real process with ``strace`` (``-y`` names the file
behind every descriptor): what matters is the order of the WAL's writes, its ``fdatasync`` and the
moment the write is answered or becomes visible, and only the kernel sees all three."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from conftest import IS_POSTGRES
from faults_support import assert_unavailable, sibling_app, sqlite_path
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.shop.models import Redemption

sqlite_only = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's write lock and WAL; PostgreSQL has its own")
ROOT = Path(__file__).resolve().parent.parent


def _strace() -> str:
    found = shutil.which("strace")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("strace is missing (the Makefile installs it)")
        pytest.skip("strace is not installed (make tools)")
    return found


def _run_traced(script: str, *strace_args: str) -> tuple[list[str], str]:
    """Run ``script`` under strace; return the trace's lines and the script's own output."""
    trace = subprocess.run(
        [_strace(), "-f", "-y", "-qq", "-e", "trace=openat,pwrite64,write,fsync,fdatasync", *strace_args,
         "-o", "/dev/stderr", sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert trace.returncode == 0, trace.stdout + trace.stderr[-3000:]
    return trace.stderr.splitlines(), trace.stdout


_WRITE_ONE_HOUSEHOLD = """
    import os, sys
    from conftest import base_config
    from timebank import create_app
    app = create_app(base_config(sys.argv[1] if len(sys.argv) > 1 else {folder!r}, {uri!r}))
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={{"username": "admin", "password": "secret-pass"}}).get_json()
    os.write(1, b"WRITING\\n")
    r = client.post("/api/v1/households", headers={{"Authorization": "Bearer " + token["access_token"]}},
                    json={{"community_code": "hongxing", "name": "wang", "address": "2"}})
    os.write(1, f"ANSWERED {{r.status_code}}\\n".encode())
"""


@sqlite_only
@pytest.mark.parametrize("layout", ["file-link", "folder-link", "plain"])
def test_a_write_is_synced_to_the_real_wal_before_it_is_answered(world, app, tmp_path, layout):
    """Finding: with the database file behind a symbolic link, the commit's flush opened
    ``<link>-wal``, found nothing and returned: no fdatasync at all, and acknowledged sales were lost
    in a power cut. Now SQLite syncs the WAL beside the real file inside COMMIT."""
    real = Path(sqlite_path(app)).resolve()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if layout == "file-link":
        path = tmp_path / "linked.sqlite"
        path.symlink_to(real)
    elif layout == "folder-link":
        (tmp_path / "linked-folder").symlink_to(real.parent)
        path = tmp_path / "linked-folder" / real.name
    else:
        path = real
    script = "import sys; sys.path.insert(0, 'tests')\n" + textwrap.dedent(_WRITE_ONE_HOUSEHOLD).format(
        folder=str(tmp_path / "traced"), uri=f"sqlite:///{path}")
    lines, output = _run_traced(script)
    assert "ANSWERED 201" in output, output
    wal = f"<{real}-wal>"
    written = next(i for i, line in enumerate(lines) if 'write(1' in line and "WRITING" in line)
    answered = next(i for i, line in enumerate(lines) if 'write(1' in line and "ANSWERED" in line)
    frames = [i for i in range(written, answered) if "pwrite64(" in lines[i] and wal in lines[i]]
    assert frames, "the household was not written to the real file's WAL before the answer"
    synced = [i for i in range(frames[-1], answered) if ("fdatasync(" in lines[i] or "fsync(" in lines[i])
              and wal in lines[i] and "= 0" in lines[i]]
    assert synced, "no fsync of the WAL between its last write and the answer:\n" + "\n".join(
        lines[frames[-1]:answered + 1])


@sqlite_only
def test_no_connection_sees_a_write_before_it_is_on_disk(world, app, tmp_path):
    """Finding: with the flush slowed, a retry of the same key on the other worker got its 201 before
    the first worker's flush ended. Here every fdatasync of the writing process takes 1.5 s longer;
    another connection, polling, must not see the row before the writer's flush is over."""
    path = sqlite_path(app)
    watcher = sqlite3.connect(path, isolation_level=None)  # keeps the WAL open all along
    watcher.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
    script = f"""
        import os, time
        from sqlalchemy import text
        from conftest import base_config
        from timebank import create_app
        from timebank.core.extensions import db
        app = create_app(base_config({str(tmp_path / 'slow')!r}, {'sqlite:///' + path!r}))
        with app.app_context():
            db.session.execute(text("SELECT count(*) FROM probe")).scalar_one()
            os.write(1, f"COMMITTING {{time.time()}}\\n".encode())
            db.session.execute(text("INSERT INTO probe VALUES (1)"))
            db.session.commit()
            os.write(1, f"COMMITTED {{time.time()}}\\n".encode())
    """
    writer = subprocess.Popen(
        [_strace(), "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync,fsync",
         "-e", "inject=fdatasync,fsync:delay_exit=1500000", sys.executable, "-c",
         "import sys; sys.path.insert(0, 'tests')\n" + textwrap.dedent(script)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        committing = float(writer.stdout.readline().split()[1])
        seen = None
        while seen is None and writer.poll() is None:
            if watcher.execute("SELECT count(*) FROM probe").fetchone()[0]:
                seen = time.time()
            time.sleep(0.002)
        rest = writer.stdout.read()
    finally:
        writer.wait(timeout=60)
        watcher.close()
    assert writer.returncode == 0 and "COMMITTED" in rest
    assert seen is not None, "the writer ended before the row was seen"
    # The row may only appear once the writer's fdatasync of the WAL is over (1.5 s injected).
    assert seen - committing >= 1.4, f"seen {seen - committing:.3f} s after the commit began"


def _holding_the_write_lock(app):
    holder = sqlite3.connect(sqlite_path(app), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
    holder.execute("INSERT INTO held VALUES (1)")
    return holder


@sqlite_only
def test_readers_never_wait_for_a_writer(world, app, tmp_path):
    """Finding: every transaction, reads included, began BEGIN IMMEDIATE, so with the write lock held
    GETs answered 503 after the busy timeout. Now reads run in plain read transactions."""
    h = world.household()
    world.grant(h, 10)
    headers = world.headers("admin")
    patient = sibling_app(app, tmp_path, "patient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=20_000)
    client = patient.test_client()
    holder = _holding_the_write_lock(app)
    try:
        started = time.monotonic()
        for url in ("/healthz", "/api/v1/me", f"/api/v1/households/{h}", "/api/v1/ledger/checkpoints",
                    "/api/v1/ledger/verify", "/public/hongxing", "/login",
                    "/api/v1/ledger/transactions/export?format=csv"):
            r = client.get(url, headers=headers if url.startswith("/api/") else {})
            body = r.get_data(as_text=True)  # a streamed export is read after the request's commit
            assert r.status_code == 200, (url, r.status_code, body[:300])
        assert body.count("\n") == 4 and body.endswith("#end,2\r\n")  # header, the grant's two postings, trailer
        # A reader that waited would have waited the 20 s busy timeout for each request.
        assert time.monotonic() - started < 15
        assert client.get(f"/api/v1/households/{h}", headers=headers).get_json()["balance_points"] == 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with patient.app_context():
        db.session.remove()
        db.engine.dispose()


@sqlite_only
def test_sqlite_runs_in_wal_mode_with_full_sync(app):
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert db.session.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL
    assert not Path(sqlite_path(app) + ".writers").exists()


def test_a_get_that_writes_is_refused_and_writes_nothing(world, app):
    """GET requests never write (contract, v1.1 Faults): through SQLAlchemy the write is stopped before
    it reaches the database (a bug: 500); on the driver's own cursor the database refuses it."""
    from timebank.core import ledgering  # noqa: F401 - the app is configured

    def orm_write():
        db.session.execute(text("INSERT INTO probe_rows (x) VALUES (1)"))
        return {"ok": True}

    def driver_write():
        cursor = db.session.connection().connection.dbapi_connection.cursor()
        cursor.execute("INSERT INTO probe_rows (x) VALUES (2)")
        return {"ok": True}

    with app.app_context():
        db.session.execute(text("CREATE TABLE probe_rows (x INTEGER)"))
        db.session.commit()
    app.add_url_rule("/test/orm-write", "orm_write", orm_write)
    app.add_url_rule("/test/driver-write", "driver_write", driver_write)
    client = app.test_client()
    assert client.get("/test/orm-write").status_code == 500
    r = client.get("/test/driver-write")
    assert r.status_code in (500, 503), r.status_code
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM probe_rows")).scalar_one() == 0
        # ...while a command or a POST still writes on the same pooled connections.
        db.session.execute(text("INSERT INTO probe_rows (x) VALUES (3)"))
        db.session.commit()
        assert db.session.execute(text("SELECT count(*) FROM probe_rows")).scalar_one() == 1
        db.session.execute(text("DROP TABLE probe_rows"))
        db.session.commit()


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



@sqlite_only
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
        # A read does not wait at all.
        assert client.get("/api/v1/me", headers=headers).status_code == 200
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


@sqlite_only
def test_a_writer_holding_the_write_lock_past_the_timeout_gives_503(world, app, tmp_path):
    household, code, item = _shop(world)
    impatient = sibling_app(app, tmp_path, "impatient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=200)
    client = impatient.test_client()
    headers = world.headers("clerk")
    holder = _holding_the_write_lock(app)  # another worker of this deployment, stuck in its transaction
    try:
        assert_unavailable(client.post("/api/v1/redemptions", headers={**headers, "Idempotency-Key": "k2"},
                                       json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}))
        assert client.get("/api/v1/me", headers=headers).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert world.balance(accounts.household_points(household)) == 50
    assert client.post("/api/v1/redemptions", headers={**headers, "Idempotency-Key": "k2"},
                       json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}).status_code == 201
    with impatient.app_context():
        db.session.remove()
        db.engine.dispose()


@sqlite_only
def test_verify_reads_while_a_writer_holds_the_lock(world, app, tmp_path):
    """``timebank verify`` is a reader: it runs in a read transaction and neither waits for the
    writers nor holds them up."""
    h = world.household()
    world.grant(h, 10)
    patient = sibling_app(app, tmp_path, "patient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=20_000)
    holder = _holding_the_write_lock(app)
    try:
        started = time.monotonic()
        result = patient.test_cli_runner().invoke(args=["verify"])
        assert result.exit_code == 0, result.output
        assert "OK: 1 transactions" in result.output
        assert time.monotonic() - started < 15  # a writer's transaction would have waited 20 s
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with patient.app_context():
        db.session.remove()
        db.engine.dispose()


@sqlite_only
def test_a_waiting_writer_gets_the_lock_when_it_is_given_back(world, app, tmp_path):
    """The wait for SQLite's write lock: a writer waits while another holds it, takes it once it is
    given back (long before its busy timeout), and its connection keeps the configured busy timeout."""
    import threading

    h = world.household()
    headers = world.headers("admin")
    patient = sibling_app(app, tmp_path, "patient", TIMEBANK_SQLITE_BUSY_TIMEOUT_MS=20_000)
    client = patient.test_client()
    holder = _holding_the_write_lock(app)
    released = threading.Event()

    def give_back():
        time.sleep(0.5)
        holder.execute("ROLLBACK")
        released.set()

    threading.Thread(target=give_back).start()
    r = client.post("/api/v1/households", headers=headers,
                    json={"community_code": "hongxing", "name": "李家", "address": "1号"})
    assert released.is_set()  # it waited for the lock...
    assert r.status_code == 201, r.get_json()  # ...and then wrote
    holder.close()
    with patient.app_context():
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar_one() == 20_000
        db.session.remove()
        db.engine.dispose()
    assert world.call("GET", f"/api/v1/households/{h}", "admin").status_code == 200
