"""Two back-office anomalies: the pool paying the same few households, and repeated refused insider attempts.

The refused attempts are recorded in ``refusals`` after their request (whose own transaction is rolled
back), from the API and the pages, never by a GET, and a failure to record never changes the answer.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from conftest import page_login
from earning_support import PASSWORD, advance, build_town, claim, rule
from timebank.core.extensions import db
from timebank.core.refusals import Refusal

URL = "/api/v1/reports/anomalies?community_code=hongxing"


def flagged(world, kind, user="committee"):
    r = world.call("GET", URL, user)
    assert r.status_code == 200, r.get_json()
    return [a for a in r.get_json()["items"] if a["kind"] == kind]


def refusals(app):
    with app.app_context():
        return db.session.execute(select(Refusal).order_by(Refusal.id)).scalars().all()


# --- pool_concentration --------------------------------------------------------------------------------

class Pool:
    """A red household whose help the pool pays, and five volunteer households."""

    def __init__(self, world):
        self.world = world
        world.user("committee", "committee")
        world.user("grid", "grid_worker")
        self.red = world.household(name="困难户", color="red")
        self.requester = world.resident(self.red, "陈奶奶")
        self.homes = [world.household(name=n) for n in ("张家", "李家", "王家", "赵家", "孙家")]
        self.volunteers = [world.resident(h, n[0] + "一") for h, n in zip(self.homes, "张李王赵孙", strict=True)]
        r = world.call("POST", "/api/v1/hours/pool", "committee",
                       json={"community_code": "hongxing", "minutes": 1200, "note": "街道拨付"})
        assert r.status_code in (200, 201), r.get_json()

    def pay(self, volunteer_index, minutes=30):
        w = self.world
        r = w.call("POST", "/api/v1/help-requests", "committee",
                   json={"resident_id": self.requester, "title": "买菜", "minutes": minutes})
        assert r.status_code == 201, r.get_json()
        hid = r.get_json()["id"]
        r = w.call("POST", f"/api/v1/help-requests/{hid}/accept", "committee",
                   json={"volunteer_id": self.volunteers[volunteer_index]})
        assert r.status_code == 200, r.get_json()
        r = w.call("POST", f"/api/v1/help-requests/{hid}/complete", "grid")
        assert r.status_code == 200 and r.get_json()["paid_by"] == "pool", r.get_json()
        return hid


@pytest.fixture
def pool(world):
    return Pool(world)


def test_pool_paying_mostly_three_households_is_flagged(world, pool):
    paid = [pool.pay(i) for i in (0,) * 7 + (1, 2, 3)]  # 10 payouts: 9 of them to three households
    items = flagged(world, "pool_concentration")
    assert len(items) == 1
    a = items[0]
    assert [s["id"] for s in a["subjects"]] == pool.homes[:3]
    assert a["evidence"]["payouts"] == 10 and a["evidence"]["pool_minutes"] == 300
    assert a["evidence"]["share"] == 0.9 and a["evidence"]["households_volunteering"] == 4
    assert a["evidence"]["minutes_by_household"] == {str(pool.homes[0]): 210, str(pool.homes[1]): 30,
                                                     str(pool.homes[2]): 30}
    assert a["evidence"]["help_request_ids"] == paid[:9]
    assert list(a["evidence"]["confirmed_by_user_ids"].values()) == [10]
    assert "90%" in a["reason"]


def test_pool_below_the_thresholds_is_not_flagged(world, pool):
    for i in (0,) * 6 + (1, 2, 3):  # 9 payouts, as concentrated: too few to say
        pool.pay(i)
    assert flagged(world, "pool_concentration") == []
    pool.pay(4)  # the tenth, to a fifth household: the top three now hold 8 of 10
    assert [a["evidence"]["share"] for a in flagged(world, "pool_concentration")] == [0.8]


def test_pool_spread_over_the_volunteers_is_not_flagged(world, pool):
    for i in list(range(5)) * 2:  # 10 payouts, two to each of five households: the top three hold 60%
        pool.pay(i)
    assert flagged(world, "pool_concentration") == []


def test_three_volunteers_alone_are_not_compared(world, pool):
    for i in (0,) * 8 + (1, 2):  # 10 payouts, but only three households volunteered at all
        pool.pay(i)
    assert flagged(world, "pool_concentration") == []


# --- refused_self_dealing -----------------------------------------------------------------------------

@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world, code="clean", review="review", publicity_days=0)
    return t


def approve(world, claim_id, user="committee_h1", **kw):
    return world.call("POST", f"/api/v1/claims/{claim_id}/approve", user, **kw)


def test_refused_attempts_are_recorded_after_the_rollback(app, world, town):
    own = claim(world, town.r1, town.resident1)
    r = approve(world, own["id"])
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    assert world.call("GET", f"/api/v1/claims/{own['id']}", "committee").get_json()["status"] == "pending"
    [row] = refusals(app)
    assert (row.code, row.method, row.path) == ("self_approval", "POST", f"/api/v1/claims/{own['id']}/approve")
    with app.app_context():
        from timebank.core.users import User

        user = db.session.execute(select(User).where(User.username == "committee_h1")).scalar_one()
        assert (row.user_id, row.community_id) == (user.id, user.community_id)
    # Other refusals are not insider attempts; GET requests never write.
    assert approve(world, 9999).status_code == 404
    assert world.call("GET", URL, "committee").status_code == 200
    assert len(refusals(app)) == 1


def test_a_stored_refusal_replayed_is_not_counted_again(app, world, town):
    own = claim(world, town.r1, town.resident1)
    for _ in range(2):
        r = approve(world, own["id"], headers={"Idempotency-Key": "approve-1"})
        assert r.status_code == 403
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert [row.code for row in refusals(app)] == ["self_approval"]


def test_a_resident_volunteering_for_their_own_household_is_recorded(app, world, town):
    r = world.call("POST", "/api/v1/help-requests", town.resident1,
                   json={"resident_id": town.r1, "title": "买菜", "minutes": 30})
    hid = r.get_json()["id"]
    r = world.call("POST", f"/api/v1/help-requests/{hid}/accept", town.resident1b, json={"volunteer_id": town.r1b})
    assert r.status_code == 403 and r.get_json()["error"] == "self_dealing"
    [row] = refusals(app)
    assert row.code == "self_dealing" and row.community_id == 1


def test_page_refusals_are_recorded_too(app, world, town):
    own = claim(world, town.r1, town.resident1)
    client = page_login(app, "committee_h1")
    r = client.post(f"/committee/claims/{own['id']}/approve", data={"form_key": "key-00000001"},
                    follow_redirects=True)
    assert r.status_code == 200
    assert [(row.code, row.path) for row in refusals(app)] == [
        ("self_approval", f"/committee/claims/{own['id']}/approve")]


def test_a_failed_record_leaves_the_refusal_a_refusal(app, world, town, monkeypatch):
    from timebank.core import refusals as module

    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setattr(module, "utc_naive", broken)
    own = claim(world, town.r1, town.resident1)
    r = approve(world, own["id"])
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    monkeypatch.undo()
    assert refusals(app) == []
    # The app goes on: the next refusal is recorded.
    assert approve(world, own["id"]).status_code == 403
    assert len(refusals(app)) == 1


def test_the_record_is_append_only(app, world, town):
    own = claim(world, town.r1, town.resident1)
    approve(world, own["id"])
    with app.app_context():
        for statement in ("UPDATE refusals SET code = 'x'", "DELETE FROM refusals"):
            with pytest.raises(Exception, match="append-only|refuse|not allowed"):
                db.session.execute(text(statement))
                db.session.flush()
            db.session.rollback()
    assert len(refusals(app)) == 1


def test_repeated_refused_attempts_are_flagged(app, world, town, clock):
    claims = [claim(world, town.r1, town.resident1)["id"] for _ in range(3)]
    for claim_id in claims[:2]:
        assert approve(world, claim_id).status_code == 403
    assert flagged(world, "refused_self_dealing") == []  # two: below the threshold
    client = page_login(app, "committee_h1")
    client.post(f"/committee/claims/{claims[2]}/approve", data={"form_key": "key-00000002"})
    [a] = flagged(world, "refused_self_dealing")
    assert a["subjects"] == [{"type": "user", "id": a["subjects"][0]["id"], "name": "committee_h1",
                              "role": "committee"}]
    assert a["evidence"]["refusals"] == 3 and a["evidence"]["codes"] == {"self_approval": 3}
    assert len(a["evidence"]["paths"]) == 3
    assert flagged(world, "refused_self_dealing", "super") == [a]
    # Others are not flagged for them, and the window moves on.
    assert approve(world, claims[0], "committee").status_code == 200
    assert len(flagged(world, "refused_self_dealing")) == 1
    advance(world, clock, days=31)
    assert flagged(world, "refused_self_dealing") == []


def test_the_anomaly_page_names_both_patterns(app, world, town):
    own = claim(world, town.r1, town.resident1)
    for _ in range(3):
        approve(world, own["id"])
    page = page_login(app, "committee").get("/committee/anomalies")
    html = page.get_data(as_text=True)
    assert "refused_self_dealing" in html and "多次试图为自家办事被拒" in html and "committee_h1" in html
