"""The points list with versions, claims with review, publicity and objections, caps and access."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from earning_support import advance, build_town, claim, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    return build_town(world)


def _claim_row(app, claim_id):
    from timebank.core.extensions import db
    from timebank.earning.models import Claim

    with app.app_context():
        c = db.session.get(Claim, claim_id)
        return {"status": c.status, "transaction_id": c.transaction_id}


def test_rules_are_created_listed_and_versioned(town, world, clock):
    created = rule(world, cap={"period": "month", "max_points": 100})
    assert created["code"] == "clean" and created["version"] == 1 and created["cap"]["period"] == "month"
    listed = world.call("GET", "/api/v1/rules?community_code=hongxing", town.resident1).get_json()
    assert [r["code"] for r in listed["items"]] == ["clean"]

    before = claim(world, town.r1, town.resident1)
    advance(world, clock, hours=1)
    r = world.call("POST", f"/api/v1/rules/{created['id']}/versions", "committee", json={"points": 15})
    assert r.status_code == 201 and r.get_json()["version"] == 2 and r.get_json()["points"] == 15
    r = world.call("PUT", f"/api/v1/rules/{created['id']}", "committee", json={"title": "清扫楼道和门前"})
    assert r.status_code == 201 and r.get_json()["version"] == 3 and r.get_json()["points"] == 15
    after = claim(world, town.r1, town.resident1)
    assert before["points"] == 10 and after["points"] == 15
    assert world.call("GET", f"/api/v1/claims/{before['id']}", "committee").get_json()["points"] == 10

    one = world.call("GET", f"/api/v1/rules/{created['id']}", "committee").get_json()
    assert [v["version"] for v in one["versions"]] == [1, 2, 3] and one["title"] == "清扫楼道和门前"

    from timebank.core.audit_log import AuditEntry
    from timebank.core.extensions import db

    with world.app.app_context():
        actions = [e.action for e in db.session.query(AuditEntry).filter_by(target=f"rule:{created['id']}")]
    assert actions.count("rule.change") == 2 and "rule.create" in actions

    past = (clock.now() - timedelta(days=1)).isoformat()
    r = world.call("POST", f"/api/v1/rules/{created['id']}/versions", "committee",
                   json={"points": 1, "effective_from": past})
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"


def test_future_version_applies_from_its_date(town, world, clock):
    created = rule(world, review="auto", publicity_days=0)
    later = (clock.now() + timedelta(days=2)).isoformat()
    r = world.call("POST", f"/api/v1/rules/{created['id']}/versions", "committee",
                   json={"points": 30, "effective_from": later})
    assert r.status_code == 201
    assert claim(world, town.r1, town.resident1)["points"] == 10
    advance(world, clock, days=2)
    assert claim(world, town.r1, town.resident1)["points"] == 30


def test_rule_errors_and_access(town, world):
    rule(world)
    body = {"community_code": "hongxing", "code": "clean", "title": "x", "category": "moral", "points": 5,
            "review": "auto"}
    r = world.call("POST", "/api/v1/rules", "committee", json=body)
    assert r.status_code == 409 and r.get_json()["error"] == "rule_exists"
    for user in (town.resident1, "grid", "super", "other_committee"):
        r = world.call("POST", "/api/v1/rules", user, json={**body, "code": "other"})
        assert r.status_code == 403, user
    r = world.call("POST", "/api/v1/rules", "committee", json={**body, "code": "bad", "category": "money"})
    assert r.status_code == 422 and "category" in r.get_json()["errors"]
    r = world.call("POST", "/api/v1/rules", "committee",
                   json={**body, "code": "capped", "cap": {"period": "week", "max_points": 2}})
    assert r.status_code == 422 and "cap" in r.get_json()["errors"]
    # Another community's list is not shown to this community's people.
    r = world.call("GET", "/api/v1/rules?community_code=lvye", town.resident1)
    assert r.status_code == 403
    r = world.call("POST", "/api/v1/rules/1/versions", "other_committee", json={"points": 1})
    assert r.status_code == 404


def test_claim_review_publicity_objection_and_posting(town, world, clock, runner):
    rule(world, minutes=60)
    c = claim(world, town.r1, town.resident1, note="周六上午")
    assert c["status"] == "pending" and c["household_id"] == town.h1 and c["points"] == 10 and c["minutes"] == 60
    assert c["entered_for_resident"] is False

    r = world.call("POST", f"/api/v1/claims/{c['id']}/approve", "grid")
    assert r.status_code == 200 and r.get_json()["status"] == "publicized"
    assert r.get_json()["publicity_ends_at"]

    # A neighbour of another household objects during publicity: back to pending.
    r = world.call("POST", f"/api/v1/claims/{c['id']}/object", town.resident2, json={"reason": "那天没见到他"})
    assert r.status_code == 200 and r.get_json()["status"] == "pending"
    r = world.call("POST", f"/api/v1/claims/{c['id']}/approve", "committee")
    assert r.get_json()["status"] == "publicized"

    advance(world, clock, days=2)
    assert runner.invoke(args=["jobs", "run", "close_publicity"]).exit_code == 0
    assert _claim_row(world.app, c["id"])["status"] == "publicized"
    advance(world, clock, days=1, seconds=1)
    result = runner.invoke(args=["jobs", "run", "close_publicity"])
    assert result.exit_code == 0, result.output
    row = _claim_row(world.app, c["id"])
    assert row["status"] == "posted" and row["transaction_id"]
    assert world.balance(accounts.household_points(town.h1)) == 10
    assert world.balance(accounts.resident_minutes(town.r1)) == 60
    # Twice is once.
    assert runner.invoke(args=["jobs", "run", "close_publicity"]).exit_code == 0
    assert world.balance(accounts.household_points(town.h1)) == 10

    got = world.call("GET", f"/api/v1/claims/{c['id']}", town.resident1b).get_json()
    assert got["status"] == "posted" and got["transaction_id"] == row["transaction_id"]
    assert [e["action"] for e in got["events"]] == ["create", "approve", "object", "approve", "post"]
    tx = world.call("GET", f"/api/v1/ledger/transactions?household_id={town.h1}", "committee").get_json()["items"]
    posted = [t for t in tx if t["id"] == row["transaction_id"]][0]
    assert posted["category"] == "volunteer" and "张三" in posted["memo"] and posted["reference"] == f"claim:{c['id']}"
    legs = {p["account"]: p["amount"] for p in posted["postings"]}
    assert legs[accounts.issuance_points(1, "volunteer")] == -10 and legs[accounts.issuance_minutes(1)] == -60


def test_auto_rule_without_publicity_posts_at_once(town, world):
    rule(world, code="visit", category="neighbour_help", title="探访空巢老人", points=5, minutes=30,
         review="auto", publicity_days=0)
    c = claim(world, town.r2, town.resident2, rule_code="visit")
    assert c["status"] == "posted" and c["transaction_id"]
    assert world.balance(accounts.household_points(town.h2)) == 5
    assert world.balance(accounts.resident_minutes(town.r2)) == 30


def test_auto_rule_with_publicity_skips_pending(town, world):
    rule(world, code="moral", category="moral", title="孝老爱亲", review="auto", publicity_days=5)
    c = claim(world, town.r1, town.resident1, rule_code="moral")
    assert c["status"] == "publicized"


def test_staff_enter_claims_for_residents(town, world):
    rule(world)
    c = claim(world, town.r2, "grid", note="代录：老人没有手机")
    assert c["entered_for_resident"] is True and c["resident_id"] == town.r2
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.core.users import User

        grid_id = db.session.query(User).filter_by(username="grid").one().id
    assert c["entered_by_user_id"] == grid_id
    # A resident claims only for themselves; a clerk or supervisor enters nothing.
    for user in (town.resident1, "clerk", "super"):
        r = world.call("POST", "/api/v1/claims", user,
                       json={"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r2})
        assert r.status_code == 403, user
    r = world.call("POST", "/api/v1/claims", "other_committee",
                   json={"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r1})
    assert r.status_code == 403
    r = world.call("POST", "/api/v1/claims", "committee",
                   json={"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r3})
    assert r.status_code == 422 and "resident_id" in r.get_json()["errors"]


def test_nobody_approves_their_own_households_claim(town, world):
    rule(world)
    c = claim(world, town.r1, town.resident1)
    r = world.call("POST", f"/api/v1/claims/{c['id']}/approve", "committee_h1")
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    assert world.call("POST", f"/api/v1/claims/{c['id']}/approve", "committee").status_code == 200


def test_status_errors(town, world):
    rule(world)
    rule(world, code="old", title="旧条目")
    c = claim(world, town.r1, town.resident1)
    r = world.call("POST", f"/api/v1/claims/{c['id']}/object", town.resident2, json={"reason": "x"})
    assert r.status_code == 409 and r.get_json()["error"] == "claim_not_publicized"
    r = world.call("POST", f"/api/v1/claims/{c['id']}/reject", "committee", json={"reason": "照片不清楚"})
    assert r.status_code == 200 and r.get_json()["status"] == "rejected"
    assert r.get_json()["rejection_reason"] == "照片不清楚"
    for action, body in (("approve", None), ("reject", {"reason": "again"})):
        r = world.call("POST", f"/api/v1/claims/{c['id']}/{action}", "committee", json=body)
        assert r.status_code == 409 and r.get_json()["error"] == "claim_not_pending"
    r = world.call("POST", f"/api/v1/claims/{c['id']}/reject", "committee", json={})
    assert r.status_code == 422

    old = world.call("GET", "/api/v1/rules?community_code=hongxing", "committee").get_json()["items"][1]
    world.call("POST", f"/api/v1/rules/{old['id']}/versions", "committee", json={"active": False})
    r = world.call("POST", "/api/v1/claims", town.resident1,
                   json={"community_code": "hongxing", "rule_code": "old", "resident_id": town.r1})
    assert r.status_code == 409 and r.get_json()["error"] == "rule_inactive"
    r = world.call("POST", "/api/v1/claims", town.resident1,
                   json={"community_code": "hongxing", "rule_code": "nope", "resident_id": town.r1})
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"


def test_objection_after_publicity_ended_is_refused(town, world, clock):
    rule(world, review="auto", publicity_days=1)
    c = claim(world, town.r1, town.resident1)
    advance(world, clock, days=1, seconds=1)
    r = world.call("POST", f"/api/v1/claims/{c['id']}/object", town.resident2, json={"reason": "late"})
    assert r.status_code == 409 and r.get_json()["error"] == "claim_not_publicized"


def test_cap_per_household_and_period(town, world, clock):
    rule(world, review="auto", publicity_days=0, cap={"period": "day", "max_points": 20})
    claim(world, town.r1, town.resident1)
    claim(world, town.r1b, town.resident1b)  # the cap is per household, not per person
    r = world.call("POST", "/api/v1/claims", town.resident1,
                   json={"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r1})
    assert r.status_code == 409 and r.get_json()["error"] == "cap_exceeded"
    claim(world, town.r2, town.resident2)  # another household has its own cap
    advance(world, clock, days=1)
    claim(world, town.r1, town.resident1)
    assert world.balance(accounts.household_points(town.h1)) == 30


def test_cap_counts_only_approved_claims_and_is_checked_at_approval(town, world):
    rule(world, cap={"period": "week", "max_points": 10})
    first = claim(world, town.r1, town.resident1)
    second = claim(world, town.r1b, town.resident1b)  # pending claims do not use the cap
    assert world.call("POST", f"/api/v1/claims/{first['id']}/approve", "grid").status_code == 200
    r = world.call("POST", f"/api/v1/claims/{second['id']}/approve", "grid")
    assert r.status_code == 409 and r.get_json()["error"] == "cap_exceeded"
    assert world.call("GET", f"/api/v1/claims/{second['id']}", "grid").get_json()["status"] == "pending"
    # Once the cap is used, a new claim is refused at once.
    r = world.call("POST", "/api/v1/claims", town.resident1,
                   json={"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r1})
    assert r.status_code == 409 and r.get_json()["error"] == "cap_exceeded"


def test_cap_holds_when_two_approvals_race(town, world):
    rule(world, publicity_days=0, cap={"period": "month", "max_points": 10})
    first = claim(world, town.r1, town.resident1)
    second = claim(world, town.r1b, town.resident1b)
    tokens = {name: world.token(name) for name in ("committee", "grid")}
    barrier = threading.Barrier(2)
    results = {}

    def approve(name, claim_id):
        client = world.app.test_client()
        barrier.wait()
        r = client.post(f"/api/v1/claims/{claim_id}/approve", headers={"Authorization": f"Bearer {tokens[name]}"})
        results[name] = (r.status_code, r.get_json().get("error"))

    threads = [threading.Thread(target=approve, args=("committee", first["id"])),
               threading.Thread(target=approve, args=("grid", second["id"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values(), key=lambda x: x[0]) == [(200, None), (409, "cap_exceeded")]
    assert world.balance(accounts.household_points(town.h1)) == 10


def test_access_to_claims_across_households_and_communities(town, world):
    rule(world, review="auto", publicity_days=3)
    rule(world, code="lv", community_code="lvye", user="other_committee")
    c = claim(world, town.r1, town.resident1)
    # Another household's resident and another community's staff do not see it.
    for user in (town.resident2, town.resident3, "other_committee"):
        r = world.call("GET", f"/api/v1/claims/{c['id']}", user)
        assert r.status_code == 404, user
    for user in ("other_committee", town.resident3):
        r = world.call("POST", f"/api/v1/claims/{c['id']}/object", user, json={"reason": "x"})
        assert r.status_code == 404, user
    # Supervisors read everything in their community and change nothing.
    assert world.call("GET", f"/api/v1/claims/{c['id']}", "super").status_code == 200
    r = world.call("POST", f"/api/v1/claims/{c['id']}/object", "super", json={"reason": "x"})
    assert r.status_code == 403
    rule(world, code="reviewed", review="review")
    pending = claim(world, town.r2, town.resident2, rule_code="reviewed")
    assert pending["status"] == "pending"
    for user in ("super", "clerk", town.resident1):
        r = world.call("POST", f"/api/v1/claims/{pending['id']}/approve", user)
        assert r.status_code in (403, 404), user
    r = world.call("POST", f"/api/v1/claims/{pending['id']}/approve", "other_committee")
    assert r.status_code == 404
    # Lists: staff see their community; residents only their own household.
    r = world.call("GET", "/api/v1/claims?community_code=hongxing", "super").get_json()
    assert len(r["items"]) == 2
    r = world.call("GET", "/api/v1/claims?community_code=hongxing", town.resident2).get_json()
    assert [i["household_id"] for i in r["items"]] == [town.h2]
    r = world.call("GET", f"/api/v1/claims?community_code=hongxing&household_id={town.h1}", town.resident2)
    assert [i["household_id"] for i in r.get_json()["items"]] == [town.h2]
    assert world.call("GET", "/api/v1/claims?community_code=hongxing", "other_committee").status_code == 403
    assert world.call("GET", "/api/v1/claims?community_code=lvye", town.resident1).status_code == 403
    r = world.call("GET", "/api/v1/claims?community_code=hongxing&status=publicized&limit=1", "admin").get_json()
    assert [i["id"] for i in r["items"]] == [c["id"]] and r["next_cursor"] is None


def test_claims_list_pages(town, world):
    rule(world)
    ids = [claim(world, town.r1, town.resident1)["id"] for _ in range(3)]
    page = world.call("GET", "/api/v1/claims?community_code=hongxing&status=pending&limit=2", "grid").get_json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = world.call("GET", f"/api/v1/claims?community_code=hongxing&limit=2&cursor={page['next_cursor']}",
                      "grid").get_json()
    assert [i["id"] for i in rest["items"]] == [ids[0]] and rest["next_cursor"] is None


def test_claim_is_idempotent_by_key(town, world):
    rule(world, review="auto", publicity_days=0)
    body = {"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r1}
    headers = {"Idempotency-Key": "claim-1"}
    first = world.call("POST", "/api/v1/claims", town.resident1, json=body, headers=headers)
    again = world.call("POST", "/api/v1/claims", town.resident1, json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.get_json()["id"] == again.get_json()["id"]
    assert world.balance(accounts.household_points(town.h1)) == 10
    other = world.call("POST", "/api/v1/claims", town.resident1, json={**body, "note": "x"}, headers=headers)
    assert other.status_code == 422 and other.get_json()["error"] == "idempotency_key_reused"


def test_approving_a_claim_that_is_not_there_or_not_yours_to_see_is_404_and_moves_nothing(town, world):
    """The approval reads its claim locked with what it goes on to read: a claim that does not exist,
    or that the reviewer may not see, is the same problem as before, and nothing is written."""
    rule(world)
    pending = claim(world, town.r1, town.resident1)
    before = world.call("GET", "/api/v1/ledger/verify", "committee").get_json()
    for user, claim_id in (("committee", pending["id"] + 1000), ("other_committee", pending["id"])):
        r = world.call("POST", f"/api/v1/claims/{claim_id}/approve", user)
        assert r.status_code == 404, r.get_json()
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.get_json()["error"] == "not_found"
    assert _claim_row(world.app, pending["id"])["status"] == "pending"
    assert world.call("GET", "/api/v1/ledger/verify", "committee").get_json() == before
