"""The printable receipt page /receipts/<id>: page session only, Chinese labels, void shown."""

from __future__ import annotations

import pytest

from test_shop_api import Shop


@pytest.fixture
def sold(world):
    shop = Shop(world)
    shop.w.grant(shop.hh, 100)
    soap = shop.item("soap", name="肥皂", price=3, stock=10)
    receipt = shop.redeem([{"item_id": soap, "quantity": 2}]).get_json()
    return shop, receipt


def _login(client, user_id):
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True


def _user_id(world, username):
    from sqlalchemy import select

    from timebank.core.extensions import db
    from timebank.core.users import User

    with world.app.app_context():
        return db.session.execute(select(User.id).where(User.username == username)).scalar_one()


def test_receipt_page_needs_a_session(sold, app):
    shop, receipt = sold
    client = app.test_client()
    r = client.get(f"/receipts/{receipt['id']}", headers={"Accept": "text/html"})
    assert r.status_code == 401
    # A bearer token is not a page session, and a token in the address is not accepted either.
    token = shop.w.token("clerk")
    assert client.get(f"/receipts/{receipt['id']}?token={token}").status_code == 401


def test_clerk_prints_a_receipt(sold, app):
    shop, receipt = sold
    client = app.test_client()
    _login(client, _user_id(shop.w, "clerk"))
    r = client.get(f"/receipts/{receipt['id']}")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    for text in ("爱心超市兑换小票", "No.1", "肥皂", "合计", "6 积分", "兑换后余额", "94 积分", "张家"):
        assert text in page
    assert "已作废" not in page
    assert receipt["receipt_url"] == f"/receipts/{receipt['id']}"


def test_voided_receipt_says_so(sold, app):
    shop, receipt = sold
    shop.call("POST", f"/api/v1/redemptions/{receipt['id']}/void", json={"reason": "扫错商品"})
    client = app.test_client()
    _login(client, _user_id(shop.w, "boss"))
    page = client.get(f"/receipts/{receipt['id']}").get_data(as_text=True)
    assert "已作废" in page and "扫错商品" in page


def test_household_resident_may_see_it_others_may_not(sold, app):
    shop, receipt = sold
    client = app.test_client()
    _login(client, _user_id(shop.w, "13800000001"))
    assert client.get(f"/receipts/{receipt['id']}").status_code == 200
    other = app.test_client()
    _login(other, _user_id(shop.w, "other_clerk"))
    assert other.get(f"/receipts/{receipt['id']}").status_code == 404
    assert other.get("/receipts/9999").status_code == 404
