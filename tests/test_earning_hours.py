"""The time bank: help requests, payment from the requester or the pool, gifts and the stored-hours cap."""

from __future__ import annotations

import pytest

import ledger
from earning_support import build_town, claim, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    return build_town(world)


def give_minutes(world, resident_id, minutes):
    """Set-up: minutes straight from the community's minutes issuance account."""
    from timebank.core.extensions import db

    with world.app.app_context():
        ledger.post(db.session, [ledger.Leg(accounts.issuance_minutes(1), -minutes),
                                 ledger.Leg(accounts.resident_minutes(resident_id), minutes)],
                    kind="grant", memo="test set-up", actor="test")
        db.session.commit()


def ask(world, user, resident_id, minutes=60, title="陪同去医院"):
    r = world.call("POST", "/api/v1/help-requests", user,
                   json={"resident_id": resident_id, "title": title, "minutes": minutes})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_help_is_paid_by_the_requester(town, world):
    request = ask(world, town.resident1, town.r1)
    assert request["status"] == "open" and request["resident_id"] == town.r1
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident2,
                   json={"volunteer_id": town.r2})
    assert r.status_code == 200 and r.get_json()["status"] == "accepted"
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", town.resident1)
    assert r.status_code == 409 and r.get_json()["error"] == "insufficient_hours"
    assert world.call("GET", f"/api/v1/help-requests/{request['id']}", town.resident1).get_json()["status"] == \
        "accepted"

    give_minutes(world, town.r1, 90)
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", town.resident1)
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "completed" and body["paid_by"] == "requester" and body["transaction_id"]
    assert world.balance(accounts.resident_minutes(town.r1)) == 30
    assert world.balance(accounts.resident_minutes(town.r2)) == 60
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", town.resident1)
    assert r.status_code == 409 and r.get_json()["error"] == "help_request_not_accepted"
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident2,
                   json={"volunteer_id": town.r2})
    assert r.status_code == 409 and r.get_json()["error"] == "help_request_not_open"


def test_red_households_are_paid_for_by_the_pool_and_grid_workers_confirm(town, world):
    # 李家 (household 2) is labelled red; the grid worker enters and confirms for the elderly requester.
    # The pool pays only what the committee put into it.
    assert world.call("POST", "/api/v1/hours/pool", "committee",
                      json={"community_code": "hongxing", "minutes": 200, "note": "街道拨付"}).status_code == 201
    request = ask(world, "grid", town.r2, minutes=120, title="代买米面油")
    world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident1, json={"volunteer_id": town.r1})
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", "grid")
    assert r.status_code == 200 and r.get_json()["paid_by"] == "pool"
    assert world.balance(accounts.resident_minutes(town.r1)) == 120
    assert world.balance(accounts.resident_minutes(town.r2)) == 0
    assert world.balance(accounts.pool_minutes(1)) == 80


def test_help_request_access(town, world):
    # Residents act for themselves only (not even for kin); staff for their own community only.
    for user, resident in ((town.resident2, town.r1), ("other_committee", town.r1), ("clerk", town.r1),
                           (town.resident3, town.r1), (town.resident1b, town.r1)):
        r = world.call("POST", "/api/v1/help-requests", user,
                       json={"resident_id": resident, "title": "x", "minutes": 30})
        assert r.status_code == 403, user
    assert ask(world, "grid", town.r1)["status"] == "open"  # staff may ask for a resident
    request = ask(world, town.resident1, town.r1)
    # Another household's resident may volunteer only as themselves.
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident2,
                   json={"volunteer_id": town.r1b})
    assert r.status_code == 403
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident1,
                   json={"volunteer_id": town.r1})
    assert r.status_code == 403 and r.get_json()["error"] == "self_dealing"
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", "other_committee",
                   json={"volunteer_id": town.r3})
    assert r.status_code == 404
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", "grid", json={"volunteer_id": town.r3})
    assert r.status_code == 403
    world.call("POST", f"/api/v1/help-requests/{request['id']}/accept", town.resident2, json={"volunteer_id": town.r2})
    # Only the requester's household or staff confirm; the volunteer cannot pay themselves.
    r = world.call("POST", f"/api/v1/help-requests/{request['id']}/complete", town.resident2)
    assert r.status_code == 403
    assert world.call("GET", f"/api/v1/help-requests/{request['id']}", town.resident3).status_code == 404
    listed = world.call("GET", "/api/v1/help-requests?community_code=hongxing", town.resident2).get_json()
    assert {i["id"] for i in listed["items"]} == {request["id"], request["id"] - 1}
    assert world.call("GET", "/api/v1/help-requests?community_code=hongxing", "other_committee").status_code == 403


def test_gifts_to_kin_and_to_the_pool(town, world):
    give_minutes(world, town.r1, 100)
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                   json={"from_resident_id": town.r1, "to_resident_id": town.r1b, "minutes": 30})
    assert r.status_code == 201 and r.get_json()["to_pool_minutes"] == 0
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                   json={"from_resident_id": town.r1, "to_pool": True, "minutes": 30})
    assert r.status_code == 201 and r.get_json()["to_pool"] is True
    assert world.balance(accounts.resident_minutes(town.r1)) == 40
    assert world.balance(accounts.resident_minutes(town.r1b)) == 30
    assert world.balance(accounts.pool_minutes(1)) == 30

    r = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                   json={"from_resident_id": town.r1, "to_resident_id": town.r2, "minutes": 10})
    assert r.status_code == 422 and "to_resident_id" in r.get_json()["errors"]
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                   json={"from_resident_id": town.r1, "to_resident_id": town.r1b, "minutes": 41})
    assert r.status_code == 409 and r.get_json()["error"] == "insufficient_hours"
    r = world.call("POST", "/api/v1/hours/transfers", town.resident2,
                   json={"from_resident_id": town.r1, "to_pool": True, "minutes": 1})
    assert r.status_code == 403
    r = world.call("POST", "/api/v1/hours/transfers", "other_committee",
                   json={"from_resident_id": town.r1, "to_pool": True, "minutes": 1})
    assert r.status_code == 403
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1,
                   json={"from_resident_id": town.r1, "to_pool": True, "to_resident_id": town.r1b, "minutes": 1})
    assert r.status_code == 422
    # Idempotent by key: a retried gift moves the minutes once.
    headers = {"Idempotency-Key": "gift-1"}
    body = {"from_resident_id": town.r1, "to_resident_id": town.r1b, "minutes": 10}
    assert world.call("POST", "/api/v1/hours/transfers", town.resident1, json=body, headers=headers).status_code == 201
    assert world.call("POST", "/api/v1/hours/transfers", town.resident1, json=body, headers=headers).status_code == 201
    assert world.balance(accounts.resident_minutes(town.r1)) == 30


def test_stored_hours_cap_sends_the_excess_to_the_pool(town, world):
    from timebank.core.extensions import db
    from timebank.people.models import Community

    with world.app.app_context():
        db.session.get(Community, 1).hours_cap_minutes = 100
        db.session.commit()
    rule(world, code="serve", points=5, minutes=60, review="auto", publicity_days=0)
    claim(world, town.r1, town.resident1, rule_code="serve")
    claim(world, town.r1, town.resident1, rule_code="serve")
    assert world.balance(accounts.resident_minutes(town.r1)) == 100
    assert world.balance(accounts.pool_minutes(1)) == 20
    # A gift to kin at the cap goes to the pool too.
    give_minutes(world, town.r1b, 100)
    world.call("POST", "/api/v1/hours/transfers", town.resident1b,
               json={"from_resident_id": town.r1b, "to_resident_id": town.r1, "minutes": 30})
    assert world.balance(accounts.resident_minutes(town.r1)) == 100
    assert world.balance(accounts.pool_minutes(1)) == 50


def test_default_cap_is_1500_hours(town, world):
    r = world.call("GET", "/api/v1/communities/hongxing", "committee").get_json()
    assert r["hours_cap_minutes"] == 1500 * 60
