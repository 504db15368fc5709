"""Taking back a posted claim (撤销): a compensating transaction, once, by the committee of another household.

POST /api/v1/claims/{id}/reverse {reason} (CONTRACT v1.1, "Corrections and insider rules").
"""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

import ledger
import ledger.core
from conftest import main_text as text
from conftest import page_login
from earning_support import PASSWORD, advance, build_town, claim, rule
from timebank.core import accounts
from timebank.core.audit_log import AuditEntry
from timebank.core.extensions import db
from timebank.earning.models import ClaimReversal

REASON = "重复申报"


@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world, code="clean", review="auto", publicity_days=0, points=10, minutes=30)
    rule(world, code="visit", title="探访老人", review="review", publicity_days=0, points=5)
    return t


def reverse(world, claim_id, user="committee", reason=REASON, key=None, expect=None):
    headers = {"Idempotency-Key": key} if key else None
    r = world.call("POST", f"/api/v1/claims/{claim_id}/reverse", user, json={"reason": reason}, headers=headers)
    if expect is not None:
        assert r.status_code == expect, r.get_json()
    return r


def points(world, household_id):
    return world.balance(accounts.household_points(household_id))


def minutes(world, resident_id):
    return world.balance(accounts.resident_minutes(resident_id))


def test_a_posted_claim_is_taken_back_by_a_compensating_transaction(app, world, town, runner):
    posted = claim(world, town.r1, town.resident1)
    assert posted["status"] == "posted"
    assert points(world, town.h1) == 10 and minutes(world, town.r1) == 30

    r = reverse(world, posted["id"], expect=200)
    body = r.get_json()
    assert body["status"] == "reversed" and body["claim_id"] == posted["id"]
    assert body["reason"] == REASON and body["reversed_by_user_id"]
    assert points(world, town.h1) == 0 and minutes(world, town.r1) == 0

    with app.app_context():
        tx = ledger.core.load(db.session, body["reversal_transaction_id"])
        assert tx.kind == "claim_reversal" and tx.reverses_id == posted["transaction_id"]
        original = ledger.core.load(db.session, posted["transaction_id"])
        assert sorted((a, -m, u) for a, m, u in original.postings) == sorted(tx.postings)
        assert REASON in tx.memo
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "claim.reverse")).scalar_one()
        details = json.loads(entry.details)
        assert entry.target == f"claim:{posted['id']}" and details["reason"] == REASON
        assert details["reversal_transaction_id"] == tx.id

    shown = world.call("GET", f"/api/v1/claims/{posted['id']}", "committee").get_json()
    assert shown["status"] == "reversed" and shown["transaction_id"] == posted["transaction_id"]
    assert shown["reversal"]["reason"] == REASON
    assert shown["reversal"]["user_id"] == body["reversed_by_user_id"]
    assert shown["reversal"]["created_at"] == body["reversed_at"]
    assert shown["reversal"]["transaction_id"] == body["reversal_transaction_id"]
    assert shown["events"][-1]["action"] == "reverse" and shown["events"][-1]["reason"] == REASON
    # The resident sees it the same way; the list filters by the shown status.
    assert world.call("GET", f"/api/v1/claims/{posted['id']}", town.resident1).get_json()["status"] == "reversed"
    listed = world.call("GET", "/api/v1/claims?community_code=hongxing&status=reversed", "committee").get_json()
    assert [c["id"] for c in listed["items"]] == [posted["id"]]
    still = world.call("GET", "/api/v1/claims?community_code=hongxing&status=posted", "committee").get_json()
    assert still["items"] == []

    again = reverse(world, posted["id"], expect=409)
    assert again.get_json()["error"] == "already_reversed"
    assert points(world, town.h1) == 0

    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output


def test_only_the_committee_of_another_household_takes_a_claim_back(world, town):
    posted = claim(world, town.r1, town.resident1)
    own = reverse(world, posted["id"], "committee_h1", expect=403)
    assert own.get_json()["error"] == "self_approval"
    for user in ("grid", "clerk", town.resident1, town.resident2):
        r = reverse(world, posted["id"], user)
        assert r.status_code in (403, 404), (user, r.get_json())
    assert reverse(world, posted["id"], "super").status_code == 403
    assert reverse(world, posted["id"], "other_committee").status_code == 404
    assert points(world, town.h1) == 10
    # The committee member of household 1 takes back household 2's claims.
    other = claim(world, town.r2, town.resident2)
    reverse(world, other["id"], "committee_h1", expect=200)
    assert points(world, town.h2) == 0
    missing = reverse(world, 9999, expect=404)
    assert missing.get_json()["error"] == "not_found"
    empty = world.call("POST", f"/api/v1/claims/{posted['id']}/reverse", "committee", json={"reason": ""})
    assert empty.status_code == 422


def test_a_claim_not_posted_is_not_taken_back(world, town):
    pending = claim(world, town.r1, town.resident1, rule_code="visit")
    r = reverse(world, pending["id"], expect=409)
    assert r.get_json()["error"] == "claim_not_posted"
    world.call("POST", f"/api/v1/claims/{pending['id']}/reject", "committee", json={"reason": "不符"})
    assert reverse(world, pending["id"], expect=409).get_json()["error"] == "claim_not_posted"


def test_points_already_spent_are_not_taken_back(app, world, town):
    posted = claim(world, town.r1, town.resident1)
    r = world.call("POST", "/api/v1/items", "committee",
                   json={"community_code": "hongxing", "sku": "oil", "name": "食用油", "price_points": 8})
    item = r.get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "committee", json={
        "item_id": item, "quantity": 5, "reason": "donation", "donor": "华联超市"}).status_code == 201
    with app.app_context():
        from timebank.people.models import Household

        code = db.session.get(Household, town.h1).member_code
    sold = world.call("POST", "/api/v1/redemptions", "clerk",
                      json={"member_code": code, "lines": [{"item_id": item, "quantity": 1}]})
    assert sold.status_code == 201, sold.get_json()
    r = reverse(world, posted["id"], expect=409)
    assert r.get_json()["error"] == "insufficient_points"
    assert points(world, town.h1) == 2
    assert world.call("GET", f"/api/v1/claims/{posted['id']}", "committee").get_json()["status"] == "posted"
    with app.app_context():
        assert db.session.execute(select(ClaimReversal)).first() is None
    # The minutes too are the resident's to spend: spent minutes are not taken back either.
    world.grant(town.h1, 8)
    gift = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                      json={"from_resident_id": town.r1, "to_pool": True, "minutes": 30})
    assert gift.status_code in (200, 201), gift.get_json()
    assert reverse(world, posted["id"], expect=409).get_json()["error"] == "insufficient_hours"


def test_the_same_key_reverses_once(app, world, town):
    posted = claim(world, town.r1, town.resident1)
    first = reverse(world, posted["id"], key="rev-1", expect=200)
    second = reverse(world, posted["id"], key="rev-1", expect=200)
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.get_json() == first.get_json()
    with app.app_context():
        assert len(db.session.execute(select(ClaimReversal)).all()) == 1


def test_two_reversals_at_once_one_wins(app, world, town):
    posted = claim(world, town.r1, town.resident1)
    world.user("committee2", "committee")
    tokens = [world.token("committee"), world.token("committee2")]
    barrier = threading.Barrier(len(tokens))
    results = [None] * len(tokens)

    def go(index, token):
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            try:
                r = client.post(f"/api/v1/claims/{posted['id']}/reverse", json={"reason": REASON},
                                headers={"Authorization": f"Bearer {token}"})
                results[index] = (r.status_code, r.get_json().get("error"))
            except Exception as exc:  # anything unexpected fails the test below
                results[index] = ("exception", repr(exc))
            finally:
                db.session.remove()

    workers = [threading.Thread(target=go, args=(i, token)) for i, token in enumerate(tokens)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results, key=str) == [(200, None), (409, "already_reversed")], results
    assert points(world, town.h1) == 0
    with app.app_context():
        assert len(db.session.execute(select(ClaimReversal)).all()) == 1
        assert ledger.verify(db.session).ok


def test_a_reversed_claim_does_not_count_against_the_cap(world, town):
    rule(world, code="capped", title="垃圾分类", review="auto", publicity_days=0, points=10,
         cap={"period": "day", "max_points": 10})
    posted = claim(world, town.r1, town.resident1, rule_code="capped")
    refused = claim(world, town.r1, town.resident1, rule_code="capped", expect=409)
    assert refused["error"] == "cap_exceeded"
    reverse(world, posted["id"], expect=200)
    again = claim(world, town.r1, town.resident1, rule_code="capped")
    assert again["status"] == "posted" and points(world, town.h1) == 10


def test_the_monthly_report_shows_the_reversal(world, town, clock):
    posted = claim(world, town.r1, town.resident1)
    claim(world, town.r2, town.resident2)
    month = clock.now().strftime("%Y-%m")
    url = f"/api/v1/reports/monthly?community_code=hongxing&month={month}"
    before = world.call("GET", url, "committee").get_json()
    reverse(world, posted["id"], expect=200)
    after = world.call("GET", url, "committee").get_json()
    assert before["points"]["issued_total"] == 20 and after["points"]["issued_total"] == 10
    assert after["points"]["reversed"] == 10 and before["points"]["reversed"] == 0
    assert after["activity"]["claims_posted"] == 2 and after["activity"]["claims_reversed"] == 1
    assert after["points"]["outstanding"] == 10
    assert [e["household_id"] for e in after["top_households"]] == [town.h2]
    assert after["participation"]["households_earning"] == 1


def test_the_household_reads_it_in_its_history(app, world, town):
    posted = claim(world, town.r1, town.resident1)
    reverse(world, posted["id"], expect=200)
    page = page_login(app, town.resident1).get("/me/history")
    assert page.status_code == 200
    words = text(page)
    assert "撤销积分" in words
    assert f"清扫楼道（原因：{REASON}）" in words
    assert "-10" in words


def test_the_committee_takes_a_claim_back_on_its_claims_page(app, world, town):
    posted = claim(world, town.r1, town.resident1)
    client = page_login(app, "committee")
    page = client.get("/committee/claims")
    html = page.get_data(as_text=True)
    action = f"/committee/claims/{posted['id']}/reverse"
    assert action in html and "撤销" in html
    # The committee member of the claim's own household gets no button.
    assert action not in page_login(app, "committee_h1").get("/committee/claims").get_data(as_text=True)
    assert action not in page_login(app, "grid").get("/committee/claims").get_data(as_text=True)

    no_reason = client.post(action, data={"reason": " ", "form_key": "key-00000001"})
    assert no_reason.status_code == 302 and points(world, town.h1) == 10
    done = client.post(action, data={"reason": REASON, "form_key": "key-00000002"}, follow_redirects=True)
    assert done.status_code == 200 and points(world, town.h1) == 0
    words = text(done)
    assert "撤销" in words and REASON in words
    again = client.post(action, data={"reason": REASON, "form_key": "key-00000003"}, follow_redirects=True)
    assert "已经撤销" in text(again)

    own = claim(world, town.r1b, town.resident1b)
    refused = page_login(app, "committee_h1").post(f"/committee/claims/{own['id']}/reverse",
                                                   data={"reason": REASON, "form_key": "key-00000004"},
                                                   follow_redirects=True)
    assert "自己家庭" in text(refused) and points(world, town.h1) == 10

    ledger_page = client.get("/committee/ledger")
    assert ledger_page.status_code == 200
    assert "撤销积分" in text(ledger_page) and REASON in text(ledger_page)


def test_expiry_does_not_count_a_taken_back_claim_as_spending(app, world, town, clock):
    """A claim taken back cancels its own credit: old points are not thereby spent, and an old claim taken
    back no longer expires."""
    from timebank.core.clock import utc_naive
    from timebank.earning.expiry import expiring_amount

    with app.app_context():  # a grant on the test's clock (world.grant posts at the machine's time)
        from timebank.core import ledgering

        ledgering.post(1, [ledger.Leg(accounts.issuance_points(1, "volunteer"), -50),
                           ledger.Leg(accounts.household_points(town.h1), 50)], kind="grant", category="volunteer")
        db.session.commit()
    old = claim(world, town.r1, town.resident1)
    advance(world, clock, days=40)
    new = claim(world, town.r1, town.resident1)
    reverse(world, new["id"], expect=200)
    reverse(world, old["id"], expect=200)
    assert points(world, town.h1) == 50
    with app.app_context():
        cutoff = utc_naive(clock.now() - timedelta(days=10))
        assert expiring_amount(accounts.household_points(town.h1), cutoff) == 50
