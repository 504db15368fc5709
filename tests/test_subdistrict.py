"""Across communities (issue 17, parts 1-3): the sub-district (街道) over its communities, guests
(候鸟, 流动党员) with a guest wallet in the host community, and minutes that cross communities.

The town: 东街街道 (``dongjie``) over 向阳社区 (``xiangyang``) and 朝阳社区 (``chaoyang``); 红星社区
(``hongxing``, from the world fixture) belongs to no sub-district.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from earning_support import PASSWORD, advance, claim, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    t = SimpleNamespace()
    world.community("dongjie", "东街街道")
    world.community("xiangyang", "向阳社区", parent_code="dongjie")
    world.community("chaoyang", "朝阳社区", parent_code="dongjie")
    t.xa = world.household("xiangyang", "张家")
    t.xb = world.household("xiangyang", "王家")
    t.ca = world.household("chaoyang", "李家")
    t.hx = world.household("hongxing", "赵家")
    t.zhang = world.resident(t.xa, "张三", phone="13900000001", password=PASSWORD)
    t.wang = world.resident(t.xb, "王五", phone="13900000002", password=PASSWORD)
    t.li = world.resident(t.ca, "李四", phone="13900000003", password=PASSWORD)
    t.zhao = world.resident(t.hx, "赵六", phone="13900000004", password=PASSWORD)
    world.user("jd_committee", "committee", community_code="dongjie")
    world.user("jd_super", "supervisor", community_code="dongjie")
    world.user("xy_committee", "committee", community_code="xiangyang")
    world.user("cy_committee", "committee", community_code="chaoyang")
    world.user("cy_clerk", "clerk", community_code="chaoyang")
    world.user("hx_committee", "committee", community_code="hongxing")
    return t


# --- 1. the sub-district -------------------------------------------------------------------------------

def test_staff_of_the_subdistrict_see_its_communities_and_change_nothing_there(world, town):
    for who in ("jd_committee", "jd_super"):
        r = world.call("GET", "/api/v1/communities/xiangyang", who)
        assert r.status_code == 200, (who, r.get_json())
        assert r.get_json()["parent_code"] == "dongjie"
        r = world.call("GET", "/api/v1/households?community_code=chaoyang", who)
        assert r.status_code == 200, r.get_json()
        assert [h["name"] for h in r.get_json()["items"]] == ["李家"]
        assert world.call("GET", f"/api/v1/households/{town.xa}", who).status_code == 200
        assert world.call("GET", f"/api/v1/residents/{town.li}", who).status_code == 200
        assert world.call("GET", "/api/v1/claims?community_code=xiangyang", who).status_code == 200
        assert world.call("GET", "/api/v1/ledger/transactions?community_code=chaoyang", who).status_code == 200
        # Not a community outside the sub-district.
        assert world.call("GET", "/api/v1/communities/hongxing", who).status_code == 403
        assert world.call("GET", f"/api/v1/households/{town.hx}", who).status_code == 404
    # A community does not see its sister or its parent.
    assert world.call("GET", "/api/v1/communities/chaoyang", "xy_committee").status_code == 403
    assert world.call("GET", "/api/v1/households?community_code=dongjie", "xy_committee").status_code == 403
    # Seeing is not acting: the community's own staff register and approve.
    r = world.call("POST", "/api/v1/households", "jd_committee",
                   json={"community_code": "xiangyang", "name": "孙家", "address": "向阳路2号"})
    assert r.status_code == 403
    r = world.call("PATCH", f"/api/v1/households/{town.xa}", "jd_committee", json={"color": "red"})
    assert r.status_code == 403


def _grant(world, household_id, points, category="volunteer"):
    """Points from the community's issuance account, at the test clock's time (the report's months)."""
    import ledger
    from timebank.core import ledgering
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with world.app.app_context():
        cid = db.session.get(Household, household_id).community_id
        ledgering.post(cid, [ledger.Leg(accounts.issuance_points(cid, category), -points),
                             ledger.Leg(accounts.household_points(household_id), points)],
                       kind="grant", category=category, memo="test set-up", actor="test")
        db.session.commit()


def test_the_subdistrict_report_covers_its_communities_with_a_breakdown(world, town, app, clock):
    _grant(world, town.xa, 10)
    _grant(world, town.xb, 5, "red")
    _grant(world, town.ca, 7, "moral")
    _grant(world, town.hx, 100)  # not of the sub-district
    r = world.call("GET", "/api/v1/reports/monthly?community_code=dongjie&month=2026-03", "jd_committee")
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["community_code"] == "dongjie"
    assert report["points"]["issued_by_category"] == {"volunteer": 10, "red": 5, "moral": 7, "neighbour_help": 0}
    assert report["points"]["issued_total"] == 22
    assert report["points"]["outstanding"] == 22
    assert report["participation"] == {"households_earning": 3, "households_total": 3, "rate": 1.0}
    assert [(e["household_name"], e["points"]) for e in report["top_households"]] == [
        ("张家", 10), ("李家", 7), ("王家", 5)]
    by_code = {c["code"]: c for c in report["communities"]}
    assert set(by_code) == {"xiangyang", "chaoyang"}
    assert by_code["xiangyang"]["name"] == "向阳社区"
    assert by_code["xiangyang"]["points"]["issued_total"] == 15
    assert by_code["xiangyang"]["participation"] == {"households_earning": 2, "households_total": 2, "rate": 1.0}
    assert by_code["chaoyang"]["points"]["issued_by_category"]["moral"] == 7
    assert by_code["chaoyang"]["points"]["outstanding"] == 7
    # The parts add up to the whole.
    assert sum(c["points"]["issued_total"] for c in report["communities"]) == report["points"]["issued_total"]
    # The supervisor of the sub-district reads it too; a community reads only its own.
    assert world.call("GET", "/api/v1/reports/monthly?community_code=dongjie&month=2026-03",
                      "jd_super").status_code == 200
    assert world.call("GET", "/api/v1/reports/monthly?community_code=dongjie&month=2026-03",
                      "xy_committee").status_code == 403
    # A community's own report is as before, with no breakdown.
    own = world.call("GET", "/api/v1/reports/monthly?community_code=xiangyang&month=2026-03",
                     "xy_committee").get_json()
    assert own["points"]["issued_total"] == 15 and own["communities"] == []

    # After the month-end totals are stored, the sub-district's balances start from them and agree.
    advance(world, clock, days=40)
    _grant(world, town.ca, 3, "moral")
    from timebank.core.extensions import db
    from timebank.reports.operations import keep_month_totals

    with app.app_context():
        assert keep_month_totals() > 0
        db.session.commit()
    april = world.call("GET", "/api/v1/reports/monthly?community_code=dongjie&month=2026-04", "jd_committee").get_json()
    assert april["points"]["issued_total"] == 3 and april["points"]["outstanding"] == 25
    march = world.call("GET", "/api/v1/reports/monthly?community_code=dongjie&month=2026-03", "jd_committee").get_json()
    assert march["points"]["outstanding"] == 22


def test_the_committee_report_page_of_the_subdistrict_breaks_it_down_with_a_chart(world, town, app):
    from conftest import main_text, page_login

    _grant(world, town.xa, 10)
    _grant(world, town.ca, 7, "moral")
    client = page_login(app, "jd_committee")
    r = client.get("/committee/reports?month=2026-03")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'id="community-table"' in html and 'id="chart-communities"' in html
    words = main_text(r)
    assert "向阳社区" in words and "朝阳社区" in words
    assert client.get("/committee/reports?month=2026-03").status_code == 200
    sup = page_login(app, "jd_super")
    assert "朝阳社区" in main_text(sup.get("/committee/reports?month=2026-03"))


# --- 2. guests -----------------------------------------------------------------------------------------

def _join(world, town, until="2026-08-31", who="cy_committee", expect=201):
    r = world.call("POST", f"/api/v1/residents/{town.zhang}/memberships", who,
                   json={"community_code": "chaoyang", "until": until})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def test_a_guest_needs_no_second_resident_record(world, town):
    r = world.call("POST", "/api/v1/residents", "cy_committee",
                   json={"household_id": town.ca, "name": "张三", "phone": "13900000001"})
    assert r.status_code == 409 and r.get_json()["error"] == "phone_taken"
    assert "memberships" in r.get_json()["detail"]
    # Only the host community's committee takes a guest in.
    _join(world, town, who="xy_committee", expect=403)
    _join(world, town, who="cy_clerk", expect=403)
    m = _join(world, town)
    assert m["resident_id"] == town.zhang and m["community_code"] == "chaoyang"
    assert m["home_community_code"] == "xiangyang" and m["until"] == "2026-08-31" and m["active"] is True
    assert m["wallet_points"] == 0
    # Not in one's own community, not in the past.
    r = world.call("POST", f"/api/v1/residents/{town.zhang}/memberships", "xy_committee",
                   json={"community_code": "xiangyang", "until": "2026-08-31"})
    assert r.status_code == 422
    r = world.call("POST", f"/api/v1/residents/{town.zhang}/memberships", "cy_committee",
                   json={"community_code": "chaoyang", "until": "2026-01-31"})
    assert r.status_code == 422
    # Again: the same membership, its end moved.
    again = _join(world, town, until="2026-10-31", expect=200)
    assert again["id"] == m["id"] and again["until"] == "2026-10-31"
    # Both rosters show it.
    for who, code in (("cy_committee", "chaoyang"), ("xy_committee", "xiangyang"), ("jd_committee", "chaoyang")):
        r = world.call("GET", f"/api/v1/memberships?community_code={code}", who)
        assert r.status_code == 200, r.get_json()
        assert [(i["resident_id"], i["community_code"], i["home_community_code"]) for i in r.get_json()["items"]] \
            == [(town.zhang, "chaoyang", "xiangyang")]
    assert world.call("GET", "/api/v1/memberships?community_code=xiangyang", "hx_committee").status_code == 403
    r = world.call("GET", f"/api/v1/residents/{town.zhang}/memberships", "13900000001")
    assert r.status_code == 200 and len(r.get_json()["items"]) == 1


def test_a_guest_earns_into_a_guest_wallet_and_spends_it_at_the_host_supermarket(world, town, clock):
    world.user("cy_grid", "grid_worker", community_code="chaoyang")
    rule(world, "sweep", user="cy_committee", community_code="chaoyang", review="auto", publicity_days=0,
         points=10, minutes=30)
    # Before the membership: another community's rule is not his to claim.
    claim(world, town.zhang, "13900000001", "sweep", "chaoyang", expect=422)
    m = _join(world, town)
    wallet = accounts.guest_points(town.zhang, world_community_id(world, "chaoyang"))
    assert m["wallet_account"] == wallet
    c = claim(world, town.zhang, "13900000001", "sweep", "chaoyang")
    assert c["status"] == "posted" and c["resident_id"] == town.zhang and c["guest"] is True
    assert world.balance(wallet) == 10
    assert world.balance(accounts.household_points(town.xa)) == 0  # not his home household's points
    assert world.balance(accounts.resident_minutes(town.zhang)) == 30  # minutes are the person's

    # A task of the host community: he checks in with his own login.
    r = world.call("POST", "/api/v1/tasks", "cy_committee", json={
        "community_code": "chaoyang", "rule_code": "sweep", "title": "清扫朝阳路",
        "starts_at": "2026-03-02T09:00:00+08:00", "ends_at": "2026-03-02T18:00:00+08:00", "slots": 5})
    assert r.status_code == 201, r.get_json()
    token = world.call("GET", f"/api/v1/tasks/{r.get_json()['id']}/checkin-code", "cy_grid").get_json()["token"]
    r = world.call("POST", "/api/v1/checkins", "13900000001", json={"token": token})
    assert r.status_code == 201, r.get_json()
    assert world.balance(wallet) == 20

    # The host's supermarket charges the guest wallet.
    item = world.call("POST", "/api/v1/items", "cy_clerk", json={
        "community_code": "chaoyang", "sku": "oil", "name": "食用油", "price_points": 8}).get_json()
    assert world.call("POST", "/api/v1/stock-movements", "cy_clerk", json={
        "item_id": item["id"], "quantity": 10, "reason": "donation", "donor": "华联超市"}).status_code == 201
    code = world.call("GET", "/api/v1/me/pay-code", "13900000001").get_json()["pay_code"]
    r = world.call("POST", "/api/v1/redemptions", "cy_clerk",
                   json={"pay_code": code, "lines": [{"item_id": item["id"], "quantity": 2}]})
    assert r.status_code == 201, r.get_json()
    sale = r.get_json()
    assert sale["total_points"] == 16 and sale["balance_after"] == 4
    assert world.balance(wallet) == 4
    # A return and a void give back to the guest wallet, not to his household.
    r = world.call("POST", f"/api/v1/redemptions/{sale['id']}/returns", "cy_committee",
                   json={"lines": [{"item_id": item["id"], "quantity": 1}], "reason": "坏了"})
    assert r.status_code == 201, r.get_json()
    assert world.balance(wallet) == 12
    r = world.call("POST", f"/api/v1/redemptions/{sale['id']}/void", "cy_committee", json={"reason": "错单"})
    assert r.status_code == 200, r.get_json()
    assert world.balance(wallet) == 20 and world.balance(accounts.household_points(town.xa)) == 0
    code = world.call("GET", "/api/v1/me/pay-code", "13900000001").get_json()["pay_code"]
    r = world.call("POST", "/api/v1/redemptions", "cy_clerk",
                   json={"pay_code": code, "lines": [{"item_id": item["id"], "quantity": 3}]})
    assert r.status_code == 409 and r.get_json()["error"] == "insufficient_points"
    # His household's card is not a card of this supermarket; his own card names the guest wallet.
    from timebank.core.extensions import db
    from timebank.people.models import Household, Resident

    with world.app.app_context():
        household_card = db.session.get(Household, town.xa).member_code
        own_card = db.session.get(Resident, town.zhang).member_code
    r = world.call("POST", "/api/v1/redemptions", "cy_clerk",
                   json={"member_code": household_card, "lines": [{"item_id": item["id"], "quantity": 1}]})
    assert r.status_code == 404 and r.get_json()["error"] == "unknown_member"
    r = world.call("POST", "/api/v1/redemptions", "cy_clerk",
                   json={"member_code": own_card, "lines": [{"item_id": item["id"], "quantity": 1}]})
    assert r.status_code == 201 and r.get_json()["balance_after"] == 12

    # The host's report counts the guest wallet among the points held.
    report = world.call("GET", "/api/v1/reports/monthly?community_code=chaoyang&month=2026-03",
                        "cy_committee").get_json()
    assert report["points"]["outstanding"] == 12 and report["points"]["issued_total"] == 20

    # The membership ends by itself after its last day; the wallet keeps what it holds.
    advance(world, clock, days=183)  # 2026-09-01
    claim(world, town.zhang, "13900000001", "sweep", "chaoyang", expect=422)
    listed = world.call("GET", "/api/v1/memberships?community_code=chaoyang", "cy_committee").get_json()["items"]
    assert listed[0]["active"] is False and listed[0]["wallet_points"] == 12
    ledger_ok = world.call("GET", "/api/v1/ledger/verify", "admin").get_json()
    assert ledger_ok["ok"], ledger_ok


def world_community_id(world, code):
    from timebank.people.operations import community_by_code

    with world.app.app_context():
        return community_by_code(code).id


def test_the_rosters_pages_show_the_membership(world, town, app):
    from conftest import main_text, page_login

    _join(world, town)
    host = page_login(app, "cy_committee").get("/committee/households")
    assert host.status_code == 200 and "张三" in main_text(host) and "向阳社区" in main_text(host)
    home = page_login(app, "xy_committee").get(f"/committee/households/{town.xa}")
    assert home.status_code == 200 and "朝阳社区" in main_text(home)
    # The person's own home page shows the guest wallet.
    mine = page_login(app, "13900000001").get("/me/")
    assert mine.status_code == 200 and 'id="guest-wallets"' in mine.get_data(as_text=True)
    assert "朝阳社区" in main_text(mine)


def test_the_host_committee_takes_a_guest_in_on_the_roster_page(world, town, app):
    from conftest import page_login

    client = page_login(app, "cy_committee")
    page = client.get("/committee/households")
    assert 'id="guest-form"' in page.get_data(as_text=True)
    import re

    key = re.search(r'id="guest-form".*?name="form_key" value="([^"]+)"', page.get_data(as_text=True), re.S).group(1)
    r = client.post("/committee/guests", data={"phone": "13900000001", "until": "2026-08-31", "form_key": key})
    assert r.status_code == 302
    listed = world.call("GET", "/api/v1/memberships?community_code=chaoyang", "cy_committee").get_json()["items"]
    assert [i["resident_id"] for i in listed] == [town.zhang]


# --- 3. minutes across communities -------------------------------------------------------------------------

def test_a_volunteer_helps_in_a_sister_community_under_the_same_subdistrict(world, town):
    rule(world, "visit", user="cy_committee", community_code="chaoyang", review="auto", publicity_days=0,
         points=0, minutes=60)
    claim(world, town.li, "13900000003", "visit", "chaoyang")
    r = world.call("POST", "/api/v1/help-requests", "13900000003",
                   json={"resident_id": town.li, "title": "修水管", "minutes": 40})
    assert r.status_code == 201, r.get_json()
    hid = r.get_json()["id"]
    # 王五 of 向阳 sees the open request of 朝阳 and takes it.
    r = world.call("GET", "/api/v1/help-requests?community_code=chaoyang&status=open", "13900000002")
    assert r.status_code == 200 and [i["id"] for i in r.get_json()["items"]] == [hid]
    assert world.call("GET", f"/api/v1/help-requests/{hid}", "13900000002").status_code == 200
    from conftest import main_text, page_login

    page = page_login(world.app, "13900000002").get("/me/help")
    assert "修水管" in main_text(page) and "朝阳社区" in main_text(page)
    assert "修水管" not in main_text(page_login(world.app, "13900000004").get("/me/help"))
    # 赵六 of 红星 (no common sub-district) may not.
    r = world.call("POST", f"/api/v1/help-requests/{hid}/accept", "13900000004", json={"volunteer_id": town.zhao})
    assert r.status_code in (404, 422)
    r = world.call("POST", f"/api/v1/help-requests/{hid}/accept", "13900000002", json={"volunteer_id": town.wang})
    assert r.status_code == 200, r.get_json()
    r = world.call("POST", f"/api/v1/help-requests/{hid}/complete", "13900000003")
    assert r.status_code == 200, r.get_json()
    assert world.balance(accounts.resident_minutes(town.wang)) == 40
    assert world.balance(accounts.resident_minutes(town.li)) == 20
    # Each community's report sees its side; the sub-district's sees the help once.
    cy = world.call("GET", "/api/v1/reports/monthly?community_code=chaoyang&month=2026-03", "cy_committee").get_json()
    xy = world.call("GET", "/api/v1/reports/monthly?community_code=xiangyang&month=2026-03", "xy_committee").get_json()
    jd = world.call("GET", "/api/v1/reports/monthly?community_code=dongjie&month=2026-03", "jd_committee").get_json()
    assert cy["hours"]["withdrawn_minutes"] == 40 and xy["hours"]["deposited_minutes"] == 40
    assert jd["hours"]["help_minutes"] == 40
    assert jd["hours"]["outstanding_minutes"] == 60


def test_a_guest_helps_in_the_host_community(world, town):
    rule(world, "visit", user="cy_committee", community_code="chaoyang", review="auto", publicity_days=0,
         points=0, minutes=60)
    claim(world, town.li, "13900000003", "visit", "chaoyang")
    world.community("xishan", "西山村")
    world.user("xs_committee", "committee", community_code="xishan")
    far = world.resident(world.household("xishan", "周家"), "周七", phone="13900000009", password=PASSWORD)
    hid = world.call("POST", "/api/v1/help-requests", "13900000003",
                     json={"resident_id": town.li, "title": "买菜", "minutes": 30}).get_json()["id"]
    r = world.call("POST", f"/api/v1/help-requests/{hid}/accept", "13900000009", json={"volunteer_id": far})
    assert r.status_code in (404, 422)
    r = world.call("POST", f"/api/v1/residents/{far}/memberships", "cy_committee",
                   json={"community_code": "chaoyang", "until": "2026-08-31"})
    assert r.status_code == 201, r.get_json()
    r = world.call("POST", f"/api/v1/help-requests/{hid}/accept", "13900000009", json={"volunteer_id": far})
    assert r.status_code == 200, r.get_json()
