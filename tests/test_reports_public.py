"""The public notice board (公示栏): masked names, ranking, donors, the checkpoint, print layout, objections."""

from __future__ import annotations

import pytest

from earning_support import PASSWORD, advance, build_town, claim, rule
from timebank.reports.operations import mask_name


@pytest.mark.parametrize("name, masked", [
    ("张三丰", "张*丰"), ("张三", "张*"), ("张", "张"), ("", ""), ("李小龙飞", "李**飞"),
    ("欧阳小明", "欧阳*明"), ("欧阳明", "欧阳*"), ("欧阳", "欧*"), ("司马相如", "司马*如"), ("  王五 ", "王*"),
])
def test_mask_name(name, masked):
    assert mask_name(name) == masked


@pytest.fixture
def town(world, clock):
    t = build_town(world)
    rule(world, "clean", title="清扫楼道", points=10, publicity_days=3)
    rule(world, "quick", title="门前三包", points=4, review="auto", publicity_days=0)
    return t


def _on_board(world, t):
    """Two claims on the board (张三 10, 李四 10), one posted at once (张小妹 4), one still pending."""
    first = claim(world, t.r1, t.resident1)
    second = claim(world, t.r2, t.resident2)
    claim(world, t.r1b, t.resident1b, rule_code="quick")
    claim(world, t.r2, t.resident2)  # stays pending: not on the board
    for c in (first, second):
        r = world.call("POST", f"/api/v1/claims/{c['id']}/approve", "committee")
        assert r.status_code == 200 and r.get_json()["status"] == "publicized"
    return first, second


def test_board_json_without_login(world, clock, town):
    first, second = _on_board(world, town)
    world.call("POST", "/api/v1/stock-movements", "clerk", json={"item_id": _item(world), "quantity": 12,
                                                                  "reason": "donation", "donor": "华联超市",
                                                                  "donor_kind": "enterprise"})
    assert world.call("POST", "/api/v1/ledger/checkpoints", "committee").status_code == 201
    r = world.client.get("/api/v1/public/hongxing")
    assert r.status_code == 200
    board = r.get_json()
    assert board["community_name"] == "红星社区" and board["month"] == "2026-03"
    assert [(c["claim_id"], c["resident_name"], c["household_name"], c["rule_title"], c["points"])
            for c in board["publicity"]] == [(first["id"], "张*", "张*", "清扫楼道", 10),
                                              (second["id"], "李*", "李*", "清扫楼道", 10)]
    assert board["publicity"][0]["publicity_ends_at"] == "2026-03-05T10:00:00+08:00"
    # Only posted points rank: 张家 has 4 (the auto claim), the board's claims are not posted yet.
    assert board["ranking"] == [{"rank": 1, "household_name": "张*", "points": 4}]
    assert board["donors"][0]["donor"] == "华联超市"
    assert board["donors"][0]["items"] == [{"name": "香皂", "quantity": 12}]
    cp = board["checkpoint"]
    latest = world.client.get("/api/v1/ledger/checkpoints/latest").get_json()
    assert (cp["tree_size"], cp["root_hash"], cp["key_id"]) == (latest["tree_size"], latest["root_hash"],
                                                                latest["key_id"])
    assert cp["public_key_url"] == "/api/v1/ledger/public-key" and cp["timestamp"].endswith("+08:00")
    text = r.get_data(as_text=True)
    assert "张三" not in text and "李四" not in text and "张小妹" not in text

    # After the notice ends and the claims are posted, the board is empty and the ranking grows.
    advance(world, clock, days=3, minutes=1)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.earning.operations import close_publicity

        close_publicity()
        db.session.commit()
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert board["publicity"] == []
    assert board["ranking"] == [{"rank": 1, "household_name": "张*", "points": 14},
                                {"rank": 2, "household_name": "李*", "points": 10}]


def _item(world):
    r = world.call("POST", "/api/v1/items", "clerk",
                   json={"community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 3})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def test_board_page_and_print_layout(world, town):
    _on_board(world, town)
    world.call("POST", "/api/v1/ledger/checkpoints", "committee")
    root = world.client.get("/api/v1/ledger/checkpoints/latest").get_json()["root_hash"]
    page = world.client.get("/public/hongxing")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "张*" in html and "李*" in html and "清扫楼道" in html and root in html
    assert "张三" not in html and "李四" not in html
    assert "@media print" in html and "size: A4" in html
    assert "/public/hongxing/claims/" in html and "/api/v1/ledger/public-key" in html
    printed = world.client.get("/public/hongxing?print=1").get_data(as_text=True)
    assert "size: A4" in printed and root in printed and "清扫楼道" in printed
    assert 'class="main"' not in printed and "topbar" not in printed.split("<body")[1]
    assert "/claims/" not in printed  # no buttons on paper
    assert world.client.get("/public/nowhere").status_code == 404
    assert world.client.get("/api/v1/public/nowhere").status_code == 404


def _login(client, username):
    r = client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code in (302, 303), r.get_data(as_text=True)[:300]


def test_objection_needs_login_and_sends_the_claim_back(world, town):
    first, _second = _on_board(world, town)
    url = f"/public/hongxing/claims/{first['id']}/object"
    anonymous = world.client.get(url)
    assert anonymous.status_code == 302 and "/login?next=" in anonymous.headers["Location"]
    assert "object" in anonymous.headers["Location"]
    client = world.app.test_client()
    _login(client, town.resident2)
    form = client.get(url)
    assert form.status_code == 200 and "张*" in form.get_data(as_text=True)
    empty = client.post(url, data={"reason": "  ", "form_key": "objection-1"})
    assert empty.status_code == 302
    assert world.call("GET", f"/api/v1/claims/{first['id']}", "committee").get_json()["status"] == "publicized"
    sent = client.post(url, data={"reason": "他那天不在家", "form_key": "objection-1"})
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/public/hongxing")
    after = world.call("GET", f"/api/v1/claims/{first['id']}", "committee").get_json()
    assert after["status"] == "pending"
    assert after["events"][-1]["action"] == "object" and after["events"][-1]["reason"] == "他那天不在家"
    assert first["id"] not in [c["claim_id"]
                               for c in world.client.get("/api/v1/public/hongxing").get_json()["publicity"]]
    # No longer on the board: the form is gone, a late objection is refused in words.
    assert client.get(url).status_code == 404
    late = client.post(url, data={"reason": "again", "form_key": "objection-2"}, follow_redirects=True)
    assert '<li class="error">' in late.get_data(as_text=True)
    assert world.call("GET", f"/api/v1/claims/{first['id']}",
                      "committee").get_json()["events"][-1]["action"] == "object"


def test_residents_of_another_community_cannot_object(world, town):
    _first, second = _on_board(world, town)
    client = world.app.test_client()
    _login(client, town.resident3)  # 王五 of 绿野村
    r = client.post(f"/public/hongxing/claims/{second['id']}/object", data={"reason": "x", "form_key": "objection-3"})
    assert r.status_code == 302
    assert world.call("GET", f"/api/v1/claims/{second['id']}", "committee").get_json()["status"] == "publicized"
    # A claim of another community is not found under this board.
    assert client.get(f"/public/lvye/claims/{second['id']}/object").status_code == 404
