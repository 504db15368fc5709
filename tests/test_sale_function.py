"""The sale on PostgreSQL as one server function (``shop_sell``, migration 0028).

Every shop test runs the sale through the function when the suite runs on PostgreSQL; these hold
what is particular to it:

* the leaf bytes the database hashes (``ledger_leaf``) are exactly ``ledger/encoding.py``'s, over
  awkward text (quotes, back-slashes, control characters, characters outside the BMP);
* a sale written by the function hashes into the chain as Python would: ``verify`` re-derives it,
  with an awkward username in the actor;
* the notices and the audit entry it writes are the JSON the Python sale writes, byte for byte
  (the pages and the outbox read them);
* a sale is one round trip for its body (``tests/test_round_trips.py`` counts the whole request).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from conftest import IS_POSTGRES
from shop_support import shop_town
from timebank.core.extensions import db

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="the server function is PostgreSQL's")

# PostgreSQL's text holds no NUL; UTF-8 holds no lone surrogate.
AWKWARD = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
NASTY = ['"', "\\", "\n\r\t\b\f", "\x01\x1f\x7f", "引号「」", "😀𝄞", "a\\\"b", "\u2028\u2029", "</script>"]


def _leaf_in_sql(**leaf) -> str:
    return db.session.execute(text(
        "SELECT ledger_leaf(:id, :created_at, :kind, :category, :memo, :actor, :reference, :reverses_id,"
        " CAST(:postings AS jsonb))"), {**leaf, "postings": json.dumps(leaf["postings"])}).scalar_one()


def _leaf_in_python(**leaf) -> str:
    from ledger.encoding import leaf_bytes

    return leaf_bytes(**{**leaf, "postings": [tuple(p) for p in leaf["postings"]]}).decode("utf-8")


@pytest.mark.parametrize("nasty", NASTY)
def test_the_leaf_is_python_s_for_awkward_text(ctx, nasty):
    leaf = dict(id=7, created_at=datetime(2026, 3, 2, 2, 0, 0, 5), kind="redemption" + nasty, category=nasty,
                memo="爱心超市 " + nasty, actor=f"user:1:{nasty}", reference=nasty, reverses_id=None,
                postings=[["household:9:points", "points", -30], [f"z{nasty}", "points", 30],
                          ["a" + nasty, "points", 0]])
    assert _leaf_in_sql(**leaf) == _leaf_in_python(**leaf)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(memo=AWKWARD, actor=st.one_of(st.none(), AWKWARD), reference=st.one_of(st.none(), AWKWARD),
       codes=st.lists(AWKWARD.filter(bool), min_size=2, max_size=4),
       amounts=st.lists(st.integers(-10**12, 10**12), min_size=4, max_size=4),
       micro=st.integers(0, 999_999), reverses=st.one_of(st.none(), st.integers(1, 10**9)))
def test_the_leaf_is_python_s_for_any_text(ctx, memo, actor, reference, codes, amounts, micro, reverses):
    leaf = dict(id=123456789, created_at=datetime(2027, 12, 31, 23, 59, 59, micro), kind="sale", category=None,
                memo=memo, actor=actor, reference=reference, reverses_id=reverses,
                postings=[[code, "points", amount] for code, amount in zip(codes, amounts, strict=False)])
    assert _leaf_in_sql(**leaf) == _leaf_in_python(**leaf)


def test_a_sale_by_the_function_is_verified_by_python(world, clock):
    """The chain the function extends is the chain Python checks: verify passes after sales by a clerk
    whose actor carries an awkward username, and the head's hash is the one Python derives."""
    import ledger
    from timebank.core.users import User

    t = shop_town(world)
    with world.app.app_context():
        clerk = db.session.execute(db.select(User).where(User.username == "clerk")).scalar_one()
        db.session.execute(text("UPDATE users SET username = :name WHERE id = :id"),
                           {"name": 'clerk"\\\t😀', "id": clerk.id})
        db.session.commit()
    for n in range(3):
        clock.advance(seconds=1, microseconds=n * 7)
        r = world.call("POST", "/api/v1/redemptions", "clerk", headers={"Idempotency-Key": f"fn-{n}"},
                       json={"member_code": t.card1, "lines": [{"item_id": t.items["soap"], "quantity": 1}]})
        assert r.status_code == 201, r.get_json()
    with world.app.app_context():
        actor = db.session.execute(text("SELECT actor FROM ledger_transactions ORDER BY id DESC LIMIT 1")).scalar_one()
        assert actor.endswith('clerk"\\\t😀')
        report = ledger.verify(db.session)
        assert report.ok, report.problems


def test_notices_and_audit_are_the_python_json(world):
    """The household's notice, the clerks' low-stock notice and the audit entry parse as the Python
    sale writes them, keys in the same order."""
    t = shop_town(world)
    with world.app.app_context():
        db.session.execute(text("UPDATE shop_items SET low_stock_threshold = 9 WHERE id = :id"), {"id": t.items["oil"]})
        db.session.commit()
    r = world.call("POST", "/api/v1/redemptions", "clerk", headers={"Idempotency-Key": "fn-json"},
                   json={"member_code": t.card1, "lines": [{"item_id": t.items["oil"], "quantity": 1},
                                                           {"item_id": t.items["soap"], "quantity": 2}]})
    assert r.status_code == 201, r.get_json()
    sale = r.get_json()
    with world.app.app_context():
        payloads = dict(db.session.execute(text(
            "SELECT event, payload FROM notifications WHERE event IN ('pay_code_used', 'low_stock')")).all())
        details = db.session.execute(text(
            "SELECT details FROM audit_log WHERE action = 'redemption.create'")).scalar_one()
    told = {"balance": sale["balance_after"], "identified_by": "member_code", "points": sale["total_points"],
            "receipt_no": sale["receipt_no"], "redemption_id": sale["id"]}
    assert payloads["pay_code_used"] == json.dumps(told, ensure_ascii=False, sort_keys=True)
    low = {"item_id": t.items["oil"], "name": "食用油", "on_hand": 9, "threshold": 9}
    assert payloads["low_stock"] == json.dumps(low, ensure_ascii=False, sort_keys=True)
    lines = {str(t.items["oil"]): 1, str(t.items["soap"]): 2}
    audit = {"household_id": t.h1, "identified_by": "member_code", "lines": lines, "partner_id": None,
             "receipt_no": sale["receipt_no"], "total_points": sale["total_points"],
             "transaction_id": sale["transaction_id"]}
    assert details == json.dumps(audit, ensure_ascii=False, sort_keys=True)


def test_a_path_gone_silent_before_the_commit_loses_the_sale_and_a_retry_sells_once(world, app, tmp_path,
                                                                                    monkeypatch):
    """The sale's last message carries its answer's record and COMMIT. If the path to the database goes
    silent just before it, the clerk gets 503 (outcome unknown), the server ends the idle transaction
    (nothing was sold), and the retry with the same key sells once."""
    from faults_support import assert_outcome_unknown, through_a_silenceable_proxy
    from timebank.core import http

    t = shop_town(world)
    through, proxy = through_a_silenceable_proxy(app, tmp_path)
    real = http.write_and_commit

    def silent_then_commit(*args, **kwargs):
        proxy.go_silent()
        return real(*args, **kwargs)

    def receipts():
        with app.app_context():
            count = db.session.execute(text("SELECT count(*) FROM redemptions")).scalar_one()
            db.session.rollback()
            return count

    sale = {"member_code": t.card1, "lines": [{"item_id": t.items["soap"], "quantity": 1}]}
    headers = {**world.headers("clerk"), "Idempotency-Key": "silent-1"}
    client = through.test_client()
    try:
        before = receipts()
        monkeypatch.setattr(http, "write_and_commit", silent_then_commit)
        response = client.post("/api/v1/redemptions", headers=headers, json=sale)
        assert_outcome_unknown(response)
        monkeypatch.setattr(http, "write_and_commit", real)
        proxy.resume()
        assert receipts() == before
        retried = client.post("/api/v1/redemptions", headers=headers, json=sale)
        assert retried.status_code == 201, retried.get_json()
        again = client.post("/api/v1/redemptions", headers=headers, json=sale)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == retried.get_json()
        assert receipts() == before + 1
    finally:
        with through.app_context():
            db.session.remove()
            db.engine.dispose()
        proxy.close()


@pytest.mark.parametrize("how", ["orm", "ledger", "locked_read"])
def test_a_request_that_begins_with_its_first_write_writes_nothing_outside_its_transaction(world, app, tmp_path, how):
    """A view marked like the sale runs its reads in autocommit; whatever it writes (through the ORM,
    or the ledger on the driver's cursor under the advisory lock) or locks begins the transaction
    first, so a failure afterwards leaves nothing behind."""
    import ledger
    from faults_support import sibling_app
    from timebank.core import accounts
    from timebank.core.database import begins_with_first_write, defers_write_lock
    from timebank.people.models import Household

    h = world.household()
    world.grant(h, 10)
    other = sibling_app(app, tmp_path, "deferred")
    seen = {}

    @defers_write_lock
    @begins_with_first_write
    def write_then_fail(household_id):
        raw = db.session.connection().connection.dbapi_connection
        seen["autocommit"] = raw.autocommit
        household = db.session.get(Household, household_id)
        if how == "orm":
            household.name = "改过的名字"
            db.session.flush()
        elif how == "ledger":
            ledger.post(db.session, [ledger.Leg(accounts.household_points(household_id), -5),
                                     ledger.Leg(accounts.supermarket_points(household.community_id), 5)],
                        kind="test", memo="", actor="test")
        else:
            db.session.execute(text("SELECT id FROM households WHERE id = :id FOR UPDATE"), {"id": household_id})
        seen["in_transaction"] = raw.info.transaction_status != 0
        raise RuntimeError("fails after the write")

    other.add_url_rule("/api/v1/test-deferred/<int:household_id>", "test_deferred", write_then_fail,
                       methods=["POST"])
    with app.app_context():
        before = (db.session.execute(text("SELECT count(*) FROM ledger_transactions")).scalar_one(),
                  db.session.get(Household, h).name)
        db.session.rollback()
    try:
        response = other.test_client().post(f"/api/v1/test-deferred/{h}", headers=world.headers("admin"))
        assert response.status_code == 500
        assert seen == {"autocommit": True, "in_transaction": True}
        with app.app_context():
            after = (db.session.execute(text("SELECT count(*) FROM ledger_transactions")).scalar_one(),
                     db.session.get(Household, h).name)
        assert after == before
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
