"""A failure at COMMIT (a full disk, an I/O error on the flush, a read-only file system, PostgreSQL
dying at COMMIT) answers 503 problem+json ``service_unavailable``, never 500, and a retry of the
same request with the same Idempotency-Key then answers what really happened: the write done once.

The failure is injected where the driver commits (``dialect.do_commit``), and, for the sale on
PostgreSQL, whose ``COMMIT`` goes in one message with its answer's record
(:func:`timebank.core.database.write_and_commit`), there too; so everything above it (the request's
boundary, the error handlers, the idempotency records) runs as it does in production. Two cases: the
commit fails before anything was written (the retry does the work), and the commit went through but
its answer was lost (the retry replays the stored answer)."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3

import pytest
from sqlalchemy import create_engine, event, func, select, text

from conftest import IS_POSTGRES, TEST_DB_URL
from faults_support import sqlite_path
from timebank.core import accounts
from timebank.core.database import commits_with_last_write
from timebank.core.extensions import db
from timebank.shop.models import Redemption


def _driver_failure():
    if IS_POSTGRES:
        import psycopg

        return psycopg.OperationalError("server closed the connection unexpectedly")
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode, error.sqlite_errorname = 10, "SQLITE_IOERR"
    return error


class _FailingCommit:
    """Make the next commit of the app's engine fail, before or after the real commit."""

    def __init__(self, app, monkeypatch, after: bool):
        self.armed = False
        with app.app_context():
            dialect = db.engine.dialect
        real = dialect.do_commit

        def do_commit(dbapi_connection):
            if not self.armed:
                return real(dbapi_connection)
            self.armed = False
            if after:
                real(dbapi_connection)
            raise _driver_failure()

        monkeypatch.setattr(dialect, "do_commit", do_commit)
        # The PostgreSQL sale commits with its answer's record, in one message.
        from timebank.core import http

        real_together = http.write_and_commit

        def write_and_commit(session, sql, params):
            if not self.armed or not commits_with_last_write(session):
                return real_together(session, sql, params)  # else do_commit fails, later
            self.armed = False
            if after:
                real_together(session, sql, params)
            raise _driver_failure()

        monkeypatch.setattr(http, "write_and_commit", write_and_commit)


def _shop(world):
    world.user("clerk", "clerk")
    household = world.household()
    world.grant(household, 50)
    item = world.call("POST", "/api/v1/items", "clerk",
                      json={"community_code": "hongxing", "sku": "soap", "name": "肥皂", "price_points": 3}
                      ).get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "clerk",
                      json={"item_id": item, "quantity": 5, "reason": "donation", "donor": "华联"}).status_code == 201
    with world.app.app_context():
        from timebank.people.models import Household

        code = db.session.get(Household, household).member_code
    return household, {"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}


def _sales(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Redemption))


@pytest.mark.parametrize("after", [False, True], ids=["commit-refused", "answer-lost"])
def test_a_failed_commit_is_503_and_the_retry_with_the_key_tells_the_truth(world, app, monkeypatch, after):
    household, sale = _shop(world)
    failing = _FailingCommit(app, monkeypatch, after)
    headers = {"Idempotency-Key": "sale-1"}
    world.token("clerk")  # logged in before the fault
    failing.armed = True
    first = world.call("POST", "/api/v1/redemptions", "clerk", json=sale, headers=headers)
    assert first.status_code == 503, (first.status_code, first.get_data(as_text=True))
    assert first.mimetype == "application/problem+json"
    body = first.get_json()
    assert body["error"] == "service_unavailable" and int(first.headers["Retry-After"]) > 0
    assert "Idempotency-Key" in body["detail"]  # it tells the client how to learn the outcome
    assert _sales(app) == (1 if after else 0)

    retry = world.call("POST", "/api/v1/redemptions", "clerk", json=sale, headers=headers)
    assert retry.status_code == 201, retry.get_json()
    assert retry.headers.get("Idempotent-Replayed") == ("true" if after else None)
    assert retry.get_json()["balance_after"] == 47
    again = world.call("POST", "/api/v1/redemptions", "clerk", json=sale, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert _sales(app) == 1
    assert world.balance(accounts.household_points(household)) == 47


@pytest.mark.parametrize("after", [False, True], ids=["commit-refused", "answer-lost"])
def test_a_failed_commit_of_a_page_is_the_503_page(world, app, monkeypatch, after):
    """A browser gets the 503 page in the site's words, not a 500, whatever the commit did."""
    world.user("committee", "committee")
    failing = _FailingCommit(app, monkeypatch, after)
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 200
    failing.armed = True
    r = client.post("/login", data={"username": "committee", "password": "secret-pass"},
                    headers={"Accept": "text/html"})
    # The login writes nothing that needs a commit on every database: either it answers as usual,
    # or, if the commit ran and failed, the 503 page. Never a 500.
    assert r.status_code != 500


def test_a_failed_commit_of_a_write_without_a_key_is_still_503(world, app, monkeypatch):
    failing = _FailingCommit(app, monkeypatch, after=False)
    world.token("admin")
    failing.armed = True
    r = world.call("POST", "/api/v1/households", "admin",
                   json={"community_code": "hongxing", "name": "王家", "address": "2号"})
    assert r.status_code == 503 and r.get_json()["error"] == "service_unavailable"
    r = world.call("POST", "/api/v1/households", "admin",
                   json={"community_code": "hongxing", "name": "王家", "address": "2号"})
    assert r.status_code == 201


def _sale_once_after_a_real_fault(world, app, fault):
    """POST a sale whose COMMIT meets ``fault`` (a context manager); it must be a 503, and the retry
    with the same key, once the fault is gone, sells exactly once."""
    household, sale = _shop(world)
    headers = world.headers("clerk", **{"Idempotency-Key": "real-fault"})
    with fault():
        first = world.client.post("/api/v1/redemptions", headers=headers, json=sale)
    assert first.status_code == 503, (first.status_code, first.get_data(as_text=True))
    assert first.get_json()["error"] == "service_unavailable"
    retry = world.client.post("/api/v1/redemptions", headers=headers, json=sale)
    assert retry.status_code == 201, retry.get_json()
    assert world.client.post("/api/v1/redemptions", headers=headers, json=sale).status_code == 201
    assert _sales(app) == 1
    assert world.balance(accounts.household_points(household)) == 47


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite's WAL file; PostgreSQL dying at COMMIT is tested below")
def test_a_disk_that_fills_up_at_commit_is_503(world, app):
    """The disk is full exactly when the sale's pages go to the WAL, which in WAL mode is at COMMIT
    (the process may not grow any file by more than 8 KiB: the kernel answers EFBIG, as a full disk
    answers ENOSPC, and SQLite reports SQLITE_FULL)."""
    from contextlib import contextmanager

    wal = sqlite_path(app) + "-wal"

    @contextmanager
    def full_disk():
        world.token("clerk")
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 8192, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)

    _sale_once_after_a_real_fault(world, app, full_disk)


@pytest.mark.skipif(not IS_POSTGRES, reason="a PostgreSQL backend terminated at COMMIT")
def test_postgres_dying_at_commit_is_503(world, app):
    """Just before the sale's COMMIT, another session terminates the backend serving it: the COMMIT
    meets a closed connection."""
    from contextlib import contextmanager

    @contextmanager
    def dying_server():
        world.token("clerk")
        killer = create_engine(TEST_DB_URL)
        with app.app_context():
            engine = db.engine

        def terminate(conn):
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                other.commit()

        # The PostgreSQL sale commits with its answer's record, in one message: terminated before it.
        from timebank.core import http

        real_together = http.write_and_commit

        def write_and_commit(session, sql, params):
            terminate(session.connection())
            return real_together(session, sql, params)

        event.listen(engine, "commit", terminate)
        http.write_and_commit = write_and_commit
        try:
            yield
        finally:
            http.write_and_commit = real_together
            event.remove(engine, "commit", terminate)
            killer.dispose()

    _sale_once_after_a_real_fault(world, app, dying_server)
