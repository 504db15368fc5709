"""The stock room's form is bounded exactly as the API: a purchase of 9e18 (twice, and the sum overflowed)
is refused with words, nothing is stored, and the checks and the stock report keep answering. The
database refuses a quantity out of bounds however it comes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from timebank.core.extensions import db

HUGE = [9 * 10**18, -1, 0, "1e3", 10**30, 1_000_001, 2**63]


@pytest.fixture
def room(world):
    from timebank.people.models import Community
    from timebank.shop import operations as shop

    world.user("clerk", "clerk")
    world.user("committee", "committee")
    with world.app.app_context():
        community = db.session.execute(db.select(Community).filter_by(code="hongxing")).scalar_one()
        from timebank.core.users import User

        committee = db.session.execute(db.select(User).filter_by(username="committee")).scalar_one()
        item = shop.create_item(community, committee, sku="oil", name="食用油", price_points=5)
        db.session.commit()
        return item.id


def _login(app, username):
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": "secret-pass"}).status_code == 302
    return client


def _stock(app):
    from timebank.shop.models import Item, StockMovement

    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(StockMovement)),
                db.session.scalar(select(func.sum(Item.on_hand))))


def _still_answering(world, runner):
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert _login(world.app, "committee").get("/committee/ledger/verify").status_code == 200
    for fmt in ("json", "csv"):
        r = world.call("GET", f"/api/v1/reports/stock?community_code=hongxing&month=2026-03&format={fmt}", "clerk")
        assert r.status_code == 200, r.get_data(as_text=True)[:300]


@pytest.mark.parametrize("quantity", HUGE)
def test_the_stock_room_page_refuses_what_the_api_refuses(world, room, runner, quantity):
    clerk = _login(world.app, "clerk")
    before = _stock(world.app)
    for n in range(2):
        r = clerk.post("/clerk/stock", data={"item_id": room, "quantity": str(quantity), "reason": "purchase",
                                             "form_key": f"{n}{quantity}".ljust(20, "k")[:40]},
                       follow_redirects=True)
        assert r.status_code == 200
        page = r.get_data(as_text=True)
        assert "没有办成" in page, page[:2000]
    assert _stock(world.app) == before
    _still_answering(world, runner)


def test_the_page_says_the_bounds_in_chinese(world, room):
    clerk = _login(world.app, "clerk")
    r = clerk.post("/clerk/stock", data={"item_id": room, "quantity": str(9 * 10**18), "reason": "purchase",
                                         "form_key": "z" * 20}, follow_redirects=True)
    assert "-1000000 到 1000000 之间的整数" in r.get_data(as_text=True)
    r = clerk.post("/clerk/stock", data={"item_id": room, "quantity": "1e3", "reason": "purchase",
                                         "form_key": "y" * 20}, follow_redirects=True)
    assert "-1000000 到 1000000 之间的整数" in r.get_data(as_text=True)
    # What the API takes, the page takes.
    r = clerk.post("/clerk/stock", data={"item_id": room, "quantity": "1000000", "reason": "purchase",
                                         "form_key": "x" * 20}, follow_redirects=True)
    assert "已记录" in r.get_data(as_text=True) and _stock(world.app)[1] == 1_000_000


@pytest.mark.parametrize("quantity", [*HUGE, 1e3])
def test_the_api_refuses_the_same(world, room, runner, quantity):
    before = _stock(world.app)
    r = world.call("POST", "/api/v1/stock-movements", "clerk",
                   json={"item_id": room, "quantity": quantity, "reason": "purchase"})
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)[:300]
    assert _stock(world.app) == before
    _still_answering(world, runner)


@pytest.mark.parametrize("quantity", [9 * 10**18, 1_000_001])
def test_the_database_refuses_a_quantity_out_of_bounds(world, room, quantity):
    """However a row comes (an old page, a script), the sums over the log can never overflow."""
    with world.app.app_context():
        community_id = db.session.execute(text("SELECT community_id FROM shop_items WHERE id = :i"),
                                          {"i": room}).scalar_one()
        with pytest.raises(DBAPIError):
            db.session.execute(text(
                "INSERT INTO stock_movements (item_id, community_id, quantity, reason, created_at, note)"
                " VALUES (:i, :c, :q, 'adjustment', CURRENT_TIMESTAMP, '')"), {"i": room, "c": community_id,
                                                                             "q": quantity})
        db.session.rollback()
    assert _stock(world.app) == (0, 0)


def test_a_shelf_cannot_grow_past_what_its_column_holds(world, room, monkeypatch):
    from timebank.shop import operations as shop

    monkeypatch.setattr(shop, "MAX_ON_HAND", 1_500_000)
    ok = world.call("POST", "/api/v1/stock-movements", "clerk",
                    json={"item_id": room, "quantity": 1_000_000, "reason": "purchase"})
    assert ok.status_code == 201, ok.get_data(as_text=True)
    r = world.call("POST", "/api/v1/stock-movements", "clerk",
                   json={"item_id": room, "quantity": 1_000_000, "reason": "purchase"})
    assert r.status_code == 422 and r.get_json()["errors"]["quantity"], r.get_data(as_text=True)
    assert _stock(world.app) == (1, 1_000_000)


@pytest.mark.parametrize("field, value", [("points", str(9 * 10**18)), ("points", "1e3"), ("minutes", str(10**30)),
                                          ("publicity_days", "-1"), ("cap_max_points", str(9 * 10**18))])
def test_the_points_list_page_takes_what_the_api_takes(world, field, value):
    from timebank.earning.models import Rule

    committee = _login(world.app, "committee") if world.user("committee", "committee") else None
    data = {"code": "clean", "title": "清扫楼道", "category": "volunteer", "points": "10", "review": "auto",
            "cap_period": "month", "cap_max_points": "50", "form_key": "r" * 20, field: value}
    r = committee.post("/committee/rules", data=data, follow_redirects=True)
    assert r.status_code in (200, 422) and "之间的整数" in r.get_data(as_text=True)
    with world.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Rule)) == 0
    data.update({field: {"points": "50", "cap_max_points": "1000000"}.get(field, "0"), "form_key": "s" * 20})
    r = committee.post("/committee/rules", data=data, follow_redirects=True)
    with world.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Rule)) == 1, r.get_data(as_text=True)[:3000]
