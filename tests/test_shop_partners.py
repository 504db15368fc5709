"""Partner shops (爱心商家): redemption points of a community with their own clerk login, a ledger
account each, and a monthly settlement from the ledger."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from conftest import main_text, page_login
from ledger.models import Account
from test_shop_api import Shop
from timebank.core import accounts
from timebank.core.audit_log import AuditEntry
from timebank.core.extensions import db


def _error(response):
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    return response.get_json()["error"]


def _partner(shop, name="幸福理发店", address="幸福路8号", user="boss"):
    r = shop.call("POST", "/api/v1/partners", user,
                  json={"community_code": "hongxing", "name": name, "address": address})
    return r


def _setup(world):
    shop = Shop(world)
    shop.w.grant(shop.hh, 200)
    world.user("barber", "clerk")
    r = _partner(shop)
    assert r.status_code == 201, r.get_json()
    partner = r.get_json()
    r = shop.call("POST", f"/api/v1/partners/{partner['id']}/clerks", "boss", json={"username": "barber"})
    assert r.status_code == 201, r.get_json()
    r = shop.call("POST", "/api/v1/items", "boss", json={
        "community_code": "hongxing", "sku": "cut", "name": "理发", "price_points": 8, "kind": "service",
        "daily_places": 10, "partner_id": partner["id"]})
    assert r.status_code == 201, r.get_json()
    cut = r.get_json()["id"]
    soap = shop.item("soap", stock=10)
    return shop, partner, cut, soap


def test_partner_is_created_by_the_committee_with_its_ledger_account(world):
    shop = Shop(world)
    assert _partner(shop, user="clerk").status_code == 403
    r = _partner(shop)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["name"] == "幸福理发店" and body["active"] is True and body["community_code"] == "hongxing"
    with world.app.app_context():
        from timebank.people.operations import community_by_code

        code = accounts.partner_points(community_by_code("hongxing").id, body["id"])
        owner = db.session.execute(
            select(accounts.AccountOwner).join(Account, Account.id == accounts.AccountOwner.account_id)
            .where(Account.code == code)).scalar_one()
        assert owner.household_id is None and owner.community_id == community_by_code("hongxing").id
    assert body["account"] == code
    assert _partner(shop).status_code == 409  # the same name twice
    listed = shop.call("GET", "/api/v1/partners?community_code=hongxing", "clerk").get_json()["items"]
    assert [p["name"] for p in listed] == ["幸福理发店"]
    assert shop.call("GET", "/api/v1/partners?community_code=hongxing", "other_clerk").status_code == 403


def test_linking_a_clerk_is_for_the_committee_and_audit_logged(world):
    shop = Shop(world)
    world.user("barber", "clerk")
    partner = _partner(shop).get_json()
    url = f"/api/v1/partners/{partner['id']}/clerks"
    assert shop.call("POST", url, "clerk", json={"username": "barber"}).status_code == 403
    r = shop.call("POST", url, "boss", json={"username": "watcher"})  # a supervisor sells nothing
    assert r.status_code == 422
    r = shop.call("POST", url, "boss", json={"username": "other_clerk"})  # another community's
    assert r.status_code == 404
    r = shop.call("POST", url, "boss", json={"username": "barber"})
    assert r.status_code == 201 and r.get_json()["username"] == "barber"
    with world.app.app_context():
        actions = [a.action for a in db.session.execute(select(AuditEntry)).scalars()]
    assert "partner.create" in actions and "partner.clerk_link" in actions


def test_a_partner_clerk_sells_only_the_partners_goods_into_its_account(world):
    shop, partner, cut, soap = _setup(world)
    account = accounts.partner_points(1, partner["id"])
    r = shop.redeem([{"item_id": soap, "quantity": 1}], user="barber")
    assert r.status_code == 404 and _error(r) == "unknown_item"
    r = shop.redeem([{"item_id": cut, "quantity": 1}], user="barber")
    assert r.status_code == 201, r.get_json()
    sold = r.get_json()
    assert sold["partner_id"] == partner["id"]
    assert shop.w.balance(account) == 8 and shop.w.balance(accounts.supermarket_points(1)) == 0
    # The community's clerk sells the supermarket's goods; a receipt does not mix sellers.
    mixed = shop.redeem([{"item_id": soap, "quantity": 1}, {"item_id": cut, "quantity": 1}])
    assert mixed.status_code == 409 and _error(mixed) == "mixed_sellers"
    own = shop.redeem([{"item_id": soap, "quantity": 1}]).get_json()
    assert own["partner_id"] is None
    # The partner's clerk sees only the partner's receipts.
    listed = shop.call("GET", "/api/v1/redemptions?community_code=hongxing", "barber").get_json()["items"]
    assert [x["id"] for x in listed] == [sold["id"]]
    assert shop.call("GET", f"/api/v1/redemptions/{own['id']}", "barber").status_code == 404
    everything = shop.call("GET", "/api/v1/redemptions?community_code=hongxing", "clerk").get_json()["items"]
    assert len(everything) == 2
    # A void at the partner takes the points back from the partner's account.
    r = shop.call("POST", f"/api/v1/redemptions/{sold['id']}/void", "barber", json={"reason": "客人改期"})
    assert r.status_code == 200, r.get_json()
    assert shop.w.balance(account) == 0


def test_monthly_settlement_from_the_ledger(world, clock):
    shop, partner, cut, soap = _setup(world)
    first = shop.redeem([{"item_id": cut, "quantity": 2}], user="barber").get_json()
    second = shop.redeem([{"item_id": cut, "quantity": 1}], user="barber").get_json()
    shop.redeem([{"item_id": cut, "quantity": 1}], user="barber")
    shop.redeem([{"item_id": soap, "quantity": 1}])  # the supermarket's own: not the partner's
    r = shop.call("POST", f"/api/v1/redemptions/{first['id']}/returns", "boss",
                  json={"lines": [{"item_id": cut, "quantity": 1}], "reason": "只理了一位"})
    assert r.status_code == 201, r.get_json()
    r = shop.call("POST", f"/api/v1/redemptions/{second['id']}/void", "boss", json={"reason": "没来"})
    assert r.status_code == 200
    url = "/api/v1/partners/settlement?community_code=hongxing&month=2026-03"
    assert shop.call("GET", url, "clerk").status_code == 403  # the committee's report
    assert shop.call("GET", url, "watcher").status_code == 200  # supervisors read it
    body = shop.call("GET", url, "boss").get_json()
    assert body["month"] == "2026-03" and body["community_code"] == "hongxing"
    row = body["partners"][0]
    assert (row["name"], row["redeemed_points"], row["given_back_points"], row["net_points"], row["receipts"]) == \
        ("幸福理发店", 32, 16, 16, 3)
    assert body["total"] == {"redeemed_points": 32, "given_back_points": 16, "net_points": 16, "receipts": 3}
    assert shop.call("GET", url.replace("2026-03", "2026-04"), "boss").get_json()["partners"][0]["net_points"] == 0
    exported = shop.call("GET", url + "&format=csv", "boss")
    assert exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:5] == ["partner_id", "name", "address", "redeemed_points", "given_back_points"]
    assert rows[1][1] == "幸福理发店" and rows[1][3:7] == ["32", "16", "16", "3"]


def test_settlement_csv_carries_no_formula(world):
    shop = Shop(world)
    assert _partner(shop, name="=HYPERLINK(\"x\")").status_code == 201
    text = shop.call("GET", "/api/v1/partners/settlement?community_code=hongxing&month=2026-03&format=csv",
                     "boss").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[1][1] == "'=HYPERLINK(\"x\")"  # a quote first: no spreadsheet reads it as a formula


def _key(response) -> str:
    return re.search(r'name="form_key" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def test_partner_pages(app, world):
    shop = Shop(world)
    shop.w.grant(shop.hh, 100)
    world.user("barber", "clerk")
    boss = page_login(app, "boss")
    page = boss.get("/committee/partners")
    assert page.status_code == 200
    r = boss.post("/committee/partners", data={"form_key": _key(page), "name": "幸福理发店", "address": "幸福路8号"},
                  follow_redirects=True)
    assert r.status_code == 200 and "幸福理发店" in main_text(r)
    partner = shop.call("GET", "/api/v1/partners?community_code=hongxing", "boss").get_json()["items"][0]
    page = boss.get("/committee/partners")
    form = re.search(r'action="(/committee/partners/\d+/clerks)".*?name="form_key" value="([^"]+)"',
                     page.get_data(as_text=True), re.S)
    r = boss.post(form.group(1), data={"form_key": form.group(2), "username": "barber"}, follow_redirects=True)
    assert r.status_code == 200 and "barber" in main_text(r)
    # A service of the partner, made on the services page, and sold by the partner's clerk.
    services = boss.get("/clerk/services")
    r = boss.post("/clerk/services", data={"form_key": _key(services), "sku": "cut", "name": "理发",
                                           "price_points": "8", "daily_places": "5", "partner_id": str(partner["id"])},
                  follow_redirects=True)
    assert r.status_code == 200
    cut = next(i for i in shop.call("GET", "/api/v1/items?community_code=hongxing").get_json()["items"]
               if i["sku"] == "cut")
    assert cut["partner_id"] == partner["id"]
    assert shop.redeem([{"item_id": cut["id"], "quantity": 1}], user="barber").status_code == 201
    barber = page_login(app, "barber")
    assert "幸福理发店" in main_text(barber.get("/clerk/pos"))
    receipt = shop.call("GET", "/api/v1/redemptions?community_code=hongxing", "barber").get_json()["items"][0]
    assert "幸福理发店兑换小票" in barber.get(f"/receipts/{receipt['id']}").get_data(as_text=True)
    settlement = boss.get("/committee/partners/settlement?month=2026-03")
    assert settlement.status_code == 200
    text = main_text(settlement)
    assert "幸福理发店" in text and "8" in text and "打印" in text


def test_a_closed_partner_sells_nothing_and_unknown_partners_are_refused(world):
    shop, partner, cut, soap = _setup(world)
    r = shop.call("POST", "/api/v1/items", "boss", json={
        "community_code": "hongxing", "sku": "x", "name": "x", "price_points": 1, "partner_id": 999})
    assert r.status_code == 404 and _error(r) == "unknown_partner"
    # A partner's clerk adds goods of that shop only, and stocks only them.
    r = shop.call("POST", "/api/v1/items", "barber", json={"community_code": "hongxing", "sku": "wash", "name": "洗头",
                                                          "price_points": 2, "kind": "service"})
    assert r.status_code == 201 and r.get_json()["partner_id"] == partner["id"]
    assert shop.stock(soap, 1, "purchase").status_code == 201
    assert shop.call("POST", "/api/v1/stock-movements", "barber",
                     json={"item_id": soap, "quantity": 1, "reason": "purchase"}).status_code == 404
    r = shop.call("PATCH", f"/api/v1/partners/{partner['id']}", "boss", json={"active": False})
    assert r.status_code == 200 and r.get_json()["active"] is False
    r = shop.redeem([{"item_id": cut, "quantity": 1}], user="barber")
    assert r.status_code == 404 and _error(r) == "unknown_item"
    assert shop.call("PATCH", f"/api/v1/partners/{partner['id']}", "clerk", json={"active": True}).status_code == 403
