"""Fixtures: each test gets a fresh database at the newest migration.

SQLite (default): the migrations run once into a template file that every test copies.
PostgreSQL (``TIMEBANK_TEST_DATABASE_URL=postgresql+psycopg://...``): the migrations run once into
an empty schema and every test starts from emptied tables.

Hypothesis profiles (how many examples the property tests and the state machines run):
``HYPOTHESIS_PROFILE=ci|dev`` chooses one; without it ``ci`` is used when ``CI=true`` and ``dev``
otherwise. Tests that name their own ``max_examples`` keep it. Examples are drawn afresh on every
run; a failure prints the steps (and a ``@reproduce_failure`` blob) that replay it.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from timebank import create_app
from timebank.core.clock import FrozenClock

TEST_DB_URL = os.environ.get("TIMEBANK_TEST_DATABASE_URL")
IS_POSTGRES = bool(TEST_DB_URL and TEST_DB_URL.startswith("postgresql"))
#: A Monday morning in Shanghai: 2026-03-02 10:00 +08:00.
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

# ``max_examples`` is the number of runs of a state machine, ``stateful_step_count`` the most steps
# in one run. The two state machines cost about the same per step; with ci they take some 2 minutes
# on SQLite and 4 on PostgreSQL on two cores, which keeps the whole suite near 7 and 10 minutes. CI
# runs a clean clone, so it keeps no example database; a failure there is replayed from the printed
# steps or blob.
settings.register_profile("ci", max_examples=150, stateful_step_count=35, print_blob=True, database=None)
settings.register_profile("dev", max_examples=50, stateful_step_count=30, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev"))


def base_config(instance_path, uri) -> dict:
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(instance_path),
        "SQLALCHEMY_DATABASE_URI": uri,
        "SECRET_KEY": "test-secret",
        "TIMEBANK_CHEAP_PASSWORD_HASHING": True,
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "TIMEBANK_SQLITE_BUSY_TIMEOUT_MS": 30_000,
        # Background exports: the tests run them (timebank.audit.export_runs.run), or ask for a process.
        "TIMEBANK_EXPORT_RUNNER": "none",
    }


def _migrate(app):
    from timebank.cli import init_db

    with app.app_context():
        init_db()
        from timebank.core.extensions import db

        db.engine.dispose()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    if IS_POSTGRES:
        engine = create_engine(TEST_DB_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        _migrate(create_app(base_config(tmp_path_factory.mktemp("pginstance"), TEST_DB_URL)))
        return None
    folder = tmp_path_factory.mktemp("template")
    path = folder / "timebank.sqlite"
    _migrate(create_app(base_config(folder, f"sqlite:///{path}")))
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path


def _empty_postgres():
    """Empty every table but alembic_version and restart the sequences. DELETE rather than TRUNCATE,
    which makes new files for every table: on tables holding a few rows DELETE takes some 50 ms
    where TRUNCATE took 400, and every test (and every run of a state machine) starts here."""
    engine = create_engine(TEST_DB_URL, poolclass=NullPool)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        # Replica role skips the triggers (the ledger's refuse DELETE) and the foreign-key checks.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.exec_driver_sql("; ".join(f'DELETE FROM "{t}"' for t in tables))
        conn.execute(text("SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                          " FROM pg_sequences WHERE schemaname = 'public'"))
    engine.dispose()


@pytest.fixture
def db_uri(template_db, tmp_path):
    if IS_POSTGRES:
        _empty_postgres()
        return TEST_DB_URL
    target = tmp_path / "timebank.sqlite"
    shutil.copy(template_db, target)
    return f"sqlite:///{target}"


@pytest.fixture
def reset_database(db_uri, template_db):
    """A function that empties the test's database again, back to the newest migration, for tests
    that need a fresh one several times (each run of a state machine). It closes the app's
    connections first; call it outside any app context of that app."""

    def reset(app):
        from timebank.core.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if IS_POSTGRES:
            _empty_postgres()
            return
        path = Path(db_uri.removeprefix("sqlite:///"))
        for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copy(template_db, path)

    return reset


@pytest.fixture
def clock():
    return FrozenClock(START)


@pytest.fixture
def make_app(db_uri, tmp_path, clock):
    """A function making more apps on the test's database with config of their own (CSRF on, rate
    limits on, ...); each gets a fresh instance folder, and the limiter starts from empty counts."""
    from timebank.core.extensions import db, limiter

    made = []

    def make(**config):
        app = create_app(base_config(tmp_path / f"app{len(made)}", db_uri) | config)
        app.extensions["timebank.core.clock"] = clock
        if config.get("RATELIMIT_ENABLED"):  # one limiter per process: start from empty counts
            with app.app_context():
                limiter.reset()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(db_uri, tmp_path, clock):
    app = create_app(base_config(tmp_path, db_uri))
    app.extensions["timebank.core.clock"] = clock
    yield app
    from timebank.core.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def page_login(app, username, password="secret-pass"):
    """A test client of ``app`` logged in to the pages as ``username``."""
    client = app.test_client()
    r = client.post("/login", data={"username": username, "password": password})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


def main_text(response) -> str:
    """The words of a page's ``<main>``, tags taken out and spaces folded."""
    main = response.get_data(as_text=True).split("<main", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


class World:
    """Builds people and logins quickly through the operations layer (not HTTP)."""

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self._tokens = {}
        self._phones = {}

    def community(self, code="hongxing", name="红星社区", **kw):
        from timebank.core.extensions import db
        from timebank.people.operations import create_community

        with self.app.app_context():
            c = create_community(code, name, **kw)
            db.session.commit()
            return c.id

    def household(self, community_code="hongxing", name="张家", color="green", grid="1"):
        from timebank.core.extensions import db
        from timebank.people.operations import community_by_code, create_household

        with self.app.app_context():
            h = create_household(community_by_code(community_code), name, "幸福路1号", grid, color)
            db.session.commit()
            return h.id

    def resident(self, household_id, name="张三", phone=None, password=None):
        from timebank.core.extensions import db
        from timebank.people.models import Household
        from timebank.people.operations import create_resident

        with self.app.app_context():
            r = create_resident(db.session.get(Household, household_id), name, phone, password)
            db.session.commit()
            return r.id

    def user(self, username, role, community_code="hongxing", password="secret-pass", resident_id=None,
             phone=None, person=True):
        """A login. Staff are people: a staff login without ``phone`` or ``resident_id`` gets a phone of
        its own (one per username, 199...), unless ``person=False`` (a login without a person)."""
        from timebank.core.extensions import db
        from timebank.core.users import STAFF_ROLES
        from timebank.people.operations import community_by_code, create_user

        if person and role in STAFF_ROLES and phone is None and resident_id is None:
            self._phones.setdefault(username, f"199{len(self._phones) + 1:08d}")
            phone = self._phones[username]
        with self.app.app_context():
            cid = community_by_code(community_code).id if community_code else None
            u = create_user(username, password, role, community_id=cid, resident_id=resident_id, phone=phone)
            db.session.commit()
            return u.id

    def token(self, username, password="secret-pass"):
        if username not in self._tokens:
            r = self.client.post("/api/v1/auth/token", json={"username": username, "password": password})
            assert r.status_code == 200, r.get_json()
            self._tokens[username] = r.get_json()["access_token"]
        return self._tokens[username]

    def headers(self, username, **extra):
        return {"Authorization": f"Bearer {self.token(username)}", **extra}

    def call(self, method, url, username=None, json=None, headers=None, **kw):
        h = dict(headers or {})
        if username:
            h.update(self.headers(username))
        return self.client.open(url, method=method, json=json, headers=h, **kw)

    def grant(self, household_id, points, category="volunteer"):
        """Give a household points straight from the community's issuance account (test set-up)."""
        import ledger
        from timebank.core import accounts
        from timebank.core.extensions import db
        from timebank.people.models import Household

        with self.app.app_context():
            h = db.session.get(Household, household_id)
            ledger.post(db.session, [
                ledger.Leg(accounts.issuance_points(h.community_id, category), -points),
                ledger.Leg(accounts.household_points(household_id), points)],
                kind="grant", category=category, memo="test set-up", actor="test")
            db.session.commit()

    def balance(self, account):
        import ledger
        from timebank.core.extensions import db

        with self.app.app_context():
            return ledger.balance(db.session, account)


@pytest.fixture
def world(app, client):
    w = World(app, client)
    w.community()
    w.user("admin", "admin", community_code=None)
    return w


def close_month(world, clock, community_code, month, *signers):
    """Close ``month`` while the test's clock is still in it. A month can be closed only after it has
    ended (409 month_not_ended), so the clock is moved past its end for the signing and back: the
    state a server leaves whose clock ran ahead. The jobs must skip what that refuses, whatever the
    cause."""
    then = clock.now()
    year, number = map(int, month.split("-"))
    clock.set(datetime(year + number // 12, number % 12 + 1, 1, 0, 5, tzinfo=timezone(timedelta(hours=8))))
    world._tokens.clear()
    for who in signers:
        r = world.call("POST", "/api/v1/month-closes", who, json={"community_code": community_code, "month": month})
        assert r.status_code == 201, r.get_json()
    assert r.get_json()["status"] == "closed"
    clock.set(then)
    world._tokens.clear()
