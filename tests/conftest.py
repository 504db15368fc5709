"""Fixtures: each test gets a fresh database at the newest migration.

SQLite (default): the migrations run once into a template file that every test copies.
PostgreSQL (``TIMEBANK_TEST_DATABASE_URL=postgresql+psycopg://...``): the migrations run once into
an empty schema and every test starts from emptied tables.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from timebank import create_app
from timebank.core.clock import FrozenClock

TEST_DB_URL = os.environ.get("TIMEBANK_TEST_DATABASE_URL")
IS_POSTGRES = bool(TEST_DB_URL and TEST_DB_URL.startswith("postgresql"))
#: A Monday morning in Shanghai: 2026-03-02 10:00 +08:00.
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


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
    engine = create_engine(TEST_DB_URL)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        # Replica role skips the ledger's triggers, which refuse TRUNCATE to everyone else.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
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
def clock():
    return FrozenClock(START)


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


class World:
    """Builds people and logins quickly through the operations layer (not HTTP)."""

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self._tokens = {}

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

    def user(self, username, role, community_code="hongxing", password="secret-pass", resident_id=None):
        from timebank.core.extensions import db
        from timebank.people.operations import community_by_code, create_user

        with self.app.app_context():
            cid = community_by_code(community_code).id if community_code else None
            u = create_user(username, password, role, community_id=cid, resident_id=resident_id)
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
