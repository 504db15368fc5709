"""Deductions (扣分项): items with negative points, applied after review and publicity (公示) with an
objection window; a wallet never goes below zero: a deduction larger than the balance takes the
balance and counts the rest against the ranking score (积分榜), never as a debt. The ranking score
is kept apart from the spendable balance; the public board shows the red list and, when the
committee publishes it, the black list (红黑榜), with masked names."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import main_text, page_login
from earning_support import PASSWORD, advance, build_town, claim, rule
from timebank.core import accounts
from timebank.core.extensions import db


@pytest.fixture
def town(world):
    return build_town(world)


def item(world, code="litter", points=-5, publicity_days=3, user="committee", expect=201, title="乱倒垃圾"):
    r = world.call("POST", "/api/v1/deduction-items", user, json={
        "community_code": "hongxing", "code": code, "title": title, "points": points, "publicity_days": publicity_days})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def deduct(world, household_id, code="litter", user="grid", expect=201, headers=None, **extra):
    r = world.call("POST", "/api/v1/deductions", user, headers=headers, json={
        "community_code": "hongxing", "item_code": code, "household_id": household_id, **extra})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def act(world, deduction_id, action, user="committee", expect=200, headers=None, **body):
    r = world.call("POST", f"/api/v1/deductions/{deduction_id}/{action}", user, json=body or None, headers=headers)
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def run_job(app, name):
    from timebank.core.boundary import run_job_once
    from timebank.core.jobs import JOBS

    with app.app_context():
        return run_job_once(JOBS[name].func)


def deduction_transactions(app, deduction_id):
    from ledger.models import Transaction

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Transaction).where(
            Transaction.reference == f"deduction:{deduction_id}")).scalar_one()


def standing(world, household_id, user="committee"):
    r = world.call("GET", f"/api/v1/households/{household_id}/ranking", user)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_items_take_points_and_positive_ones_are_refused(world, town):
    assert item(world)["points"] == -5
    refused = world.call("POST", "/api/v1/deduction-items", "committee", json={
        "community_code": "hongxing", "code": "plus", "title": "x", "points": 5})
    assert refused.status_code == 422
    assert item(world, "g", user="grid", expect=403)["error"] == "forbidden"
    assert item(world, "litter", expect=409)["error"] == "deduction_item_exists"
    changed = world.call("PATCH", f"/api/v1/deduction-items/{item(world, 'blocking', -10)['id']}", "committee",
                         json={"points": -8})
    assert changed.status_code == 200 and changed.get_json()["points"] == -8


def test_a_deduction_is_applied_after_publicity_within_the_balance(world, town, clock, app):
    item(world)
    world.grant(town.h2, 20)
    entered = deduct(world, town.h2, resident_id=town.r2, note="往河道倒垃圾")
    assert entered["status"] == "pending" and entered["points"] == -5
    approved = act(world, entered["id"], "approve")
    assert approved["status"] == "publicized" and world.balance(accounts.household_points(town.h2)) == 20
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert board["deductions_publicity"] == [{"deduction_id": entered["id"], "household_name": "李*",
                                              "item_title": "乱倒垃圾", "points": -5,
                                              "publicity_ends_at": approved["publicity_ends_at"]}]
    assert run_job(app, "close_deduction_publicity")["applied"] == []
    advance(world, clock, days=3, minutes=1)
    assert run_job(app, "close_deduction_publicity")["applied"] == [entered["id"]]
    assert run_job(app, "close_deduction_publicity")["applied"] == []
    applied = world.call("GET", f"/api/v1/deductions/{entered['id']}", town.resident2).get_json()
    assert (applied["status"], applied["wallet_points"], applied["ranking_points"]) == ("applied", 5, 0)
    assert world.balance(accounts.household_points(town.h2)) == 15
    with app.app_context():
        from timebank.people.operations import community_by_code

        sink = accounts.deducted_points(community_by_code("hongxing").id)
    assert world.balance(sink) == 5
    assert deduction_transactions(app, entered["id"]) == 1
    assert [e["action"] for e in applied["events"]] == ["create", "approve", "apply"]


def test_a_deduction_larger_than_the_balance_takes_the_balance_and_the_rest_lowers_the_ranking(world, town, app):
    rule(world, "clean", points=8, publicity_days=0)
    item(world, "banquet", -20, publicity_days=0, title="红白事大操大办")
    posted = claim(world, town.r2, town.resident2)
    act_claim = world.call("POST", f"/api/v1/claims/{posted['id']}/approve", "committee")
    assert act_claim.get_json()["status"] == "posted"
    assert world.balance(accounts.household_points(town.h2)) == 8
    applied = act(world, deduct(world, town.h2, "banquet")["id"], "approve")
    assert (applied["status"], applied["wallet_points"], applied["ranking_points"]) == ("applied", 8, 12)
    assert world.balance(accounts.household_points(town.h2)) == 0  # never below zero, no debt
    shown = standing(world, town.h2)
    assert shown == {"household_id": town.h2, "month": "2026-03", "balance_points": 0, "earned_points": 8,
                     "deducted_points": 20, "ranking_score": -12}
    assert standing(world, town.h2, town.resident2) == shown  # the household sees its own
    assert world.call("GET", f"/api/v1/households/{town.h2}/ranking", town.resident1).status_code == 404
    # Later earnings are the household's: nothing is taken for the rest.
    posted = claim(world, town.r2, town.resident2)
    world.call("POST", f"/api/v1/claims/{posted['id']}/approve", "committee")
    assert world.balance(accounts.household_points(town.h2)) == 8
    assert standing(world, town.h2)["ranking_score"] == -4
    # An empty wallet: no ledger transaction at all, the whole deduction counts against the ranking.
    empty = world.household(name="赵家")
    second = act(world, deduct(world, empty, "banquet")["id"], "approve")
    assert (second["wallet_points"], second["ranking_points"], second["transaction_id"]) == (0, 20, None)
    assert deduction_transactions(app, second["id"]) == 0


def test_applying_is_idempotent(world, town, app):
    """Applying twice (a retried job, a second call) takes the points once: the deduction's status
    and the ledger's idempotency key ``deduction:<id>:apply``."""
    from timebank.earning import deductions
    from timebank.earning.models import Deduction

    item(world, publicity_days=0)
    world.grant(town.h2, 20)
    key = {"Idempotency-Key": "deduct-1"}
    entered = deduct(world, town.h2, headers=key)
    assert deduct(world, town.h2, headers=key) == entered  # the same key: the same deduction
    url = f"/api/v1/deductions/{entered['id']}/approve"
    one = world.call("POST", url, "committee", headers={"Idempotency-Key": "approve-1"})
    two = world.call("POST", url, "committee", headers={"Idempotency-Key": "approve-1"})
    assert one.get_json() == two.get_json() and two.headers.get("Idempotent-Replayed") == "true"
    assert act(world, entered["id"], "approve", expect=409)["error"] == "deduction_not_pending"
    with app.app_context():
        row = db.session.get(Deduction, entered["id"])
        deductions.apply_deduction(row, actor="test")
        deductions.close_publicity()
        db.session.commit()
    assert world.balance(accounts.household_points(town.h2)) == 15
    assert deduction_transactions(app, entered["id"]) == 1
    with app.app_context():
        count = db.session.execute(select(func.count()).select_from(Deduction)).scalar_one()
    assert count == 1


def test_the_wallet_never_goes_below_zero_in_the_database_either(world, town, app):
    """The ledger's CHECK refuses an overdraft: a posting written past the application's check fails."""
    import ledger

    item(world, publicity_days=0)
    world.grant(town.h2, 3)
    with app.app_context():
        from timebank.people.operations import community_by_code

        sink = accounts.open_deductions(db.session, community_by_code("hongxing").id)
        with pytest.raises(ledger.InsufficientFunds):
            ledger.post(db.session, [ledger.Leg(accounts.household_points(town.h2), -5), ledger.Leg(sink, 5)],
                        kind="deduction", memo="overdraft")
        db.session.rollback()
    applied = act(world, deduct(world, town.h2)["id"], "approve")
    assert (applied["wallet_points"], applied["ranking_points"]) == (3, 2)
    assert world.balance(accounts.household_points(town.h2)) == 0


def test_objection_review_and_self_approval(world, town, clock, app):
    item(world)
    world.grant(town.h1, 10)
    mine = deduct(world, town.h1, user="committee")
    assert act(world, mine["id"], "approve", "committee", expect=403)["error"] == "self_approval"  # entered it
    assert act(world, mine["id"], "approve", "committee_h1", expect=403)["error"] == "self_approval"  # own household
    assert act(world, mine["id"], "approve", "grid", expect=403)["error"] == "forbidden"
    world.user("committee2", "committee")
    act(world, mine["id"], "approve", "committee2")
    back = act(world, mine["id"], "object", town.resident1, reason="当天不在家，不是我家倒的")
    assert back["status"] == "pending"
    rejected = act(world, mine["id"], "reject", "committee2", reason="核实无误，撤回")
    assert rejected["status"] == "rejected"
    advance(world, clock, days=10)
    assert run_job(app, "close_deduction_publicity")["applied"] == []
    assert world.balance(accounts.household_points(town.h1)) == 10
    assert act(world, mine["id"], "object", town.resident1, expect=409, reason="x")["error"] == \
        "deduction_not_publicized"


def test_red_and_black_lists_on_the_public_board(world, town, app):
    rule(world, "clean", points=10, publicity_days=0)
    item(world, publicity_days=0)
    for resident, login in ((town.r1, town.resident1), (town.r2, town.resident2)):
        posted = claim(world, resident, login)
        approver = "committee" if resident != town.r1 else "grid"
        assert world.call("POST", f"/api/v1/claims/{posted['id']}/approve", approver).status_code == 200
    act(world, deduct(world, town.h2)["id"], "approve")
    board = world.client.get("/api/v1/public/hongxing").get_json()
    # The red list leaves out the household with a deduction; the black list is not published yet.
    assert board["ranking"] == [{"rank": 1, "household_name": "张*", "points": 10}]
    assert board["black_list_published"] is False and board["black_list"] == []
    assert "乱倒垃圾" not in main_text(world.client.get("/public/hongxing"))
    staff = world.call("GET", "/api/v1/rankings?community_code=hongxing", "committee").get_json()
    assert staff["ranking"] == [{"rank": 1, "household_id": town.h1, "household_name": "张家", "points": 10},
                                {"rank": 2, "household_id": town.h2, "household_name": "李家", "points": 5}]
    assert staff["black_list"] == [{"household_id": town.h2, "household_name": "李家", "deducted_points": 5,
                                    "items": ["乱倒垃圾"], "ranking_score": 5}]
    assert world.call("GET", "/api/v1/rankings?community_code=hongxing", town.resident1).status_code == 403

    assert world.call("PUT", "/api/v1/ranking-settings/hongxing", "grid",
                      json={"publish_black_list": True}).status_code == 403
    r = world.call("PUT", "/api/v1/ranking-settings/hongxing", "committee", json={"publish_black_list": True})
    assert r.status_code == 200 and r.get_json() == {"community_code": "hongxing", "publish_black_list": True}
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert board["black_list"] == [{"household_name": "李*", "deducted_points": 5, "items": ["乱倒垃圾"],
                                    "ranking_score": 5}]
    page = main_text(world.client.get("/public/hongxing"))
    assert "乱倒垃圾" in page and "李*" in page and "李家" not in page


def test_pages_committee_deductions_and_the_households_ranking_score(world, town, app):
    item(world, "banquet", -20, publicity_days=0, title="红白事大操大办")
    rule(world, "clean", points=6, publicity_days=0)
    posted = claim(world, town.r2, town.resident2)
    assert world.call("POST", f"/api/v1/claims/{posted['id']}/approve", "committee").status_code == 200
    from test_forms_send_a_key import forms_of

    grid = page_login(app, "grid")
    page = grid.get("/committee/deductions")
    form = next(f for f in forms_of(page, "/committee/deductions") if f["id"] == "enter-deduction")
    data = {f["name"]: f["value"] for f in form["fields"]}
    data.update(household_id=str(town.h2), item_code="banquet", note="宴席超标")
    assert grid.post(form["action"], data=data).status_code == 302
    committee = page_login(app, "committee")
    page = committee.get("/committee/deductions")
    assert "红白事大操大办" in main_text(page)
    form = next(f for f in forms_of(page, "/committee/deductions") if f["action"].endswith("/approve"))
    assert committee.post(form["action"], data={f["name"]: f["value"] for f in form["fields"]}).status_code == 302
    assert world.balance(accounts.household_points(town.h2)) == 0
    text = main_text(committee.get(f"/committee/households/{town.h2}"))
    assert "-14" in text  # the ranking score, shown apart from the balance
    home = main_text(page_login(app, town.resident2, PASSWORD).get("/me/"))
    assert "-14" in home and "红白事大操大办" in home
    # The committee's setting on its page.
    form = next(f for f in forms_of(page, "/committee/deductions") if f["id"] == "black-list-setting")
    data = {f["name"]: f["value"] for f in form["fields"]}
    data["publish_black_list"] = "1"
    assert committee.post(form["action"], data=data).status_code == 302
    assert world.call("GET", "/api/v1/ranking-settings/hongxing", town.resident1).get_json()["publish_black_list"]


def test_two_deductions_at_once_never_take_the_wallet_below_zero(world, town, app):
    """Two committee members apply two deductions of one household at the same moment: the wallet's
    balance is read under the ledger's writer lock, so together they take what it holds, no more."""
    import threading

    import ledger

    item(world, "blocking", -8, publicity_days=0, title="占道经营")
    world.grant(town.h2, 10)
    world.user("committee2", "committee")
    entered = [deduct(world, town.h2, "blocking")["id"] for _ in range(2)]
    tokens = [world.token("committee"), world.token("committee2")]
    barrier = threading.Barrier(2)
    results = [None, None]

    def go(index):
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            try:
                r = client.post(f"/api/v1/deductions/{entered[index]}/approve",
                                headers={"Authorization": f"Bearer {tokens[index]}"})
                results[index] = (r.status_code, r.get_json().get("wallet_points"), r.get_json().get("ranking_points"))
            except Exception as exc:  # anything unexpected fails the test below
                results[index] = ("exception", repr(exc))
            finally:
                db.session.remove()

    workers = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results, key=str) == [(200, 2, 6), (200, 8, 0)], results
    assert world.balance(accounts.household_points(town.h2)) == 0
    assert standing(world, town.h2)["deducted_points"] == 16
    with app.app_context():
        assert ledger.verify(db.session).ok
