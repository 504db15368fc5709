"""The ledger core: balanced postings, wallets, idempotency, reversals, the chain, database guards."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

import ledger
from conftest import IS_POSTGRES
from ledger import Leg
from timebank.core import accounts, database, ledgering
from timebank.core.extensions import db


@pytest.fixture
def books(ctx):
    s = db.session
    ledger.open_account(s, "issuer", "points", allow_negative=True)
    ledger.open_account(s, "alice", "points")
    ledger.open_account(s, "bob", "points")
    ledger.open_account(s, "pool", "minutes", allow_negative=True)
    ledger.open_account(s, "carol", "minutes")
    s.commit()
    return s


def give(s, to, amount, **kw):
    return ledger.post(s, [Leg("issuer", -amount), Leg(to, amount)], kind="grant", **kw)


def test_post_moves_value_and_chains(books):
    s = books
    t1 = give(s, "alice", 30, memo="志愿服务")
    t2 = ledger.post(s, [Leg("alice", -10), Leg("bob", 10)], kind="transfer")
    s.commit()
    assert (t1.id, t2.id) == (1, 2)
    assert t2.prev_hash == t1.hash and t1.prev_hash == "00" * 32
    assert ledger.balances(s, ["alice", "bob", "issuer"]) == {"alice": 20, "bob": 10, "issuer": -30}
    report = ledger.verify(s)
    assert report.ok and report.size == 2 and report.head_hash == t2.hash


@pytest.mark.parametrize("legs", [
    [Leg("issuer", -5), Leg("alice", 4)],
    [Leg("issuer", -5)],
    [Leg("issuer", 0), Leg("alice", 0)],
    [Leg("issuer", -5.0), Leg("alice", 5.0)],
    [Leg("issuer", True), Leg("alice", -1)],
    [Leg("issuer", -5), Leg("carol", 5)],  # points and minutes do not mix
])
def test_refuses_unbalanced_or_non_integer(books, legs):
    with pytest.raises(ledger.UnbalancedTransaction):
        ledger.post(books, legs, kind="grant")
    books.rollback()
    assert ledger.verify(books).size == 0


def test_unknown_account(books):
    with pytest.raises(ledger.UnknownAccount):
        ledger.post(books, [Leg("issuer", -1), Leg("nobody", 1)], kind="grant")


def test_refuses_a_unit_the_application_did_not_declare(books):
    with pytest.raises(ledger.UnknownUnit) as info:
        ledger.open_account(books, "dave", "hours")
    assert info.value.declared == ("points", "minutes")
    books.rollback()
    with pytest.raises(ledger.UnknownAccount):  # nothing was written
        ledger.balance(books, "dave")


def test_units_are_declared_once_per_process(ctx):
    ledgering.configure()  # again, with the same units: fine
    with pytest.raises(ValueError):
        ledger.configure(units=("points", "minutes", "hours"))
    with pytest.raises(ValueError):
        ledger.configure(units=("Points; DROP TABLE x",))
    assert ledger.config.settings.units == ("points", "minutes")


def test_writers_take_the_lock_the_application_gives(books):
    taken = []

    def recording_lock(connection):
        assert isinstance(connection, Connection)
        taken.append(connection.dialect.name)
        database.ledger_writer_lock(connection)

    ledger.configure(units=accounts.UNITS, writer_lock=recording_lock)
    try:
        give(books, "alice", 3)
        books.commit()
        with db.engine.connect() as conn, conn.begin():  # a Core connection works as a Session does
            ledger.post(conn, [Leg("alice", -1), Leg("bob", 1)], kind="transfer")
    finally:
        ledgering.configure()
    assert len(taken) == 2
    assert ledger.balances(books, ["alice", "bob"]) == {"alice": 2, "bob": 1}


def test_refuses_what_is_neither_connection_nor_session(books):
    with pytest.raises(TypeError):
        ledger.post(db.engine, [Leg("issuer", -1), Leg("alice", 1)], kind="grant")


def test_wallet_never_below_zero(books):
    s = books
    give(s, "alice", 5)
    s.commit()
    with pytest.raises(ledger.InsufficientFunds) as info:
        ledger.post(s, [Leg("alice", -6), Leg("bob", 6)], kind="transfer")
    assert info.value.balance == 5
    s.rollback()
    assert ledger.balance(s, "alice") == 5


def test_idempotent_retry_and_reuse(books):
    s = books
    first = give(s, "alice", 7, idempotency_key="claim-1")
    s.commit()
    again = give(s, "alice", 7, idempotency_key="claim-1")
    assert again.replayed and again.id == first.id and again.hash == first.hash
    s.commit()
    assert ledger.balance(s, "alice") == 7
    with pytest.raises(ledger.IdempotencyKeyReused):
        give(s, "alice", 8, idempotency_key="claim-1")
    # The key is read with the accounts in one statement; naming no known account does not hide it.
    with pytest.raises(ledger.IdempotencyKeyReused):
        give(s, "nobody", 7, idempotency_key="claim-1")
    with pytest.raises(ledger.UnknownAccount):
        give(s, "nobody", 7, idempotency_key="claim-2")
    s.rollback()
    # A new key with known accounts posts; the same again replays it.
    second = give(s, "bob", 3, idempotency_key="claim-2")
    assert not second.replayed and give(s, "bob", 3, idempotency_key="claim-2").id == second.id


def test_reversal_rules(books):
    s = books
    tx = give(s, "alice", 9)
    rev = ledger.reverse(s, tx.id, memo="mistake")
    s.commit()
    assert rev.reverses_id == tx.id and ledger.balance(s, "alice") == 0
    with pytest.raises(ledger.AlreadyReversed):
        ledger.reverse(s, tx.id)
    s.rollback()
    with pytest.raises(ledger.NotReversible):
        ledger.reverse(s, rev.id)
    s.rollback()
    assert ledger.verify(s).ok


def test_reversal_that_would_overdraw_is_refused(books):
    s = books
    tx = give(s, "alice", 9)
    ledger.post(s, [Leg("alice", -9), Leg("bob", 9)], kind="transfer")
    s.commit()
    with pytest.raises(ledger.InsufficientFunds):
        ledger.reverse(s, tx.id)


def _raw(s, sql, **params):
    s.execute(text(sql), params)
    s.commit()


@pytest.mark.parametrize("sql", [
    "UPDATE ledger_postings SET amount = 1000",
    "DELETE FROM ledger_postings",
    "UPDATE ledger_transactions SET memo = 'edited'",
    "DELETE FROM ledger_transactions",
    "DELETE FROM ledger_accounts WHERE code = 'bob'",
    "UPDATE ledger_accounts SET allow_negative = TRUE WHERE code = 'alice'",
])
def test_database_refuses_changes(books, sql):
    give(books, "alice", 3)
    books.commit()
    with pytest.raises(DBAPIError):
        _raw(books, sql)
    books.rollback()
    assert ledger.verify(books).ok


@pytest.mark.skipif(not IS_POSTGRES, reason="TRUNCATE exists on PostgreSQL only")
def test_postgres_refuses_truncate(books):
    give(books, "alice", 3)
    books.commit()
    with pytest.raises(DBAPIError):
        _raw(books, "TRUNCATE ledger_postings CASCADE")


def test_database_refuses_unbalanced_rows_written_directly(books):
    s = books
    alice = s.execute(text("SELECT id FROM ledger_accounts WHERE code = 'alice'")).scalar()
    issuer = s.execute(text("SELECT id FROM ledger_accounts WHERE code = 'issuer'")).scalar()
    s.execute(text("INSERT INTO ledger_postings (transaction_id, account_id, amount, unit) "
                   "VALUES (1, :a, 50, 'points'), (1, :i, -40, 'points')"), {"a": alice, "i": issuer})
    with pytest.raises(DBAPIError):
        s.execute(text("INSERT INTO ledger_transactions (id, kind, memo, created_at, leaf_hash, prev_hash, hash) "
                       "VALUES (1, 'forged', '', '2026-01-01 00:00:00', 'x', 'y', 'z')"))
        s.commit()
    s.rollback()
    # Postings with no transaction row never commit (the deferred foreign key).
    s.execute(text("INSERT INTO ledger_postings (transaction_id, account_id, amount, unit) "
                   "VALUES (99, :a, 5, 'points'), (99, :i, -5, 'points')"), {"a": alice, "i": issuer})
    with pytest.raises(DBAPIError):
        s.commit()
    s.rollback()
    assert ledger.balance(s, "alice") == 0


def test_database_refuses_negative_wallet_written_directly(books):
    s = books
    alice = s.execute(text("SELECT id FROM ledger_accounts WHERE code = 'alice'")).scalar()
    with pytest.raises(DBAPIError):
        s.execute(text("INSERT INTO ledger_postings (transaction_id, account_id, amount, unit) "
                       "VALUES (1, :a, -5, 'points')"), {"a": alice})
    s.rollback()


def test_verify_names_first_altered_transaction(books):
    s = books
    for n in range(5):
        give(s, "alice", n + 1)
    s.commit()
    # Someone edits the database behind the application's back (dropping the guard first).
    if IS_POSTGRES:
        _raw(s, "ALTER TABLE ledger_transactions DISABLE TRIGGER USER")
        _raw(s, "UPDATE ledger_transactions SET memo = 'forged' WHERE id = 3")
        _raw(s, "ALTER TABLE ledger_transactions ENABLE TRIGGER USER")
    else:
        _raw(s, "DROP TRIGGER ledger_transactions_no_update")
        _raw(s, "UPDATE ledger_transactions SET memo = 'forged' WHERE id = 3")
    report = ledger.verify(s)
    assert not report.ok and report.first_bad_transaction == 3


def test_verify_detects_cached_balance_tampering(books):
    give(books, "alice", 4)
    books.commit()
    _raw(books, "UPDATE ledger_accounts SET balance = 400 WHERE code = 'alice'")
    report = ledger.verify(books)
    assert not report.ok
    assert any("alice" in p["problem"] for p in report.problems)
    assert ledger.replay_balances(books)["alice"] == 4
    assert ledger.rebuild_balances(books) == {"alice": (400, 4)}
    books.commit()
    assert ledger.balance(books, "alice") == 4 and ledger.verify(books).ok
    assert ledger.rebuild_balances(books) == {}


def test_eight_threads_spend_from_one_wallet(app):
    """Exactly floor(balance / amount) spends succeed; nobody sees "database is locked"."""
    with app.app_context():
        s = db.session
        ledger.open_account(s, "issuer", "points", allow_negative=True)
        ledger.open_account(s, "wallet", "points")
        ledger.open_account(s, "shop", "points", allow_negative=True)
        give(s, "wallet", 100)
        s.commit()
    amount, attempts_each, threads = 7, 5, 8
    outcomes, errors = [], []
    barrier = threading.Barrier(threads)

    def spender():
        with app.app_context():
            barrier.wait()
            for _ in range(attempts_each):
                try:
                    ledger.post(db.session, [Leg("wallet", -amount), Leg("shop", amount)], kind="spend")
                    db.session.commit()
                    outcomes.append("ok")
                except ledger.InsufficientFunds:
                    db.session.rollback()
                    outcomes.append("refused")
                except Exception as exc:  # anything else is a failure of the test
                    db.session.rollback()
                    errors.append(repr(exc))
            db.session.remove()

    workers = [threading.Thread(target=spender) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert outcomes.count("ok") == 100 // amount
    assert outcomes.count("refused") == threads * attempts_each - 100 // amount
    with app.app_context():
        assert ledger.balance(db.session, "wallet") == 100 % amount
        assert ledger.verify(db.session).ok


def test_concurrent_retries_with_one_key_post_once(app):
    with app.app_context():
        s = db.session
        ledger.open_account(s, "issuer", "points", allow_negative=True)
        ledger.open_account(s, "alice", "points")
        s.commit()
    ids, errors = [], []
    barrier = threading.Barrier(6)

    def retry():
        with app.app_context():
            barrier.wait()
            try:
                tx = give(db.session, "alice", 5, idempotency_key="same")
                db.session.commit()
                ids.append(tx.id)
            except Exception as exc:
                db.session.rollback()
                errors.append(repr(exc))
            db.session.remove()

    workers = [threading.Thread(target=retry) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == [] and set(ids) == {1} and len(ids) == 6
    with app.app_context():
        assert ledger.balance(db.session, "alice") == 5
