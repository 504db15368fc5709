"""The love supermarket over HTTP: goods, stock, donations, pay codes, redemptions, voids, returns."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import ledger
from timebank.core import accounts
from timebank.core.audit_log import AuditEntry
from timebank.core.extensions import db
from timebank.people.models import Household, Resident
from timebank.shop.models import Redemption, StockMovement


class Shop:
    def __init__(self, world):
        self.w = world
        self.hh = world.household(name="张家")
        self.resident = world.resident(self.hh, "张三", phone="13800000001", password="resident-pass")
        world.user("clerk", "clerk")
        world.user("boss", "committee")
        world.user("watcher", "supervisor")
        world.community("lvshui", "绿水村")
        world.user("other_clerk", "clerk", community_code="lvshui")
        with world.app.app_context():
            self.member_code = db.session.get(Household, self.hh).member_code

    def relogin(self):
        """Bearer tokens last a working day; after moving the clock by days, log in again."""
        self.w._tokens.clear()

    def call(self, method, url, user="clerk", json=None, headers=None, **kw):
        h = dict(headers or {})
        if user == "13800000001":
            h.update({"Authorization": f"Bearer {self.w.token(user, 'resident-pass')}"})
            user = None
        return self.w.call(method, url, user, json=json, headers=h, **kw)

    def item(self, sku="soap", name="肥皂", price=3, stock=0, donor="爱心企业·华联超市", **kw):
        r = self.call("POST", "/api/v1/items",
                      json={"community_code": "hongxing", "sku": sku, "name": name, "price_points": price, **kw})
        assert r.status_code == 201, r.get_json()
        item_id = r.get_json()["id"]
        if stock:
            self.stock(item_id, stock, "donation", donor=donor)
        return item_id

    def stock(self, item_id, quantity, reason, **kw):
        r = self.call("POST", "/api/v1/stock-movements",
                      json={"item_id": item_id, "quantity": quantity, "reason": reason, **kw})
        return r

    def redeem(self, lines, member_code=None, user="clerk", headers=None, **kw):
        body = {"lines": lines, **kw}
        if "pay_code" not in kw:
            body["member_code"] = member_code or self.member_code
        return self.call("POST", "/api/v1/redemptions", user, json=body, headers=headers)

    def balance(self, household_id=None):
        return self.w.balance(accounts.household_points(household_id or self.hh))

    def on_hand(self, item_id):
        return self.call("GET", f"/api/v1/items/{item_id}").get_json()["on_hand"]


@pytest.fixture
def shop(world):
    return Shop(world)


def _error(response):
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    return response.get_json()["error"]


# --- goods ------------------------------------------------------------------------------------

def test_create_list_and_get_items(shop):
    r = shop.call("POST", "/api/v1/items", json={
        "community_code": "hongxing", "sku": "oil-5l", "name": "食用油 5L", "price_points": 45,
        "barcode": "6901234567890", "monthly_limit_per_household": 1, "low_stock_threshold": 2})
    assert r.status_code == 201
    body = r.get_json()
    assert body["on_hand"] == 0 and body["price_points"] == 45 and body["monthly_limit_per_household"] == 1
    assert body["community_code"] == "hongxing" and body["barcode"] == "6901234567890"
    # A resident of the community may browse goods with prices and stock.
    listing = shop.call("GET", "/api/v1/items?community_code=hongxing", "13800000001")
    assert listing.status_code == 200
    assert [i["sku"] for i in listing.get_json()["items"]] == ["oil-5l"]
    assert shop.call("GET", f"/api/v1/items/{body['id']}", "13800000001").get_json()["name"] == "食用油 5L"
    # Staff of another community may not.
    assert shop.call("GET", "/api/v1/items?community_code=hongxing", "other_clerk").status_code == 403
    assert shop.call("GET", f"/api/v1/items/{body['id']}", "other_clerk").status_code == 404


def test_duplicate_sku_and_barcode(shop):
    shop.item("soap", barcode="111")
    r = shop.call("POST", "/api/v1/items", json={"community_code": "hongxing", "sku": "soap", "name": "x",
                                                  "price_points": 1})
    assert r.status_code == 409 and _error(r) == "sku_taken"
    r = shop.call("POST", "/api/v1/items", json={"community_code": "hongxing", "sku": "soap2", "name": "x",
                                                  "price_points": 1, "barcode": "111"})
    assert r.status_code == 409 and _error(r) == "barcode_taken"


def test_item_validation_and_roles(shop):
    r = shop.call("POST", "/api/v1/items", json={"community_code": "hongxing", "sku": "x", "name": "x",
                                                  "price_points": 0})
    assert r.status_code == 422 and _error(r) == "validation_error" and "price_points" in r.get_json()["errors"]
    r = shop.call("POST", "/api/v1/items", "watcher",
                  json={"community_code": "hongxing", "sku": "x", "name": "x", "price_points": 2})
    assert r.status_code == 403
    r = shop.call("POST", "/api/v1/items", "13800000001",
                  json={"community_code": "hongxing", "sku": "x", "name": "x", "price_points": 2})
    assert r.status_code == 403


def test_price_change_applies_from_then_on(shop, clock):
    shop.w.grant(shop.hh, 100)
    soap = shop.item("soap", price=3, stock=10)
    first = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    clock.advance(minutes=5)
    r = shop.call("POST", f"/api/v1/items/{soap}/price", "boss", json={"price_points": 4, "note": "进价上涨"})
    assert r.status_code == 200 and r.get_json()["price_points"] == 4
    second = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    assert second["lines"][0]["unit_points"] == 4 and second["total_points"] == 8
    again = shop.call("GET", f"/api/v1/redemptions/{first['id']}").get_json()
    assert again["lines"][0]["unit_points"] == 3 and again["total_points"] == 6
    history = shop.call("GET", f"/api/v1/items/{soap}/prices").get_json()
    assert [(h["previous_points"], h["price_points"]) for h in history] == [(None, 3), (3, 4)]
    # PATCH can change the price too, and other fields.
    r = shop.call("PATCH", f"/api/v1/items/{soap}", json={"price_points": 5, "low_stock_threshold": 7})
    assert r.get_json()["price_points"] == 5 and r.get_json()["low_stock_threshold"] == 7
    with shop.w.app.app_context():
        actions = [a.action for a in db.session.execute(select(AuditEntry)).scalars()]
    assert actions.count("item.price_change") == 2 and "item.update" in actions


# --- stock ------------------------------------------------------------------------------------

def test_stock_movements_and_never_below_zero(shop):
    soap = shop.item()
    r = shop.stock(soap, 10, "donation", donor="爱心企业·华联超市", donor_kind="enterprise", note="春节捐赠")
    assert r.status_code == 201 and r.get_json()["on_hand"] == 10 and r.get_json()["donor"] == "爱心企业·华联超市"
    assert shop.stock(soap, 5, "purchase").get_json()["on_hand"] == 15
    assert shop.stock(soap, 3, "spoilage", note="受潮").get_json()["quantity"] == -3
    assert shop.stock(soap, -2, "adjustment", note="盘点").get_json()["on_hand"] == 10
    r = shop.stock(soap, -11, "adjustment")
    assert r.status_code == 409 and _error(r) == "insufficient_stock"
    r = shop.stock(soap, 11, "spoilage")
    assert r.status_code == 409 and _error(r) == "insufficient_stock"
    assert shop.on_hand(soap) == 10
    log = shop.call("GET", f"/api/v1/stock-movements?community_code=hongxing&item_id={soap}").get_json()["items"]
    assert [m["reason"] for m in log] == ["adjustment", "spoilage", "purchase", "donation"]


@pytest.mark.parametrize("body, field", [
    ({"quantity": -1, "reason": "donation", "donor": "某人"}, "quantity"),
    ({"quantity": 0, "reason": "adjustment"}, "quantity"),
    ({"quantity": 3, "reason": "donation"}, "donor"),
    ({"quantity": 3, "reason": "purchase", "donor": "某人"}, "donor"),
    ({"quantity": 3, "reason": "redemption"}, "reason"),
])
def test_stock_movement_validation(shop, body, field):
    soap = shop.item()
    r = shop.stock(soap, **{"quantity": body.pop("quantity"), "reason": body.pop("reason")}, **body)
    assert r.status_code == 422 and field in r.get_json()["errors"]


def test_stock_movement_unknown_item_and_roles(shop):
    assert shop.stock(9999, 1, "purchase").status_code == 404
    soap = shop.item()
    r = shop.call("POST", "/api/v1/stock-movements", "other_clerk",
                  json={"item_id": soap, "quantity": 1, "reason": "purchase"})
    assert r.status_code == 403
    r = shop.call("POST", "/api/v1/stock-movements", "watcher",
                  json={"item_id": soap, "quantity": 1, "reason": "purchase"})
    assert r.status_code == 403


def test_stock_movement_is_idempotent(shop):
    soap = shop.item()
    headers = {"Idempotency-Key": "delivery-7"}
    body = {"item_id": soap, "quantity": 4, "reason": "purchase"}
    first = shop.call("POST", "/api/v1/stock-movements", json=body, headers=headers)
    second = shop.call("POST", "/api/v1/stock-movements", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert shop.on_hand(soap) == 4


def test_database_refuses_negative_stock_and_edits(shop):
    soap = shop.item(stock=2)
    with shop.w.app.app_context():
        movement_id = db.session.execute(select(StockMovement.id)).scalar_one()
        for statement in (
            "INSERT INTO stock_movements (item_id, community_id, quantity, reason, note, created_at) "
            f"VALUES ({soap}, 1, -3, 'spoilage', '', '2026-03-02 02:00:00')",
            f"UPDATE stock_movements SET quantity = 50 WHERE id = {movement_id}",
            f"DELETE FROM stock_movements WHERE id = {movement_id}",
        ):
            with pytest.raises(DBAPIError):
                db.session.execute(text(statement))
                db.session.flush()
            db.session.rollback()
    assert shop.on_hand(soap) == 2


def test_low_stock_list(shop):
    soap = shop.item("soap", low_stock_threshold=5, stock=3)
    shop.item("rice", name="大米", price=30, low_stock_threshold=2, stock=10)
    tissue = shop.item("tissue", name="纸巾", price=8, low_stock_threshold=0)
    r = shop.call("GET", "/api/v1/items/low-stock?community_code=hongxing", "watcher")
    assert r.status_code == 200
    assert [i["id"] for i in r.get_json()["items"]] == [tissue, soap]
    assert shop.call("GET", "/api/v1/items/low-stock?community_code=hongxing", "13800000001").status_code == 403


# --- redemption -------------------------------------------------------------------------------

def test_redemption_moves_points_and_stock_together(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item("soap", price=3, stock=10)
    oil = shop.item("oil", name="食用油", price=45, stock=2, barcode="690100")
    r = shop.redeem([{"item_id": soap, "quantity": 2}, {"barcode": "690100", "quantity": 1},
                     {"item_id": soap, "quantity": 1}])
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["receipt_no"] == 1 and body["household_id"] == shop.hh
    assert body["total_points"] == 3 * 3 + 45 and body["balance_after"] == 100 - 54
    assert body["transaction_id"] and body["status"] == "completed"
    assert sorted((line["item_id"], line["quantity"], line["unit_points"]) for line in body["lines"]) == \
        sorted([(soap, 3, 3), (oil, 1, 45)])
    assert shop.balance() == 46 and shop.on_hand(soap) == 7 and shop.on_hand(oil) == 1
    assert shop.w.balance(accounts.supermarket_points(1)) == 54
    assert shop.redeem([{"item_id": soap, "quantity": 1}]).get_json()["receipt_no"] == 2
    with shop.w.app.app_context():
        tx = ledger.core.load(db.session, body["transaction_id"])
        assert tx.kind == "redemption" and tx.reference == f"redemption:{body['id']}"
        assert ledger.verify(db.session).ok
        assert db.session.execute(select(AuditEntry).where(AuditEntry.action == "redemption.create")).first()
    # The household's resident sees their receipt; staff of another community do not.
    assert shop.call("GET", f"/api/v1/redemptions/{body['id']}", "13800000001").status_code == 200
    assert shop.call("GET", f"/api/v1/redemptions/{body['id']}", "other_clerk").status_code == 404
    mine = shop.call("GET", "/api/v1/redemptions", "13800000001").get_json()["items"]
    assert [x["receipt_no"] for x in mine] == [2, 1]


def test_resident_card_code_also_identifies_the_household(shop, world):
    shop.w.grant(shop.hh, 10)
    soap = shop.item(stock=5)
    with world.app.app_context():
        from timebank.people.models import Resident

        code = db.session.get(Resident, shop.resident).member_code
    r = shop.redeem([{"item_id": soap, "quantity": 1}], member_code=code)
    assert r.status_code == 201 and r.get_json()["household_id"] == shop.hh


def test_insufficient_points_moves_nothing(shop):
    shop.w.grant(shop.hh, 40)
    oil = shop.item("oil", price=45, stock=3)
    r = shop.redeem([{"item_id": oil, "quantity": 1}])
    assert r.status_code == 409 and _error(r) == "insufficient_points"
    assert shop.balance() == 40 and shop.on_hand(oil) == 3
    # No receipt number was spent: the next sale is still No.1.
    shop.w.grant(shop.hh, 10)
    assert shop.redeem([{"item_id": oil, "quantity": 1}]).get_json()["receipt_no"] == 1


def test_insufficient_stock(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=2)
    r = shop.redeem([{"item_id": soap, "quantity": 3}])
    assert r.status_code == 409 and _error(r) == "insufficient_stock"
    assert shop.balance() == 100 and shop.on_hand(soap) == 2


def test_monthly_limit(shop, clock):
    shop.w.grant(shop.hh, 500)
    oil = shop.item("oil", price=45, stock=10, monthly_limit_per_household=2)
    assert shop.redeem([{"item_id": oil, "quantity": 2}]).status_code == 201
    r = shop.redeem([{"item_id": oil, "quantity": 1}])
    assert r.status_code == 409 and _error(r) == "limit_exceeded"
    clock.advance(days=30)  # 2026-04-01 10:00 Shanghai: a new month
    shop.relogin()
    assert shop.redeem([{"item_id": oil, "quantity": 2}]).status_code == 201
    r = shop.redeem([{"item_id": oil, "quantity": 1}])
    assert _error(r) == "limit_exceeded"


def test_returned_units_no_longer_count_against_the_limit(shop):
    shop.w.grant(shop.hh, 500)
    oil = shop.item("oil", price=45, stock=10, monthly_limit_per_household=2)
    receipt = shop.redeem([{"item_id": oil, "quantity": 2}]).get_json()
    r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
                  json={"lines": [{"item_id": oil, "quantity": 1}], "reason": "买多了"})
    assert r.status_code == 201
    assert shop.redeem([{"item_id": oil, "quantity": 1}]).status_code == 201


def test_unknown_member_and_item(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=5)
    r = shop.redeem([{"item_id": soap, "quantity": 1}], member_code="HNOSUCHCODE")
    assert r.status_code == 404 and _error(r) == "unknown_member"
    r = shop.redeem([{"item_id": 9999, "quantity": 1}])
    assert r.status_code == 404 and _error(r) == "unknown_item"
    r = shop.redeem([{"barcode": "000", "quantity": 1}])
    assert r.status_code == 404 and _error(r) == "unknown_item"
    # A clerk of another community does not find this household.
    r = shop.redeem([{"item_id": soap, "quantity": 1}], user="other_clerk")
    assert r.status_code == 404 and _error(r) == "unknown_member"
    assert shop.balance() == 100


@pytest.mark.parametrize("body", [
    {"lines": []},
    {"lines": [{"item_id": 1, "quantity": 0}]},
    {"lines": [{"item_id": 1, "barcode": "1", "quantity": 1}]},
    {"lines": [{"quantity": 1}]},
    {"member_code": None, "lines": [{"item_id": 1, "quantity": 1}]},
    {"member_code": "X", "pay_code": "Y", "lines": [{"item_id": 1, "quantity": 1}]},
])
def test_redemption_validation(shop, body):
    body = dict(body)
    if "member_code" not in body:
        body["member_code"] = shop.member_code
    r = shop.call("POST", "/api/v1/redemptions", json=body)
    assert r.status_code == 422 and _error(r) == "validation_error"


def test_only_shop_staff_redeem(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=5)
    assert shop.redeem([{"item_id": soap, "quantity": 1}], user="watcher").status_code == 403
    assert shop.redeem([{"item_id": soap, "quantity": 1}], user="13800000001").status_code == 403
    assert shop.redeem([{"item_id": soap, "quantity": 1}], user="boss").status_code == 201


def test_redemption_is_idempotent(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    headers = {"Idempotency-Key": "till-1-0001"}
    first = shop.redeem([{"item_id": soap, "quantity": 2}], headers=headers)
    second = shop.redeem([{"item_id": soap, "quantity": 2}], headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert shop.balance() == 94 and shop.on_hand(soap) == 8
    other = shop.redeem([{"item_id": soap, "quantity": 3}], headers=headers)
    assert other.status_code == 422 and _error(other) == "idempotency_key_reused"
    assert shop.balance() == 94


# --- pay codes --------------------------------------------------------------------------------

def test_a_new_receipt_answers_as_the_receipt_reads_back(shop):
    """The sale answers from what it wrote, without loading the receipt: the answer must be exactly
    what GET /redemptions/<id> says of it, for each way of naming the household and the goods."""
    shop.w.grant(shop.hh, 500)
    soap = shop.item("soap", price=3, stock=20)
    shop.item("oil", name="食用油", price=45, stock=5, barcode="690100")
    with shop.w.app.app_context():
        resident_card = db.session.execute(
            select(Resident.member_code).where(Resident.id == shop.resident)).scalar_one()
    pay_code = shop.call("GET", "/api/v1/me/pay-code", "13800000001").get_json()["pay_code"]
    sales = [
        shop.redeem([{"item_id": soap, "quantity": 2}]),
        shop.redeem([{"barcode": "690100", "quantity": 1}, {"item_id": soap, "quantity": 1},
                     {"item_id": soap, "quantity": 2}], member_code=resident_card),
        shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=pay_code),
    ]
    for sale in sales:
        assert sale.status_code == 201, sale.get_json()
        body = sale.get_json()
        assert shop.call("GET", f"/api/v1/redemptions/{body['id']}").get_json() == body
    assert [s.get_json()["identified_by"] for s in sales] == ["member_code", "member_code", "pay_code"]
    assert sales[1].get_json()["resident_id"] == sales[2].get_json()["resident_id"] == shop.resident
    assert sales[0].get_json()["resident_id"] is None


def test_pay_code_redeems_once(shop, clock):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    r = shop.call("GET", "/api/v1/me/pay-code", "13800000001")
    assert r.status_code == 200
    code = r.get_json()["pay_code"]
    assert r.get_json()["expires_at"].endswith("+08:00")
    assert r.get_json()["expires_at"] <= "2026-03-02T10:02:00+08:00"
    first = shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=code)
    assert first.status_code == 201 and first.get_json()["household_id"] == shop.hh
    assert first.get_json()["identified_by"] == "pay_code"
    again = shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=code)
    assert again.status_code == 409 and _error(again) == "pay_code_used"
    assert shop.balance() == 97


def test_refused_sale_does_not_spend_the_pay_code(shop):
    shop.w.grant(shop.hh, 2)
    soap = shop.item(stock=10)
    code = shop.call("GET", "/api/v1/me/pay-code", "13800000001").get_json()["pay_code"]
    assert _error(shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=code)) == "insufficient_points"
    shop.w.grant(shop.hh, 1)
    assert shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=code).status_code == 201


def test_pay_code_expires(shop, clock):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    code = shop.call("GET", "/api/v1/me/pay-code", "13800000001").get_json()["pay_code"]
    clock.advance(seconds=121)
    r = shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=code)
    assert r.status_code == 410 and _error(r) == "pay_code_expired"
    assert shop.balance() == 100


def test_forged_pay_code(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    code = shop.call("GET", "/api/v1/me/pay-code", "13800000001").get_json()["pay_code"]
    forged = code[:-2] + ("AA" if not code.endswith("AA") else "BB")
    r = shop.redeem([{"item_id": soap, "quantity": 1}], pay_code=forged)
    assert r.status_code == 422 and _error(r) == "pay_code_invalid"


def test_pay_code_is_for_residents(shop):
    r = shop.call("GET", "/api/v1/me/pay-code", "clerk")
    assert r.status_code == 403


# --- voids and returns ------------------------------------------------------------------------

def test_void_puts_points_and_stock_back(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    receipt = shop.redeem([{"item_id": soap, "quantity": 4}]).get_json()
    r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "扫错了"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "voided" and body["reversal_transaction_id"] and body["refunded_points"] == 12
    assert shop.balance() == 100 and shop.on_hand(soap) == 10
    again = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "again"})
    assert again.status_code == 409 and _error(again) == "already_voided"
    shown = shop.call("GET", f"/api/v1/redemptions/{receipt['id']}").get_json()
    assert shown["status"] == "voided" and shown["reversal_transaction_id"] == body["reversal_transaction_id"]
    with shop.w.app.app_context():
        tx = ledger.core.load(db.session, body["reversal_transaction_id"])
        assert tx.reverses_id == receipt["transaction_id"] and tx.kind == "void"
        assert ledger.verify(db.session).ok
        assert db.session.execute(select(AuditEntry).where(AuditEntry.action == "redemption.void")).first()
    r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
                  json={"lines": [{"item_id": soap, "quantity": 1}], "reason": "x"})
    assert r.status_code == 409 and _error(r) == "already_voided"


def test_returns_then_void_for_the_remainder(shop):
    shop.w.grant(shop.hh, 200)
    soap = shop.item("soap", price=3, stock=10)
    oil = shop.item("oil", price=45, stock=3)
    receipt = shop.redeem([{"item_id": soap, "quantity": 4}, {"item_id": oil, "quantity": 2}]).get_json()
    assert receipt["total_points"] == 102 and shop.balance() == 98
    r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
                  json={"lines": [{"item_id": oil, "quantity": 1}, {"item_id": soap, "quantity": 1}],
                        "reason": "油桶破损"})
    assert r.status_code == 201, r.get_json()
    ret = r.get_json()
    assert ret["points"] == 48 and ret["balance_after"] == 146
    assert shop.on_hand(oil) == 2 and shop.on_hand(soap) == 7
    too_many = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
                         json={"lines": [{"item_id": oil, "quantity": 2}], "reason": "x"})
    assert too_many.status_code == 409 and _error(too_many) == "return_exceeds_purchase"
    not_bought = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
                           json={"lines": [{"item_id": 9999, "quantity": 1}], "reason": "x"})
    assert _error(not_bought) == "return_exceeds_purchase"
    shown = shop.call("GET", f"/api/v1/redemptions/{receipt['id']}").get_json()
    assert shown["returned_points"] == 48 and len(shown["returns"]) == 1
    # The void gives back only what is still charged: 102 - 48.
    v = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "整单作废"}).get_json()
    assert v["refunded_points"] == 54 and v["balance_after"] == 200
    assert shop.balance() == 200 and shop.on_hand(oil) == 3 and shop.on_hand(soap) == 10
    with shop.w.app.app_context():
        return_tx = ledger.core.load(db.session, ret["transaction_id"])
        assert return_tx.kind == "return" and return_tx.reference == f"redemption:{receipt['id']}"
        assert ledger.verify(db.session).ok


def test_fully_returned_receipt_cannot_be_voided(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    receipt = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
              json={"lines": [{"item_id": soap, "quantity": 2}], "reason": "不要了"})
    r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "x"})
    assert r.status_code == 409 and _error(r) == "fully_returned"
    assert shop.balance() == 100


def test_void_and_return_roles(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    receipt = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    for user in ("watcher", "13800000001"):
        r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", user, json={"reason": "x"})
        assert r.status_code == 403
    r = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", "other_clerk", json={"reason": "x"})
    assert r.status_code == 404
    assert shop.call("POST", "/api/v1/redemptions/9999/void", json={"reason": "x"}).status_code == 404


def test_void_is_idempotent_by_key(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=10)
    receipt = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    h = {"Idempotency-Key": "void-1"}
    a = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "x"}, headers=h)
    b = shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "x"}, headers=h)
    assert a.status_code == b.status_code == 200 and a.get_json() == b.get_json()
    assert shop.balance() == 100


# --- donations --------------------------------------------------------------------------------

def test_donations_are_traced_fifo(shop, clock):
    shop.w.grant(shop.hh, 500)
    soap = shop.item()
    first = shop.stock(soap, 3, "donation", donor="爱心企业·华联超市", donor_kind="enterprise").get_json()
    clock.advance(hours=1)
    second = shop.stock(soap, 5, "donation", donor="县供销社", donor_kind="unit").get_json()
    shop.stock(soap, 2, "purchase")
    clock.advance(hours=1)
    receipt = shop.redeem([{"item_id": soap, "quantity": 4}]).get_json()  # 3 from the first, 1 from the second
    shop.stock(soap, 1, "spoilage")  # from the second lot
    rows = {d["id"]: d for d in shop.call("GET", "/api/v1/donations?community_code=hongxing").get_json()["items"]}
    assert (rows[first["id"]]["units_redeemed"], rows[first["id"]]["units_remaining"]) == (3, 0)
    assert (rows[second["id"]]["units_redeemed"], rows[second["id"]]["units_spoiled"],
            rows[second["id"]]["units_remaining"]) == (1, 1, 3)
    # A return gives the unit back to the lot it was taken from (the newest one taken).
    shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
              json={"lines": [{"item_id": soap, "quantity": 1}], "reason": "x"})
    detail = shop.call("GET", f"/api/v1/donations/{second['id']}", "13800000001").get_json()
    assert detail["units_redeemed"] == 0 and detail["units_remaining"] == 4
    assert [(t["reason"], t["units"], t["receipt_no"]) for t in detail["trail"]] == [
        ("redemption", 1, 1), ("spoilage", 1, None), ("return", -1, 1)]
    donors = shop.call("GET", "/api/v1/donors?community_code=hongxing").get_json()["items"]
    assert [(d["donor"], d["units_given"], d["units_redeemed"]) for d in donors] == [
        ("县供销社", 5, 0), ("爱心企业·华联超市", 3, 3)]
    filtered = shop.call("GET", "/api/v1/donations?community_code=hongxing&donor=县供销社").get_json()["items"]
    assert [d["id"] for d in filtered] == [second["id"]]
    assert shop.call("GET", f"/api/v1/donations/{receipt['id'] + 999}").status_code == 404


# --- reports ----------------------------------------------------------------------------------

def test_stock_report_json_and_csv(shop, clock):
    shop.w.grant(shop.hh, 500)
    soap = shop.item("soap", stock=10, donor="爱心企业·华联超市")
    shop.stock(soap, 5, "purchase")
    receipt = shop.redeem([{"item_id": soap, "quantity": 4}]).get_json()
    shop.stock(soap, 1, "spoilage")
    shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/returns",
              json={"lines": [{"item_id": soap, "quantity": 1}], "reason": "x"})
    clock.advance(days=31)  # April
    shop.relogin()
    shop.stock(soap, 2, "donation", donor="张阿姨", donor_kind="person")
    r = shop.call("GET", "/api/v1/reports/stock?community_code=hongxing&month=2026-03", "watcher")
    assert r.status_code == 200
    report = r.get_json()
    row = report["items"][0]
    assert (row["opening"], row["in_donation"], row["in_purchase"], row["out_redemption"], row["back_return"],
            row["out_spoilage"], row["closing"], row["on_hand_now"]) == (0, 10, 5, 4, 1, 1, 11, 13)
    assert report["donors"] == [{"donor": "爱心企业·华联超市", "donor_kind": "other", "units": 10,
                                 "items": [{"name": "肥皂", "units": 10}]}]
    april = shop.call("GET", "/api/v1/reports/stock?community_code=hongxing&month=2026-04").get_json()
    assert april["items"][0]["opening"] == 11 and april["items"][0]["closing"] == 13
    csv_response = shop.call("GET", "/api/v1/reports/stock?community_code=hongxing&month=2026-03&format=csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    lines = csv_response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("item_id,sku,name,opening,in_donation")
    assert lines[1].split(",")[:5] == [str(soap), "soap", "肥皂", "0", "10"]
    bad = shop.call("GET", "/api/v1/reports/stock?community_code=hongxing&month=2026-13")
    assert bad.status_code == 422
    assert shop.call("GET", "/api/v1/reports/stock?community_code=hongxing&month=2026-03",
                     "13800000001").status_code == 403


def test_verify_checks_stock(shop, runner):
    soap = shop.item(stock=3)
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    with shop.w.app.app_context():
        # A hand edit of the cache (possible for someone at the database) is found.
        db.session.execute(text(f"UPDATE shop_items SET on_hand = 7 WHERE id = {soap}"))
        db.session.commit()
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "on_hand 7" in result.output


def test_stock_lots_cache_follows_the_logs_and_verify_checks_it(shop, runner):
    """What each lot holds is kept by triggers through sales, voids, returns and spoilage (oldest lot
    first), and a hand edit of that cache is found by verify."""
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=3, donor="甲")
    assert shop.stock(soap, 4, "purchase").status_code == 201

    def held():
        with shop.w.app.app_context():
            return [tuple(row) for row in db.session.execute(text(
                f"SELECT quantity, remaining FROM stock_lots WHERE item_id = {soap} ORDER BY lot_id"))]

    first = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    assert held() == [(3, 1), (4, 4)]
    second = shop.redeem([{"item_id": soap, "quantity": 3}]).get_json()
    assert held() == [(3, 0), (4, 2)]
    assert shop.call("POST", f"/api/v1/redemptions/{second['id']}/void", json={"reason": "错了"}).status_code == 200
    assert held() == [(3, 1), (4, 4)]  # given back to the lots it came from, newest first
    r = shop.call("POST", f"/api/v1/redemptions/{first['id']}/returns",
                  json={"lines": [{"item_id": soap, "quantity": 1}], "reason": "退货"})
    assert r.status_code == 201, r.get_json()
    assert held() == [(3, 2), (4, 4)]
    assert shop.stock(soap, -3, "spoilage").status_code == 201
    assert held() == [(3, 0), (4, 3)]
    assert shop.on_hand(soap) == 3
    assert runner.invoke(args=["verify"]).exit_code == 0
    with shop.w.app.app_context():
        db.session.execute(text(f"UPDATE stock_lots SET remaining = 1 WHERE item_id = {soap} AND quantity = 3"))
        db.session.commit()
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1 and "stock lot" in result.output


def test_audit_log_of_stock_changes(shop):
    soap = shop.item()
    shop.stock(soap, 4, "donation", donor="某人")
    with shop.w.app.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "stock.movement")).scalar_one()
        assert entry.target == f"item:{soap}" and json.loads(entry.details)["quantity"] == 4


def test_price_history_and_lot_records_are_append_only(shop):
    shop.w.grant(shop.hh, 100)
    soap = shop.item(stock=5)
    assert shop.redeem([{"item_id": soap, "quantity": 1}]).status_code == 201
    with shop.w.app.app_context():
        for statement in ("UPDATE shop_item_prices SET price_points = 1",
                          "DELETE FROM shop_item_prices",
                          "UPDATE stock_lot_consumptions SET quantity = 0",
                          "DELETE FROM stock_lot_consumptions"):
            with pytest.raises(DBAPIError):
                db.session.execute(text(statement))
                db.session.flush()
            db.session.rollback()


def test_a_sale_dated_in_a_closed_month_is_refused_and_moves_nothing(shop, clock):
    """The month-close guard holds at the till (on PostgreSQL inside the sale's server function): a
    clock still in a month its community has closed sells nothing."""
    from conftest import close_month

    shop.w.grant(shop.hh, 20)
    soap = shop.item("soap", price=3, stock=5)
    shop.w.user("vice", "committee")
    close_month(shop.w, clock, "hongxing", "2026-03", "boss", "vice")
    r = shop.redeem([{"item_id": soap, "quantity": 1}])
    assert r.status_code == 409 and _error(r) == "month_closed", r.get_json()
    assert "2026-03" in r.get_json()["detail"]
    assert shop.balance() == 20 and shop.on_hand(soap) == 5
    with shop.w.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 0
