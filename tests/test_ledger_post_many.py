"""``ledger.post_many`` writes what ``ledger.post`` would, one after another: the same hash chain, the
same balances, the same idempotency; and nothing at all when one of them is refused."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

import ledger
from ledger.models import Transaction
from timebank.core.extensions import db

MOMENT = datetime(2026, 3, 2, 2, 0)


def _accounts():
    ledger.open_account(db.session, "mint", "points", allow_negative=True)
    for name in ("a", "b", "c"):
        ledger.open_account(db.session, name, "points")


def _requests():
    return [
        ledger.Request([ledger.Leg("mint", -50), ledger.Leg("a", 50)], kind="opening_balance", memo="一",
                       reference="r", idempotency_key="k-a"),
        ledger.Request([ledger.Leg("a", -30), ledger.Leg("b", 30)], kind="transfer", actor="x"),
        ledger.Request([ledger.Leg("mint", -7), ledger.Leg("c", 4), ledger.Leg("b", 3)], kind="grant",
                       category="volunteer", idempotency_key="k-c"),
    ]


def _chain():
    return db.session.execute(select(Transaction.id, Transaction.hash, Transaction.leaf_hash, Transaction.kind)
                              .order_by(Transaction.id)).all()


def test_post_many_writes_the_chain_that_posting_one_by_one_writes(ctx):
    _accounts()
    ledger.post(db.session, [ledger.Leg("mint", -1), ledger.Leg("c", 1)], kind="grant", now=MOMENT)
    db.session.flush()
    savepoint = db.session.begin_nested()
    for request in _requests():
        ledger.post(db.session, request.legs, kind=request.kind, category=request.category, memo=request.memo,
                    actor=request.actor, reference=request.reference, idempotency_key=request.idempotency_key,
                    now=MOMENT)
    one_by_one = _chain(), ledger.balances(db.session, ["mint", "a", "b", "c"])
    savepoint.rollback()
    posted = ledger.post_many(db.session, _requests(), now=MOMENT)
    assert (_chain(), ledger.balances(db.session, ["mint", "a", "b", "c"])) == one_by_one
    assert [p.id for p in posted] == [2, 3, 4] and posted[-1].balances == {"mint": -58, "c": 5, "b": 33}
    assert ledger.verify(db.session).ok
    db.session.commit()


def test_post_many_replays_used_keys_and_refuses_a_key_used_for_another_request(ctx):
    _accounts()
    first = ledger.post_many(db.session, _requests()[:1])
    again = ledger.post_many(db.session, _requests())
    assert again[0].replayed and again[0].id == first[0].id and not again[1].replayed
    assert ledger.balance(db.session, "a") == 20  # the 50 once, less the 30 moved on
    other = ledger.Request([ledger.Leg("mint", -51), ledger.Leg("a", 51)], kind="opening_balance", memo="一",
                           reference="r", idempotency_key="k-a")
    with pytest.raises(ledger.IdempotencyKeyReused):
        ledger.post_many(db.session, [other])
    with pytest.raises(ValueError):
        ledger.post_many(db.session, [_requests()[0], _requests()[0]])


def test_one_refused_transaction_writes_none_of_them(ctx):
    _accounts()
    count = db.session.execute(select(func.count()).select_from(Transaction)).scalar_one()
    overdraw = ledger.Request([ledger.Leg("b", -31), ledger.Leg("c", 31)], kind="transfer")
    with pytest.raises(ledger.InsufficientFunds):
        ledger.post_many(db.session, [*_requests()[:2], overdraw])  # b holds 30 by then, not 31
    with pytest.raises(ledger.UnbalancedTransaction):
        ledger.post_many(db.session, [_requests()[0], ledger.Request([ledger.Leg("mint", -1), ledger.Leg("a", 2)],
                                                                     kind="x")])
    with pytest.raises(ledger.UnknownAccount):
        ledger.post_many(db.session, [ledger.Request([ledger.Leg("mint", -1), ledger.Leg("nobody", 1)], kind="x")])
    assert db.session.execute(select(func.count()).select_from(Transaction)).scalar_one() == count
    assert ledger.balances(db.session, ["a", "b", "c"]) == {"a": 0, "b": 0, "c": 0}
