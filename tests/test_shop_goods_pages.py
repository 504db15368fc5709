"""The till as an installable app that works offline (its files, the basket's key, no-store), and the
goods pages: new goods, changes, price changes with their history, photos, and returns."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import func, select

from conftest import main_text, page_login
from shop_support import png_bytes
from shop_support import shop_town as build_shop_town
from timebank.core import accounts
from timebank.shop import photos


@pytest.fixture
def town(world):
    return build_shop_town(world)


def _sale_key(location: str) -> str:
    return re.search(r"[?&]sale=([A-Za-z0-9_-]+)", location).group(1)


# --- the till -----------------------------------------------------------------------------------

def test_the_baskets_address_carries_its_key_and_a_charged_basket_is_never_offered_again(app, town, world):
    clerk = page_login(app, "clerk")
    r = clerk.get(f"/clerk/pos?member={town.card1}&q=6901111000011")
    assert r.status_code == 302
    basket = r.headers["Location"]
    key = _sale_key(basket)
    page = clerk.get(basket)
    html = page.get_data(as_text=True)
    # The confirm form's one-time key is the basket's key.
    assert f'name="form_key" value="{key}"' in html
    assert page.headers["Cache-Control"] == "no-store"
    # Another scan keeps the key.
    assert _sale_key(clerk.get(basket + "&q=6901111000035").headers["Location"]) == key

    sold = clerk.post("/clerk/pos", data={"member": town.card1, "item": [str(town.items["soap"])],
                                          "form_key": key, "sale": key})
    assert sold.status_code == 302 and "done=" in sold.headers["Location"]
    # Back to the basket (the Back button, a reload): its receipt, never the basket again.
    back = clerk.get(basket)
    assert back.status_code == 302 and "stale=1" in back.headers["Location"] and "sale=" not in back.headers["Location"]
    page = clerk.get(back.headers["Location"])
    text = main_text(page)
    assert "这个购物篮已经结过账了" in text and 'id="pos-lines"' not in page.get_data(as_text=True)
    assert "小票" in text
    # The next resident starts a new basket with a new key.
    fresh = clerk.get(f"/clerk/pos?member={town.card1}&q=6901111000011").headers["Location"]
    assert _sale_key(fresh) != key
    assert world.balance(accounts.household_points(town.h1)) == 97


def test_a_refused_sale_keeps_its_basket_and_key(app, town):
    clerk = page_login(app, "clerk")
    basket = clerk.get(f"/clerk/pos?member={town.card2}&q=6901111000028").headers["Location"]
    key = _sale_key(basket)
    refused = clerk.post("/clerk/pos", data={"member": town.card2, "item": [str(town.items["oil"])],
                                             "form_key": key, "sale": key})
    assert refused.status_code == 409 and "积分不够" in main_text(refused)
    # Nothing was charged, so the basket is still offered, with the same key.
    again = clerk.get(basket)
    assert again.status_code == 200 and f'value="{key}"' in again.get_data(as_text=True)


def test_the_till_is_an_installable_app_with_a_service_worker(app, town, client):
    manifest = client.get("/clerk/pos/manifest.webmanifest")  # fetched by the browser without cookies
    assert manifest.status_code == 200 and manifest.mimetype == "application/manifest+json"
    data = json.loads(manifest.get_data(as_text=True))
    assert data["start_url"] == "/clerk/pos" and data["scope"] == "/clerk/pos"
    assert data["display"] == "standalone" and data["name"] == "爱心超市收银台"
    for icon in data["icons"]:
        r = client.get(icon["src"])
        assert r.status_code == 200 and r.mimetype == "image/png"
        assert r.get_data()[:8] == b"\x89PNG\r\n\x1a\n"
    worker = client.get("/clerk/pos-sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert "script-src 'self'" in worker.headers["Content-Security-Policy"]
    source = worker.get_data(as_text=True)
    assert "__TILL_CONFIG__" not in source
    config = json.loads(re.search(r"var CONFIG = (\{.*?\});", source).group(1))
    assert config["scope"] == "/clerk/pos" and config["shell"] == "/clerk/pos/offline"
    assert config["goods"] == "/clerk/pos/goods.json" and "/static/till.js" in config["assets"]
    for asset in config["assets"]:
        assert client.get(asset).status_code == 200, asset

    clerk = page_login(app, "clerk")
    till = clerk.get("/clerk/pos").get_data(as_text=True)
    assert 'rel="manifest" href="/clerk/pos/manifest.webmanifest"' in till
    assert "till.js" in till and 'id="offline-banner"' in till


def test_the_goods_list_for_the_offline_till(app, town, world):
    clerk = page_login(app, "clerk")
    r = clerk.get("/clerk/pos/goods.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    data = r.get_json()
    by_sku = {i["sku"]: i for i in data["items"]}
    assert by_sku["soap"] == {"id": town.items["soap"], "sku": "soap", "name": "香皂", "barcode": "6901111000011",
                              "price_points": 3, "on_hand": 10, "monthly_limit_per_household": None,
                              "photo_url": None}
    assert data["csrf_token"] and data["community_code"] == "hongxing"
    # Goods taken off sale are not offered offline.
    world.call("PATCH", f"/api/v1/items/{town.items['tissue']}", "clerk", json={"active": False})
    assert "tissue" not in {i["sku"] for i in clerk.get("/clerk/pos/goods.json").get_json()["items"]}
    # Supervisors read it; residents do not.
    assert page_login(app, "super").get("/clerk/pos/goods.json").status_code == 200
    assert page_login(app, town.resident1).get("/clerk/pos/goods.json").status_code == 403


def test_the_offline_page_says_refusals_in_chinese_and_leaves_messages_for_the_next_page(app, town):
    clerk = page_login(app, "clerk")
    with clerk.session_transaction() as session:
        session["_flashes"] = [("success", "留给下一页的话")]
    page = clerk.get("/clerk/pos/offline")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-mode="local"' in html and "留给下一页的话" not in html
    settings = json.loads(re.search(r"data-settings='([^']*)'", html).group(1).replace("&#39;", "'"))
    assert "积分不够" in settings["refusals"]["insufficient_points"]
    assert "库存" in settings["refusals"]["insufficient_stock"]
    assert settings["api_url"] == "/api/v1/redemptions" and settings["scope"] == "/clerk/pos"
    assert "离线" in settings["texts"]["offline"]
    # The message is still there for the next page.
    assert "留给下一页的话" in clerk.get("/clerk/stock").get_data(as_text=True)


def test_a_queued_sale_sent_with_the_page_session_is_charged_once(make_app, town, world):
    """What the offline till sends: the page's session, the fresh CSRF token of the goods list, the
    sale's own Idempotency-Key. Sent twice (the answer lost on the way), it is charged once; a
    refusal comes back with its code."""
    app = make_app(WTF_CSRF_ENABLED=True)
    clerk = app.test_client()
    login = clerk.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    assert clerk.post("/login", data={"username": "clerk", "password": "secret-pass",
                                      "csrf_token": token}).status_code == 302
    csrf = clerk.get("/clerk/pos/goods.json").get_json()["csrf_token"]
    body = {"member_code": town.card1, "lines": [{"item_id": town.items["soap"], "quantity": 2}]}
    headers = {"X-CSRFToken": csrf, "Idempotency-Key": "till-3f1c"}
    first = clerk.post("/api/v1/redemptions", json=body, headers=headers)
    again = clerk.post("/api/v1/redemptions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["receipt_no"] == first.get_json()["receipt_no"]
    assert world.balance(accounts.household_points(town.h1)) == 94
    refused = clerk.post("/api/v1/redemptions", headers={"X-CSRFToken": csrf, "Idempotency-Key": "till-9a"},
                         json={"member_code": town.card2, "lines": [{"item_id": town.items["oil"], "quantity": 1}]})
    assert refused.status_code == 409 and refused.get_json()["error"] == "insufficient_points"
    assert clerk.post("/api/v1/redemptions", json=body,
                      headers={"Idempotency-Key": "till-no-token"}).get_json()["error"] == "csrf_failed"


# --- goods ----------------------------------------------------------------------------------------

def _form_key(html: str, form_id: str) -> str:
    form = html.split(f'id="{form_id}"', 1)[1]
    return re.search(r'name="form_key" value="([^"]+)"', form).group(1)


def test_new_goods_from_the_page(app, town):
    committee = page_login(app, "committee")
    page = committee.get("/clerk/goods").get_data(as_text=True)
    key = _form_key(page, "new-goods-form")
    r = committee.post("/clerk/goods", data={"form_key": key, "name": "大米", "sku": "rice", "barcode": "6902",
                                             "price_points": "40", "monthly_limit_per_household": "2",
                                             "low_stock_threshold": "3"}, follow_redirects=True)
    assert r.status_code == 200 and "已添加新商品：大米" in main_text(r)
    item = world_item(app, "rice")
    assert (item.price_points, item.barcode, item.monthly_limit_per_household,
            item.low_stock_threshold) == (40, "6902", 2, 3)
    # The same SKU again, and a price that is no whole number: said in words, nothing added.
    page = committee.get("/clerk/goods").get_data(as_text=True)
    r = committee.post("/clerk/goods", data={"form_key": _form_key(page, "new-goods-form"), "name": "米",
                                             "sku": "rice", "price_points": "40"}, follow_redirects=True)
    assert "没有办成" in main_text(r)
    page = committee.get("/clerk/goods").get_data(as_text=True)
    r = committee.post("/clerk/goods", data={"form_key": _form_key(page, "new-goods-form"), "name": "米",
                                             "sku": "rice2", "price_points": "1.5"}, follow_redirects=True)
    assert "没有办成" in main_text(r) and world_item(app, "rice2") is None
    # Supervisors see the goods and no form; their POST is refused.
    sup = page_login(app, "super")
    assert 'id="new-goods-form"' not in sup.get("/clerk/goods").get_data(as_text=True)
    assert sup.post("/clerk/goods", data={"form_key": "x" * 22}).status_code == 403


def world_item(app, sku):
    from timebank.core.extensions import db
    from timebank.shop.models import Item

    with app.app_context():
        item = db.session.execute(select(Item).where(Item.sku == sku)).scalar_one_or_none()
        if item is not None:
            db.session.expunge(item)
        return item


def test_price_changes_keep_their_history_and_receipts_keep_their_price(app, town, world):
    clerk = page_login(app, "clerk")
    oil = town.items["oil"]
    world.grant(town.h1, 100)
    sold = world.call("POST", "/api/v1/redemptions", "clerk",
                      json={"member_code": town.card1, "lines": [{"item_id": oil, "quantity": 1}]}).get_json()
    page = clerk.get(f"/clerk/goods/{oil}").get_data(as_text=True)
    r = clerk.post(f"/clerk/goods/{oil}/price", data={"form_key": _form_key(page, "price-form"),
                                                      "price_points": "50", "note": "进价上涨"},
                   follow_redirects=True)
    assert "食用油 的新价格：50 积分（原价 45）" in main_text(r)
    history = main_text(clerk.get(f"/clerk/goods/{oil}")).split("价格记录", 1)[1]
    assert "50" in history and "45" in history and "进价上涨" in history
    prices = world.call("GET", f"/api/v1/items/{oil}/prices", "clerk").get_json()
    assert [p["price_points"] for p in prices] == [45, 50]
    assert world.call("GET", f"/api/v1/redemptions/{sold['id']}", "clerk").get_json()["lines"][0]["unit_points"] == 45


def test_changing_goods_and_taking_them_off_sale(app, town):
    clerk = page_login(app, "clerk")
    soap = town.items["soap"]
    page = clerk.get(f"/clerk/goods/{soap}").get_data(as_text=True)
    r = clerk.post(f"/clerk/goods/{soap}/change", data={
        "form_key": _form_key(page, "change-goods-form"), "name": "香皂（大块）", "barcode": "6901111000011",
        "monthly_limit_per_household": "4", "low_stock_threshold": "2"}, follow_redirects=True)
    assert "已保存：香皂（大块）" in main_text(r)
    item = world_item(app, "soap")
    assert (item.name, item.monthly_limit_per_household, item.active) == ("香皂（大块）", 4, False)
    # A barcode of other goods is refused in words.
    page = clerk.get(f"/clerk/goods/{soap}").get_data(as_text=True)
    r = clerk.post(f"/clerk/goods/{soap}/change", data={
        "form_key": _form_key(page, "change-goods-form"), "name": "香皂", "barcode": "6901111000028",
        "active": "1"}, follow_redirects=True)
    assert "没有办成" in main_text(r) and world_item(app, "soap").barcode == "6901111000011"


def test_photos_of_goods(app, town, world):
    clerk = page_login(app, "clerk")
    soap = town.items["soap"]
    page = clerk.get(f"/clerk/goods/{soap}").get_data(as_text=True)
    picture = png_bytes(40, 30)
    r = clerk.post(f"/clerk/goods/{soap}/photo", data={
        "form_key": _form_key(page, "photo-form"), "photo": (io.BytesIO(picture), "香皂.png")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "照片已保存" in main_text(r)
    url = re.search(r'id="item-photo" src="([^"]+)"', r.get_data(as_text=True)).group(1)
    served = clerk.get(url)
    assert served.status_code == 200 and served.mimetype == "image/png" and served.get_data() == picture
    assert served.headers["X-Content-Type-Options"] == "nosniff" and served.headers["ETag"]
    assert clerk.get(url, headers={"If-None-Match": served.headers["ETag"]}).status_code == 304
    # Shown on the goods list, on the till's basket, in the offline goods list.
    assert url in clerk.get("/clerk/goods").get_data(as_text=True)
    basket = clerk.get(f"/clerk/pos?member={town.card1}&q=6901111000011", follow_redirects=True)
    assert url in basket.get_data(as_text=True)
    assert {i["sku"]: i["photo_url"] for i in clerk.get("/clerk/pos/goods.json").get_json()["items"]}["soap"] == url
    # Residents of the community see it; another community's staff do not; nobody without a login.
    assert page_login(app, town.resident1).get(url).status_code == 200
    assert page_login(app, "other_committee").get(url).status_code == 404
    assert app.test_client().get(url).status_code == 302

    # Not a picture (whatever its name says), and too large a picture: refused in words, nothing kept.
    for data, name in ((b"%PDF-1.4 not a picture", "photo.png"), (b"<script>alert(1)</script>", "x.jpg")):
        page = clerk.get(f"/clerk/goods/{soap}").get_data(as_text=True)
        r = clerk.post(f"/clerk/goods/{soap}/photo", data={
            "form_key": _form_key(page, "photo-form"), "photo": (io.BytesIO(data), name)},
            content_type="multipart/form-data", follow_redirects=True)
        assert "没有办成" in main_text(r)
        assert clerk.get(url).get_data() == picture
    app.config["TIMEBANK_PHOTO_MAX_BYTES"] = 100
    page = clerk.get(f"/clerk/goods/{soap}").get_data(as_text=True)
    r = clerk.post(f"/clerk/goods/{soap}/photo", data={
        "form_key": _form_key(page, "photo-form"), "photo": (io.BytesIO(png_bytes(60, 60)), "p.png")},
        content_type="multipart/form-data")
    assert r.status_code in (302, 413)
    assert clerk.get(url).get_data() == picture

    # Removed: gone from the pages.
    page = clerk.get(f"/clerk/goods/{soap}").get_data(as_text=True)
    r = clerk.post(f"/clerk/goods/{soap}/photo", data={"form_key": _form_key(page, "photo-remove-form"),
                                                       "action": "remove"}, follow_redirects=True)
    assert "照片已删除" in main_text(r) and clerk.get(url).status_code == 404


@pytest.mark.parametrize("kind", ["jpeg", "png", "webp-lossy", "webp-lossless", "webp-extended"])
def test_pictures_are_known_by_their_first_bytes(kind):
    headers = {
        "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                 b"\xff\xc0\x00\x11\x08\x00\x1e\x00\x28\x03\x01\x22\x00", ("image/jpeg", 40, 30)),
        "png": (png_bytes(40, 30), ("image/png", 40, 30)),
        "webp-lossy": (b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x00\x00\x00\x9d\x01\x2a\x28\x00\x1e\x00",
                       ("image/webp", 40, 30)),
        "webp-lossless": (b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f"
                          + ((39) | (29 << 14)).to_bytes(4, "little") + b"\x00" * 8, ("image/webp", 40, 30)),
        "webp-extended": (b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
                          + (39).to_bytes(3, "little") + (29).to_bytes(3, "little"), ("image/webp", 40, 30)),
    }
    data, expected = headers[kind]
    assert photos.sniff(data) == expected


def test_a_picture_too_large_a_side_or_not_a_picture_is_refused():
    with pytest.raises(photos.NotAnImage):
        photos.sniff(png_bytes(9000, 1))
    for data in (b"", b"GIF89a....", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg></svg>"):
        with pytest.raises(photos.NotAnImage):
            photos.sniff(data)


# --- returns ----------------------------------------------------------------------------------------

def test_returns_from_the_receipt_page(app, town, world):
    sold = world.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": town.card1, "lines": [{"item_id": town.items["soap"], "quantity": 3},
                                             {"item_id": town.items["tissue"], "quantity": 1}]}).get_json()
    clerk = page_login(app, "clerk")
    assert f"/clerk/receipts/{sold['id']}" in clerk.get("/clerk/receipts").get_data(as_text=True)
    page = clerk.get(f"/clerk/receipts/{sold['id']}").get_data(as_text=True)
    r = clerk.post(f"/clerk/receipts/{sold['id']}/return", data={
        "form_key": _form_key(page, "return-form"), f"qty-{town.items['soap']}": "2",
        f"qty-{town.items['tissue']}": "0", "reason": "买多了"}, follow_redirects=True)
    assert "已退货：6 积分已退回这户" in main_text(r)
    assert world.balance(accounts.household_points(town.h1)) == 100 - 17 + 6
    assert world_item(app, "soap").on_hand == 10 - 3 + 2
    assert "买多了" in main_text(r)
    # More than is left to return: refused in words, nothing moves.
    page = clerk.get(f"/clerk/receipts/{sold['id']}").get_data(as_text=True)
    r = clerk.post(f"/clerk/receipts/{sold['id']}/return", data={
        "form_key": _form_key(page, "return-form"), f"qty-{town.items['soap']}": "2", "reason": "再退"},
        follow_redirects=True)
    assert "没有办成" in main_text(r)
    assert world.balance(accounts.household_points(town.h1)) == 89
    # Nothing chosen: said so.
    r = clerk.post(f"/clerk/receipts/{sold['id']}/return", data={
        "form_key": _form_key(page, "return-form") + "x", "reason": "空"}, follow_redirects=True)
    assert "请填写退回哪些商品" in main_text(r)


def test_nobody_takes_back_goods_of_their_own_household(app, town, world):
    sold = world.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": town.card1, "lines": [{"item_id": town.items["soap"], "quantity": 1}]}).get_json()
    own = page_login(app, "committee_h1")
    page = own.get(f"/clerk/receipts/{sold['id']}")
    assert 'id="return-form"' not in page.get_data(as_text=True)
    assert "另一位店员" in main_text(page) or "自己家" in main_text(page)
    r = own.post(f"/clerk/receipts/{sold['id']}/return", data={
        "form_key": "k" * 22, f"qty-{town.items['soap']}": "1", "reason": "退"}, follow_redirects=True)
    assert "没有办成" in main_text(r)
    from timebank.core.extensions import db
    from timebank.shop.models import RedemptionReturn

    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(RedemptionReturn)).scalar_one() == 0
