"""Nobody mints or moves value alone: the insider rules of the time bank, claims and the supermarket.

Each test is one way an insider could take value without a second person, as it was found, and what
is refused now (API and pages).
"""

from __future__ import annotations

import re
import threading

import pytest

from conftest import main_text as text
from conftest import page_login
from earning_support import PASSWORD, build_town, claim, rule
from timebank.core import accounts
from timebank.core.extensions import db


@pytest.fixture
def town(world):
    return build_town(world)


def _red_family(world, town):
    """A red household (李家, town.h2) with two residents who log in: 李四 (town.r2) and 李小四."""
    town.r2b = world.resident(town.h2, "李小四", phone="13800000022", password=PASSWORD)
    town.resident2b = "13800000022"


def _help(world, user, resident_id, minutes=600, expect=201):
    r = world.call("POST", "/api/v1/help-requests", user,
                   json={"resident_id": resident_id, "title": "陪护", "minutes": minutes})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def _fund(world, minutes, user="committee", key=None):
    headers = {"Idempotency-Key": key} if key else None
    return world.call("POST", "/api/v1/hours/pool", user, headers=headers,
                      json={"community_code": "hongxing", "minutes": minutes, "note": "街道拨付"})


def _pool(world):
    return world.balance(accounts.pool_minutes(1))


# --- finding 1: the time bank ----------------------------------------------------------------------

def test_the_600_minute_pool_mint_round_is_refused(world, town):
    """A resident of a red household asked for a family member, accepted and confirmed, all alone: the pool
    paid 600 minutes it never held. Every step is refused now, and the pool never goes below zero."""
    _red_family(world, town)
    # Asking for a family member moves their minutes (or the pool's for them): only they, or staff, may.
    _help(world, town.resident2b, town.r2, expect=403)
    # The family member asks; the other accepts as volunteer: of the requester's household.
    request = _help(world, town.resident2, town.r2)
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident2b,
                   json={"volunteer_id": town.r2b})
    assert r.status_code == 403 and r.get_json()["error"] == "self_dealing"
    # Nor may staff sign a household member up as the volunteer.
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", "grid", json={"volunteer_id": town.r2b})
    assert r.status_code == 403 and r.get_json()["error"] == "self_dealing"
    # A neighbour accepts; the requester alone cannot confirm pool-paid help.
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident1,
                   json={"volunteer_id": town.r1})
    assert r.status_code == 200, r.get_json()
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", town.resident2)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    # The grid worker confirms, but the pool holds nothing: 409, nothing moves.
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", "grid")
    assert r.status_code == 409 and r.get_json()["error"] == "insufficient_hours"
    assert _pool(world) == 0 and world.balance(accounts.resident_minutes(town.r1)) == 0
    # What the committee put in, and only that, pays.
    r = _fund(world, 600)
    assert r.status_code == 201 and r.get_json()["balance"] == 600, r.get_json()
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", "grid")
    assert r.status_code == 200 and r.get_json()["paid_by"] == "pool"
    assert _pool(world) == 0 and world.balance(accounts.resident_minutes(town.r1)) == 600
    assert world.call("GET", "/api/v1/ledger/verify", "committee").get_json()["ok"]


def test_funding_the_pool_is_the_committees_and_idempotent(world, town):
    for user in ("grid", "clerk", town.resident1):
        assert _fund(world, 60, user=user).status_code == 403
    first = _fund(world, 90, key="fund-1")
    again = _fund(world, 90, key="fund-1")
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    assert first.get_json()["balance"] == 90 and _pool(world) == 90
    assert _fund(world, 30, key="fund-1").status_code == 422  # same key, another body
    assert _fund(world, 0).status_code == 422


def test_a_family_members_minutes_are_not_moved_without_them(world, town):
    """张小妹 gave away 张三's minutes, asked for help in his name and confirmed it: his minutes are his."""
    rule(world, code="serve", review="auto", publicity_days=0, points=1, minutes=120)
    claim(world, town.r1, town.resident1, rule_code="serve")
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1b,
                   json={"from_resident_id": town.r1, "to_resident_id": town.r1b, "minutes": 60})
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1b,
                   json={"from_resident_id": town.r1, "to_pool": True, "minutes": 60})
    assert r.status_code == 403
    _help(world, town.resident1b, town.r1, minutes=60, expect=403)
    # 张三 asks himself; a neighbour helps; his sister cannot confirm the payment for him.
    request = _help(world, town.resident1, town.r1, minutes=60)
    assert world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident1b,
                      json={"volunteer_id": town.r2}).status_code == 403  # nor volunteer a neighbour
    assert world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident2,
                      json={"volunteer_id": town.r2}).status_code == 200
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", town.resident1b)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert world.balance(accounts.resident_minutes(town.r1)) == 120
    # He himself, or the grid worker for him (recorded as such), may.
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", "grid")
    assert r.status_code == 200 and r.get_json()["completed_by_user_id"] is not None
    assert world.balance(accounts.resident_minutes(town.r1)) == 60
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                   json={"from_resident_id": town.r1, "to_resident_id": town.r1b, "minutes": 30})
    assert r.status_code == 201


def test_the_pool_never_goes_below_zero_under_two_concurrent_payments(app, world, town):
    _red_family(world, town)
    assert _fund(world, 60).status_code == 201
    ids = []
    for volunteer, username in ((town.r1, town.resident1), (town.r1b, town.resident1b)):
        request = _help(world, town.resident2, town.r2, minutes=60)
        r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", username,
                       json={"volunteer_id": volunteer})
        assert r.status_code == 200, r.get_json()
        ids.append(request["id"])
    tokens = [world.client.post("/api/v1/auth/token", json={"username": name, "password": "secret-pass"})
              .get_json()["access_token"] for name in ("grid", "committee")]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def confirm(index):
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            try:
                r = client.post(f"/api/v1/help-requests/{ids[index]}/complete",
                                headers={"Authorization": f"Bearer {tokens[index]}"})
                results[index] = (r.status_code, (r.get_json() or {}).get("error"))
            except Exception as exc:  # anything unexpected fails the test below
                results[index] = ("exception", repr(exc))
            finally:
                db.session.remove()

    workers = [threading.Thread(target=confirm, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results, key=str) == sorted([(200, None), (409, "insufficient_hours")], key=str), results
    assert _pool(world) == 0
    assert world.call("GET", "/api/v1/ledger/verify", "committee").get_json()["ok"]


def test_the_resident_pages_refuse_the_same_way(app, world, town):
    _red_family(world, town)
    request = _help(world, town.resident2, town.r2, minutes=60)
    family = page_login(app, town.resident2b)
    page = family.get("/me/help")
    r = family.post("/me/help", data={"action": "accept", "request_id": request["id"], "form_key": "k" * 20},
                    follow_redirects=True)
    assert "同一户" in text(r), text(r)
    assert world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident1,
                      json={"volunteer_id": town.r1}).status_code == 200
    # The family member sees no button to pay for the requester, and a forged form is refused in words.
    assert f'name="request_id" value="{request["id"]}"' not in family.get("/me/help").get_data(as_text=True)
    r = family.post("/me/help", data={"action": "complete", "request_id": request["id"], "form_key": "m" * 20},
                    follow_redirects=True)
    assert "没有办成" in text(r)
    # The requester is told that the grid worker or the committee confirms help the pool pays for.
    requester = page_login(app, town.resident2)
    assert "网格员" in text(requester.get("/me/help"))
    r = requester.post("/me/help", data={"action": "complete", "request_id": request["id"], "form_key": "n" * 20},
                       follow_redirects=True)
    assert "网格员或社区两委确认" in text(r), text(r)
    assert world.call("GET", f"/api/v1/help-requests/{request['id']}", "grid").get_json()["status"] == "accepted"
    assert page is not None


# --- finding 4: 代录, the till, caps in minutes ------------------------------------------------------

def test_a_claim_entered_by_a_grid_worker_is_not_approved_by_him(app, world, town):
    """代录: the grid worker entered a claim for 李四 and approved it himself."""
    rule(world)
    entered = claim(world, town.r2, "grid")
    r = world.call("POST", f"/api/v1/claims/{entered['id']}/approve", "grid")
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    grid = page_login(app, "grid")
    assert "您代录的申报" in text(grid.get("/committee/claims"))
    r = grid.post(f"/committee/claims/{entered['id']}/approve", data={"form_key": "p" * 20}, follow_redirects=True)
    assert "自己代录的申报" in text(r), text(r)
    assert world.call("GET", f"/api/v1/claims/{entered['id']}", "committee").get_json()["status"] == "pending"
    # Another reviewer may.
    r = world.call("POST", f"/api/v1/claims/{entered['id']}/approve", "committee")
    assert r.status_code == 200, r.get_json()


def test_a_clerk_does_not_void_or_take_back_goods_of_his_own_household(app, world, town):
    """A clerk of 张家 sold to his own household and voided the receipt: the points came back, the goods stayed."""
    clerk_person = world.resident(town.h1, "张店员", phone="13800000091")
    world.user("clerk_h1", "clerk", resident_id=clerk_person)
    world.grant(town.h1, 100)
    r = world.call("POST", "/api/v1/items", "clerk", json={"community_code": "hongxing", "sku": "oil",
                                                          "name": "食用油", "price_points": 20})
    item = r.get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 5, "reason": "donation", "donor": "爱心企业"}).status_code == 201
    with app.app_context():
        from timebank.people.models import Household

        card = db.session.get(Household, town.h1).member_code
    sale = world.call("POST", "/api/v1/redemptions", "clerk_h1",
                      json={"member_code": card, "lines": [{"item_id": item, "quantity": 2}]})
    assert sale.status_code == 201, sale.get_json()
    receipt = sale.get_json()["id"]
    r = world.call("POST", f"/api/v1/redemptions/{receipt}/void", "clerk_h1", json={"reason": "扫错了"})
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    r = world.call("POST", f"/api/v1/redemptions/{receipt}/returns", "clerk_h1",
                   json={"lines": [{"item_id": item, "quantity": 1}], "reason": "不要了"})
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    page = page_login(app, "clerk_h1")
    r = page.post(f"/clerk/receipts/{receipt}/void", data={"reason": "扫错了", "form_key": "v" * 20},
                  follow_redirects=True)
    assert "自己家的小票" in text(r), text(r)
    assert world.balance(accounts.household_points(town.h1)) == 60
    # Another clerk may.
    r = world.call("POST", f"/api/v1/redemptions/{receipt}/returns", "clerk",
                   json={"lines": [{"item_id": item, "quantity": 1}], "reason": "不要了"})
    assert r.status_code == 201, r.get_json()
    assert world.balance(accounts.household_points(town.h1)) == 80


def test_a_minutes_only_rule_is_not_farmed_past_max_minutes(app, world, town):
    """Caps counted only points: a rule worth minutes and no points could be claimed without end."""
    made = rule(world, code="sit", points=0, minutes=60, review="auto", publicity_days=0,
                cap={"period": "week", "max_minutes": 120})
    assert made["cap"] == {"period": "week", "max_points": None, "max_minutes": 120}
    claim(world, town.r1, town.resident1, rule_code="sit")
    claim(world, town.r1b, town.resident1b, rule_code="sit")
    r = world.call("POST", "/api/v1/claims", town.resident1,
                   json={"community_code": "hongxing", "rule_code": "sit", "resident_id": town.r1})
    assert r.status_code == 409 and r.get_json()["error"] == "cap_exceeded"
    assert world.balance(accounts.resident_minutes(town.r1)) + world.balance(accounts.resident_minutes(town.r1b)) == 120
    # Both limits at once; a cap needs one of them, and none smaller than one claim.
    both = rule(world, code="both", points=5, minutes=30, cap={"period": "day", "max_points": 10, "max_minutes": 60})
    assert both["cap"] == {"period": "day", "max_points": 10, "max_minutes": 60}
    for cap in ({"period": "week"}, {"period": "week", "max_minutes": 30}):
        r = world.call("POST", "/api/v1/rules", "committee", json={
            "community_code": "hongxing", "code": "bad", "title": "x", "category": "volunteer", "points": 0,
            "minutes": 60, "review": "auto", "cap": cap})
        assert r.status_code == 422, (cap, r.get_json())
    # The committee's page takes the minutes limit too.
    committee = page_login(app, "committee")
    r = committee.post("/committee/rules", data={
        "form_key": "r" * 20, "code": "walk", "title": "陪老人散步", "category": "neighbour_help", "points": 0,
        "minutes": 30, "review": "auto", "publicity_days": 0, "cap_period": "week", "cap_max_minutes": 60},
        follow_redirects=True)
    assert "walk" in text(r)
    rules = world.call("GET", "/api/v1/rules?community_code=hongxing", "committee").get_json()["items"]
    assert [x["cap"] for x in rules if x["code"] == "walk"] == [{"period": "week", "max_points": None,
                                                                  "max_minutes": 60}]
