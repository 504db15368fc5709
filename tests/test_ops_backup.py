"""``timebank backup`` while the ledger is being written, ``timebank restore`` into a fresh instance, and
``timebank verify`` on the result: the restored ledger is a prefix of the live one, hash for hash."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import ledger
from conftest import IS_POSTGRES, TEST_DB_URL, base_config
from timebank import create_app
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.people.models import Household


def _chain(app) -> list[tuple[int, str]]:
    with app.app_context():
        rows = db.session.execute(text("SELECT id, hash FROM ledger_transactions ORDER BY id")).all()
        db.session.remove()
        return [tuple(r) for r in rows]


class Writer(threading.Thread):
    """Grants one point at a time through the ledger until told to stop (and a few more after)."""

    def __init__(self, app, household_id, before=20, after=5):
        super().__init__(daemon=True)
        self.app, self.household_id, self.before, self.after = app, household_id, before, after
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.written = 0
        self.error = None

    def run(self):
        try:
            with self.app.app_context():
                h = db.session.get(Household, self.household_id)
                community_id = h.community_id
                extra = 0
                while extra < self.after:
                    ledger.post(db.session, [
                        ledger.Leg(accounts.issuance_points(community_id, "volunteer"), -1),
                        ledger.Leg(accounts.household_points(self.household_id), 1)],
                        kind="grant", category="volunteer", memo=f"during backup {self.written}", actor="test")
                    db.session.commit()
                    self.written += 1
                    if self.written >= self.before:
                        self.ready.set()
                    if self.stop.is_set():
                        extra += 1
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.error = exc
            self.ready.set()


def _backup_while_writing(app, runner, world, target):
    h = world.household()
    world.grant(h, 3)
    writer = Writer(app, h)
    writer.start()
    assert writer.ready.wait(60) and writer.error is None, writer.error
    result = runner.invoke(args=["backup", str(target)])
    writer.stop.set()
    writer.join(60)
    assert writer.error is None, writer.error
    assert result.exit_code == 0, result.output
    return result


def _assert_prefix(restored, live):
    assert len(restored) >= 21  # the set-up grant and the writes made before the backup began
    assert len(restored) < len(live)  # writes went on after it
    assert restored == live[: len(restored)]


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite backup; PostgreSQL has its own test below")
def test_sqlite_backup_while_writing_then_restore_and_verify(app, runner, world, tmp_path):
    target = tmp_path / "backups" / "tb.sqlite"
    result = _backup_while_writing(app, runner, world, target)
    assert "backup written" in result.output
    assert target.stat().st_mode & 0o077 == 0  # only the owner may read a backup
    assert not list(target.parent.glob("*.part"))
    live = _chain(app)

    fresh = tmp_path / "fresh"
    restored_app = create_app(base_config(fresh, f"sqlite:///{fresh / 'timebank.sqlite'}"))
    restored_runner = restored_app.test_cli_runner()
    result = restored_runner.invoke(args=["restore", str(target)])
    assert result.exit_code == 0, result.output
    assert "transactions verify" in result.output
    verified = restored_runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    restored = _chain(restored_app)
    _assert_prefix(restored, live)
    # The restored database works: the app writes on top of it.
    with restored_app.app_context():
        h = db.session.execute(text("SELECT id FROM households")).scalar()
        community_id = db.session.get(Household, h).community_id
        ledger.post(db.session, [ledger.Leg(accounts.issuance_points(community_id, "volunteer"), -2),
                                 ledger.Leg(accounts.household_points(h), 2)], kind="grant", actor="test")
        db.session.commit()
        assert ledger.verify(db.session).ok
        db.session.remove()
        db.engine.dispose()

    # A second restore over the live file is refused without --force ...
    refused = restored_runner.invoke(args=["restore", str(target)])
    assert refused.exit_code != 0 and "--force" in refused.output
    assert len(_chain(restored_app)) == len(restored) + 1
    # ... and with --force it swaps the file, keeping the replaced one beside it.
    forced = restored_runner.invoke(args=["restore", "--force", str(target)])
    assert forced.exit_code == 0, forced.output
    assert _chain(restored_app) == restored
    kept = list(fresh.glob("timebank.sqlite.before-restore-*"))
    assert len(kept) == 1
    with restored_app.app_context():
        db.engine.dispose()


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite files")
def test_restore_refuses_what_is_not_a_timebank_backup(app, runner, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    fresh = tmp_path / "fresh"
    restored_app = create_app(base_config(fresh, f"sqlite:///{fresh / 'timebank.sqlite'}"))
    result = restored_app.test_cli_runner().invoke(args=["restore", str(junk)])
    assert result.exit_code != 0 and "not a SQLite database" in result.output
    assert not (fresh / "timebank.sqlite").exists()


@pytest.mark.slow
@pytest.mark.skipif(not IS_POSTGRES, reason="pg_dump and pg_restore")
def test_postgres_backup_while_writing_then_restore_and_verify(app, runner, world, tmp_path):
    target = tmp_path / "tb.dump"
    _backup_while_writing(app, runner, world, target)
    assert target.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    live = _chain(app)

    url = make_url(TEST_DB_URL)
    scratch = f"{url.database}_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    restored_app = None
    try:
        restored_url = url.set(database=scratch).render_as_string(hide_password=False)
        restored_app = create_app(base_config(tmp_path / "fresh", restored_url))
        restored_runner = restored_app.test_cli_runner()
        result = restored_runner.invoke(args=["restore", str(target)])
        assert result.exit_code == 0, result.output
        assert restored_runner.invoke(args=["verify"]).exit_code == 0
        restored = _chain(restored_app)
        _assert_prefix(restored, live)
        refused = restored_runner.invoke(args=["restore", str(target)])
        assert refused.exit_code != 0 and "--force" in refused.output
        forced = restored_runner.invoke(args=["restore", "--force", str(target)])
        assert forced.exit_code == 0, forced.output
        assert _chain(restored_app) == restored
        # The append-only triggers came back with the data.
        with restored_app.app_context():
            with pytest.raises(Exception, match="append-only"):
                db.session.execute(text("DELETE FROM ledger_transactions"))
            db.session.rollback()
    finally:
        if restored_app is not None:
            with restored_app.app_context():
                db.session.remove()
                db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()
