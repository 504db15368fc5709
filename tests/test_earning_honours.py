"""Honours (文明家庭, 最美家庭, 美丽庭院): an honour list per community, awards after publicity (公示)
with an objection window, points posted once through the ledger, held for a term, put up for review
every half year by a scheduled job, kept or withdrawn by a decision with a reason; shown on the
public board and the household's pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conftest import main_text, page_login
from earning_support import PASSWORD, advance, build_town
from timebank.core import accounts
from timebank.core.extensions import db


@pytest.fixture
def town(world):
    return build_town(world)


def honour(world, code="civilized", user="committee", **terms):
    body = {"community_code": "hongxing", "code": code, "title": "文明家庭", "points": 50, "publicity_days": 7,
            "term_months": 12, "review_months": 6}
    body.update(terms)
    r = world.call("POST", "/api/v1/honours", user, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def nominate(world, household_id, user="grid", code="civilized", expect=201, **extra):
    r = world.call("POST", "/api/v1/honour-awards", user,
                   json={"community_code": "hongxing", "honour_code": code, "household_id": household_id, **extra})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def act(world, award_id, action, user="committee", expect=200, **body):
    r = world.call("POST", f"/api/v1/honour-awards/{award_id}/{action}", user, json=body or None)
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def run_job(app, name):
    from timebank.core.boundary import run_job_once
    from timebank.core.jobs import JOBS

    with app.app_context():
        return run_job_once(JOBS[name].func)


def honour_transactions(app, award_id):
    from ledger.models import Transaction

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Transaction).where(
            Transaction.reference == f"honour_award:{award_id}")).scalar_one()


def test_negative_or_missing_honours_are_refused_today_and_the_list_is_per_community(world, town):
    honour(world)
    assert world.call("POST", "/api/v1/honours", "committee", json={
        "community_code": "hongxing", "code": "bad", "title": "x", "points": -5}).status_code == 422
    assert world.call("POST", "/api/v1/honours", "grid", json={
        "community_code": "hongxing", "code": "g", "title": "x"}).status_code == 403
    again = world.call("POST", "/api/v1/honours", "committee", json={
        "community_code": "hongxing", "code": "civilized", "title": "x"})
    assert again.status_code == 409 and again.get_json()["error"] == "honour_exists"
    listed = world.call("GET", "/api/v1/honours?community_code=hongxing", town.resident1).get_json()["items"]
    assert [h["code"] for h in listed] == ["civilized"]
    assert world.call("GET", "/api/v1/honours?community_code=lvye", "other_committee").get_json()["items"] == []
    assert world.call("GET", "/api/v1/honours?community_code=hongxing", "other_committee").status_code == 403


def test_award_after_publicity_posts_points_once_and_is_held_for_its_term(world, town, clock, app):
    honour(world)
    award = nominate(world, town.h2, note="孝敬老人，邻里称道")
    assert award["status"] == "pending" and award["points"] == 50
    again = nominate(world, town.h2, expect=409)
    assert again["error"] == "honour_already_held"
    approved = act(world, award["id"], "approve", headers=None)
    assert approved["status"] == "publicized" and approved["transaction_id"] is None
    assert world.balance(accounts.household_points(town.h2)) == 0

    # The public board shows it under publicity, with the household's name masked.
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert board["honours_publicity"] == [{"award_id": award["id"], "household_name": "李*", "honour_title": "文明家庭",
                                           "points": 50, "publicity_ends_at": approved["publicity_ends_at"]}]
    assert run_job(app, "close_honour_publicity")["awarded"] == []  # not yet
    advance(world, clock, days=7, minutes=1)
    assert run_job(app, "close_honour_publicity")["awarded"] == [award["id"]]
    assert run_job(app, "close_honour_publicity")["awarded"] == []  # safe to run twice
    held = world.call("GET", f"/api/v1/honour-awards/{award['id']}", town.resident2).get_json()
    assert held["status"] == "held" and held["transaction_id"]
    assert held["held_until"].startswith("2027-03-09") and held["next_review_at"].startswith("2026-09-09")
    assert world.balance(accounts.household_points(town.h2)) == 50
    assert honour_transactions(app, award["id"]) == 1
    assert [e["action"] for e in held["events"]] == ["propose", "approve", "award"]
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert board["honours"][0]["household_name"] == "李*" and board["honours"][0]["under_review"] is False
    # The points count as earned this month (the ranking), from the moral issuance account.
    assert board["ranking"][0] == {"rank": 1, "household_name": "李*", "points": 50}


def test_honour_points_are_posted_once_even_when_conferred_twice(world, town, app):
    """The ledger's idempotency key ``honour_award:<id>:post``: a second posting of the same award
    returns the first transaction and moves nothing."""
    from timebank.earning import honours
    from timebank.earning.models import HonourAward

    honour(world, publicity_days=0)
    award = nominate(world, town.h2)
    first = act(world, award["id"], "approve", headers=None)
    assert first["status"] == "held" and world.balance(accounts.household_points(town.h2)) == 50
    with app.app_context():
        row = db.session.get(HonourAward, award["id"])
        honours.confer(row, actor="test")  # again, as a retried job would
        assert row.transaction_id == first["transaction_id"]
        db.session.commit()
        # Past the award's own guard, the ledger's key refuses a second posting of the award.
        import ledger
        from timebank.core import ledgering

        with pytest.raises(ledger.IdempotencyKeyReused):
            ledgering.post(row.community_id, [ledger.Leg(accounts.issuance_points(row.community_id, "moral"), -50),
                                              ledger.Leg(accounts.household_points(town.h2), 50)],
                           kind="honour", actor="test", idempotency_key=f"honour_award:{row.id}:post")
        db.session.rollback()
    assert world.balance(accounts.household_points(town.h2)) == 50
    assert honour_transactions(app, award["id"]) == 1


def test_approval_with_an_idempotency_key_is_replayed(world, town, app):
    honour(world, publicity_days=0)
    award = nominate(world, town.h2)
    url = f"/api/v1/honour-awards/{award['id']}/approve"
    one = world.call("POST", url, "committee", headers={"Idempotency-Key": "award-1"})
    two = world.call("POST", url, "committee", headers={"Idempotency-Key": "award-1"})
    assert one.status_code == two.status_code == 200 and two.headers.get("Idempotent-Replayed") == "true"
    assert one.get_json() == two.get_json()
    assert world.balance(accounts.household_points(town.h2)) == 50
    assert honour_transactions(app, award["id"]) == 1


def test_an_objection_sends_the_award_back_and_nobody_approves_their_own(world, town, clock, app):
    honour(world)
    own = nominate(world, town.h1)
    refused = act(world, own["id"], "approve", "committee_h1", expect=403)
    assert refused["error"] == "self_approval"
    mine = nominate(world, town.h2, user="committee", code="civilized")
    assert act(world, mine["id"], "approve", "committee", expect=403)["error"] == "self_approval"
    assert act(world, mine["id"], "approve", "grid", expect=403)["error"] == "forbidden"  # the committee awards
    world.user("committee2", "committee")
    act(world, mine["id"], "approve", "committee2")
    objected = act(world, mine["id"], "object", town.resident1, reason="该户上月有违规搭建")
    assert objected["status"] == "pending" and objected["publicity_ends_at"] is None
    assert act(world, mine["id"], "object", town.resident1, expect=409, reason="x")["error"] == "award_not_publicized"
    rejected = act(world, mine["id"], "reject", "committee2", reason="经核实，有违规搭建")
    assert rejected["status"] == "rejected" and rejected["rejection_reason"] == "经核实，有违规搭建"
    advance(world, clock, days=30)
    assert run_job(app, "close_honour_publicity")["awarded"] == []
    assert world.balance(accounts.household_points(town.h2)) == 0
    # Rejected: the household may be nominated again.
    nominate(world, town.h2)


def test_half_yearly_review_keep_or_withdraw_with_a_reason(world, town, clock, app):
    honour(world, publicity_days=0)
    world.household(name="赵家")
    with app.app_context():
        from timebank.people.models import Household

        h4 = db.session.execute(select(Household.id).where(Household.name == "赵家")).scalar_one()
    kept = act(world, nominate(world, town.h2)["id"], "approve")
    withdrawn = act(world, nominate(world, h4)["id"], "approve")
    assert run_job(app, "review_honours") == {"ended": [], "under_review": [], "skipped": []}
    advance(world, clock, days=182)  # not yet half a year: 2026-09-01
    assert run_job(app, "review_honours")["under_review"] == []
    advance(world, clock, days=2)
    assert run_job(app, "review_honours")["under_review"] == [kept["id"], withdrawn["id"]]
    assert run_job(app, "review_honours")["under_review"] == []  # acts on due ones only
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert all(h["under_review"] for h in board["honours"])

    missing = world.call("POST", f"/api/v1/honour-awards/{kept['id']}/keep", "committee", json={})
    assert missing.status_code == 422
    decided = act(world, kept["id"], "keep", reason="复核：保持文明家庭标准")
    assert decided["status"] == "held" and decided["next_review_at"].startswith("2027-03-02")
    assert decided["events"][-1] == {**decided["events"][-1], "action": "keep", "reason": "复核：保持文明家庭标准"}
    gone = act(world, withdrawn["id"], "withdraw", reason="家庭成员违反村规民约")
    assert gone["status"] == "withdrawn" and gone["withdrawal_reason"] == "家庭成员违反村规民约"
    assert act(world, withdrawn["id"], "keep", expect=409, reason="x")["error"] == "award_not_under_review"
    assert act(world, withdrawn["id"], "withdraw", expect=409, reason="x")["error"] == "award_not_held"
    # Withdrawal does not take the points back.
    assert world.balance(accounts.household_points(h4)) == 50
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert [h["household_name"] for h in board["honours"]] == ["李*"]

    # The term ends after 12 months: the job ends the award, with no review left to make.
    advance(world, clock, days=190)
    assert run_job(app, "review_honours") == {"ended": [kept["id"]], "under_review": [], "skipped": []}
    assert world.client.get("/api/v1/public/hongxing").get_json()["honours"] == []


def test_a_committee_member_does_not_decide_the_review_of_their_own_household(world, town, clock, app):
    honour(world, publicity_days=0)
    world.user("committee2", "committee")
    award = act(world, nominate(world, town.h1)["id"], "approve", "committee")
    advance(world, clock, days=200)
    run_job(app, "review_honours")
    assert act(world, award["id"], "keep", "committee_h1", expect=403, reason="x")["error"] == "self_approval"
    assert act(world, award["id"], "withdraw", "committee_h1", expect=403, reason="x")["error"] == "self_approval"


def test_residents_see_their_own_awards_only(world, town):
    honour(world, publicity_days=0)
    award = act(world, nominate(world, town.h2)["id"], "approve")
    assert world.call("GET", f"/api/v1/honour-awards/{award['id']}", town.resident1).status_code == 404
    mine = world.call("GET", "/api/v1/honour-awards?community_code=hongxing", town.resident2).get_json()["items"]
    assert [a["id"] for a in mine] == [award["id"]]
    assert world.call("GET", "/api/v1/honour-awards?community_code=hongxing", town.resident1).get_json()["items"] == []


def test_pages_show_honours_to_the_household_and_the_committee_decides_on_its_page(world, town, clock, app):
    honour(world, publicity_days=0)
    award = act(world, nominate(world, town.h2)["id"], "approve")
    resident = page_login(app, town.resident2, PASSWORD)
    home = main_text(resident.get("/me/"))
    assert "文明家庭" in home
    staff = page_login(app, "committee")
    assert "文明家庭" in main_text(staff.get(f"/committee/households/{town.h2}"))
    advance(world, clock, days=200)
    run_job(app, "review_honours")
    page = staff.get("/committee/honours")
    assert page.status_code == 200 and "李家" in main_text(page)
    from test_forms_send_a_key import forms_of

    form = next(f for f in forms_of(page, "/committee/honours") if f["action"].endswith(f"/{award['id']}/withdraw"))
    data = {f["name"]: f["value"] for f in form["fields"]}
    data["reason"] = "复核不合格"
    done = staff.post(form["action"], data=data)
    assert done.status_code == 302
    assert world.call("GET", f"/api/v1/honour-awards/{award['id']}", "committee").get_json()["status"] == "withdrawn"
    assert world.client.get("/api/v1/public/hongxing").get_json()["honours"] == []


def test_the_nomination_form_on_the_committee_page(world, town, app):
    honour(world)
    staff = page_login(app, "grid")
    page = staff.get("/committee/honours")
    from test_forms_send_a_key import forms_of

    form = next(f for f in forms_of(page, "/committee/honours") if f["id"] == "nominate")
    data = {f["name"]: f["value"] for f in form["fields"]}
    data.update(household_id=str(town.h2), honour_code="civilized", note="热心公益")
    assert staff.post(form["action"], data=data).status_code == 302
    items = world.call("GET", "/api/v1/honour-awards?community_code=hongxing", "committee").get_json()["items"]
    assert [(a["household_id"], a["status"], a["note"]) for a in items] == [(town.h2, "pending", "热心公益")]
    # Objecting from the public board: the award goes back for review.
    act(world, items[0]["id"], "approve")
    neighbour = page_login(app, town.resident1, PASSWORD)
    form_page = neighbour.get(f"/public/hongxing/honours/{items[0]['id']}/object")
    assert form_page.status_code == 200
    form = forms_of(form_page, f"/public/hongxing/honours/{items[0]['id']}/object")[-1]
    data = {f["name"]: f["value"] for f in form["fields"]}
    data["reason"] = "情况不实"
    assert neighbour.post(form["action"], data=data).status_code == 302
    assert world.call("GET", f"/api/v1/honour-awards/{items[0]['id']}", "committee").get_json()["status"] == "pending"


def test_add_months_keeps_the_day_or_takes_the_last_of_the_month(app):
    from datetime import datetime

    from timebank.earning.honours import add_months

    with app.app_context():
        # 2026-08-31 10:00 local (02:00 UTC) + 6 months = 2027-02-28 10:00 local
        assert add_months(datetime(2026, 8, 31, 2), 6) == datetime(2027, 2, 28, 2)
        assert add_months(datetime(2026, 3, 2, 2), 6) == datetime(2026, 9, 2, 2)
        assert add_months(datetime(2026, 12, 31, 17), 1) == datetime(2027, 1, 31, 17)  # 1 Jan local, +1 month
        assert add_months(datetime(2026, 3, 2, 2), 6) - datetime(2026, 3, 2, 2) == timedelta(days=184)
