"""Services (特色服务: a haircut, a repair, a meal at the 老年食堂): sold for points without stock, with a
number of places per day."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from conftest import main_text, page_login
from test_shop_api import Shop
from timebank.core.extensions import db
from timebank.shop.models import LotConsumption, StockMovement


def _error(response):
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    return response.get_json()["error"]


def _service(shop, sku="haircut", name="理发", price=5, places=2, user="clerk", **kw):
    body = {"community_code": "hongxing", "sku": sku, "name": name, "price_points": price, "kind": "service",
            **kw}
    if places is not None:
        body["daily_places"] = places
    r = shop.call("POST", "/api/v1/items", user, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _left(shop, item_id, user="clerk"):
    return shop.call("GET", f"/api/v1/items/{item_id}", user).get_json()["places_left_today"]


def _movements(shop):
    with shop.w.app.app_context():
        return (db.session.execute(select(func.count()).select_from(StockMovement)).scalar_one(),
                db.session.execute(select(func.count()).select_from(LotConsumption)).scalar_one())


def test_a_service_is_sold_without_stock_within_its_places_per_day(world, clock):
    shop = Shop(world)
    shop.w.grant(shop.hh, 100)
    body = _service(shop)
    assert body["kind"] == "service" and body["daily_places"] == 2 and body["on_hand"] == 0
    assert body["places_left_today"] == 2
    haircut = body["id"]
    r = shop.redeem([{"item_id": haircut, "quantity": 1}])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["total_points"] == 5 and shop.balance() == 95
    assert _movements(shop) == (0, 0)  # no stock movement, no lot
    low = shop.call("GET", "/api/v1/items/low-stock?community_code=hongxing").get_json()["items"]
    assert low == []  # a service is never low on stock
    assert _left(shop, haircut) == 1
    assert _left(shop, haircut, "13800000001") == 1  # residents see it too
    r = shop.redeem([{"item_id": haircut, "quantity": 2}])
    assert r.status_code == 409 and _error(r) == "no_places_left"
    assert shop.balance() == 95
    second = shop.redeem([{"item_id": haircut, "quantity": 1}]).get_json()
    assert _left(shop, haircut) == 0
    assert _error(shop.redeem([{"item_id": haircut, "quantity": 1}])) == "no_places_left"
    # A void and a return give the place back and write no stock movement.
    r = shop.call("POST", f"/api/v1/redemptions/{second['id']}/void", "boss", json={"reason": "改天再来"})
    assert r.status_code == 200, r.get_json()
    assert _left(shop, haircut) == 1 and _movements(shop) == (0, 0)
    third = shop.redeem([{"item_id": haircut, "quantity": 1}]).get_json()
    r = shop.call("POST", f"/api/v1/redemptions/{third['id']}/returns", "boss",
                  json={"lines": [{"item_id": haircut, "quantity": 1}], "reason": "师傅病了"})
    assert r.status_code == 201, r.get_json()
    assert _left(shop, haircut) == 1 and _movements(shop) == (0, 0)
    # The places are per local calendar day: tomorrow (Shanghai) the two places are there again.
    clock.advance(hours=14)  # 2026-03-03 00:00 +08:00
    shop.relogin()
    assert _left(shop, haircut) == 2


def test_a_service_without_places_is_unlimited_and_goods_have_no_places(world):
    shop = Shop(world)
    shop.w.grant(shop.hh, 100)
    repair = _service(shop, "repair", "小家电维修", price=10, places=None)
    assert repair["daily_places"] is None and repair["places_left_today"] is None
    assert shop.redeem([{"item_id": repair["id"], "quantity": 3}]).status_code == 201
    r = shop.call("POST", "/api/v1/items", json={"community_code": "hongxing", "sku": "soap", "name": "香皂",
                                                  "price_points": 3, "daily_places": 4})
    assert r.status_code == 422 and "daily_places" in r.get_json()["errors"]
    soap = shop.item("soap", stock=5)
    got = shop.call("GET", f"/api/v1/items/{soap}").get_json()
    assert got["kind"] == "goods" and got["places_left_today"] is None
    # A service has no shelf: stock movements are refused.
    r = shop.stock(repair["id"], 5, "purchase")
    assert r.status_code == 409 and _error(r) == "not_stocked"
    # Its places can change.
    r = shop.call("PATCH", f"/api/v1/items/{repair['id']}", "boss", json={"daily_places": 4})
    assert r.status_code == 200 and r.get_json()["places_left_today"] == 1


def test_places_hold_when_tills_race(world):
    shop = Shop(world)
    households = [world.household(name=f"户{n}") for n in range(6)]
    for h in households:
        world.grant(h, 50)
    meal = _service(shop, "meal", "老年食堂午餐", price=2, places=3)["id"]
    from timebank.people.models import Household

    with world.app.app_context():
        cards = [db.session.get(Household, h).member_code for h in households]
    tokens = []
    for _ in cards:
        r = world.client.post("/api/v1/auth/token", json={"username": "clerk", "password": "secret-pass"})
        tokens.append(r.get_json()["access_token"])
    barrier = threading.Barrier(len(cards))
    results = []

    def till(card, token):
        client = world.app.test_client()
        with world.app.app_context():
            barrier.wait()
            try:
                r = client.post("/api/v1/redemptions", headers={"Authorization": f"Bearer {token}"},
                                json={"member_code": card, "lines": [{"item_id": meal, "quantity": 1}]})
                results.append((r.status_code, (r.get_json() or {}).get("error")))
            finally:
                db.session.remove()

    workers = [threading.Thread(target=till, args=pair) for pair in zip(cards, tokens, strict=True)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results, key=str) == sorted([(201, None)] * 3 + [(409, "no_places_left")] * 3, key=str)
    assert _left(shop, meal) == 0


def test_services_on_the_pages(app, world):
    shop = Shop(world)
    shop.w.grant(shop.hh, 100)
    clerk = page_login(app, "clerk")
    page = clerk.get("/clerk/services")
    assert page.status_code == 200
    import re

    key = re.search(r'name="form_key" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    r = clerk.post("/clerk/services", data={"form_key": key, "sku": "haircut", "name": "理发",
                                             "price_points": "5", "daily_places": "1"}, follow_redirects=True)
    assert r.status_code == 200 and "理发" in main_text(r)
    listed = shop.call("GET", "/api/v1/items?community_code=hongxing").get_json()["items"]
    haircut = next(i for i in listed if i["sku"] == "haircut")
    assert haircut["kind"] == "service" and haircut["daily_places"] == 1
    # The resident sees the service with its places left today.
    resident = page_login(app, "13800000001", "resident-pass")
    text = main_text(resident.get("/me/shop"))
    assert "理发" in text and "今天还剩 1 个名额" in text
    # The till refuses a second haircut today, in Chinese.
    assert shop.redeem([{"item_id": haircut["id"], "quantity": 1}]).status_code == 201
    till = clerk.get(f"/clerk/pos?member={shop.member_code}&item={haircut['id']}")
    key = re.search(r'name="form_key" value="([^"]+)"', till.get_data(as_text=True)).group(1)
    r = clerk.post("/clerk/pos", data={"member": shop.member_code, "item": [haircut["id"]], "form_key": key})
    assert r.status_code == 409
    assert "今天的名额已满" in main_text(r)
    assert "今天的名额已满" in main_text(resident.get("/me/shop"))
