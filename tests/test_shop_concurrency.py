"""Tills racing each other: no overspending, no overselling, no double charge, no gap in receipt numbers."""

from __future__ import annotations

import threading

from sqlalchemy import select

import ledger
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.people.models import Household
from timebank.shop import operations as ops
from timebank.shop.models import Redemption

THREADS = 20


def _tokens(world, username, count):
    """One bearer token per thread (each thread logs in on its own)."""
    tokens = []
    for _ in range(count):
        r = world.client.post("/api/v1/auth/token", json={"username": username, "password": "secret-pass"})
        assert r.status_code == 200
        tokens.append(r.get_json()["access_token"])
    return tokens


def _item(world, token, price, stock):
    client = world.app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/v1/items", headers=headers,
                    json={"community_code": "hongxing", "sku": "oil", "name": "食用油", "price_points": price})
    item_id = r.get_json()["id"]
    r = client.post("/api/v1/stock-movements", headers=headers,
                    json={"item_id": item_id, "quantity": stock, "reason": "donation", "donor": "爱心企业"})
    assert r.status_code == 201
    return item_id


def _race(app, requests):
    """Run each (token, body, headers) in its own thread with its own client, all at once."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def till(index, token, body, extra):
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            try:
                r = client.post("/api/v1/redemptions", json=body,
                                headers={"Authorization": f"Bearer {token}", **extra})
                results[index] = (r.status_code, r.get_json())
            except Exception as exc:  # anything unexpected fails the test below
                results[index] = ("exception", repr(exc))
            finally:
                db.session.remove()

    workers = [threading.Thread(target=till, args=(i, *request)) for i, request in enumerate(requests)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def _check_books(app):
    with app.app_context():
        assert ledger.verify(db.session).ok
        assert ops.verify_stock() == []
        numbers = sorted(db.session.execute(select(Redemption.receipt_no)).scalars())
        assert numbers == list(range(1, len(numbers) + 1))  # sequential, no gaps
        return numbers


def _codes(results):
    return sorted(
        "ok" if status == 201 else (body or {}).get("error", str(status)) if isinstance(body, dict) else str(body)
        for status, body in results
    )


def test_one_household_twenty_tills_balance_covers_five(app, world):
    hh = world.household()
    world.user("clerk", "clerk")
    tokens = _tokens(world, "clerk", THREADS)
    item = _item(world, tokens[0], price=10, stock=100)
    world.grant(hh, 50)
    with app.app_context():
        member_code = db.session.get(Household, hh).member_code
    body = {"member_code": member_code, "lines": [{"item_id": item, "quantity": 1}]}
    results = _race(app, [(token, body, {}) for token in tokens])
    assert _codes(results) == ["insufficient_points"] * 15 + ["ok"] * 5, results
    assert world.balance(accounts.household_points(hh)) == 0
    assert world.balance(accounts.supermarket_points(1)) == 50
    with app.app_context():
        assert ops.get_item(item).on_hand == 95
    assert _check_books(app) == [1, 2, 3, 4, 5]


def test_twenty_households_race_for_five_in_stock(app, world):
    world.user("clerk", "clerk")
    tokens = _tokens(world, "clerk", THREADS)
    item = _item(world, tokens[0], price=45, stock=5)
    households = []
    for n in range(THREADS):
        hh = world.household(name=f"户{n}")
        world.grant(hh, 100)
        households.append(hh)
    with app.app_context():
        codes = [db.session.get(Household, hh).member_code for hh in households]
    results = _race(app, [(token, {"member_code": code, "lines": [{"item_id": item, "quantity": 1}]}, {})
                          for token, code in zip(tokens, codes, strict=True)])
    assert _codes(results) == ["insufficient_stock"] * 15 + ["ok"] * 5, results
    balances = sorted(world.balance(accounts.household_points(hh)) for hh in households)
    assert balances == [55] * 5 + [100] * 15
    with app.app_context():
        assert ops.get_item(item).on_hand == 0
    assert _check_books(app) == [1, 2, 3, 4, 5]


def test_retries_with_one_key_charge_once(app, world):
    hh = world.household()
    world.user("clerk", "clerk")
    token = _tokens(world, "clerk", 1)[0]
    item = _item(world, token, price=10, stock=100)
    world.grant(hh, 100)
    with app.app_context():
        member_code = db.session.get(Household, hh).member_code
    body = {"member_code": member_code, "lines": [{"item_id": item, "quantity": 2}]}
    results = _race(app, [(token, body, {"Idempotency-Key": "double-click"}) for _ in range(6)])
    assert {status for status, _ in results} == {201}, results
    assert len({body["id"] for _, body in results}) == 1
    assert world.balance(accounts.household_points(hh)) == 80
    assert _check_books(app) == [1]
