"""Search and filters on receipts and claims (issue: "no search of receipts and claims").

A clerk finds a receipt by its number, by the household's name or card and by day, past the first page;
a committee member or grid worker finds any claim of the community by a resident's name, a card, a
phone number or the item of the points list, and by status; another community's rows never show.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import main_text, page_login
from earning_support import advance, build_town, claim, rule


def _rows(response, marker: str) -> list[str]:
    import re

    return re.findall(marker + r'="(\d+)"', response.get_data(as_text=True))


def _sell(world, card, item_id, key):
    r = world.call("POST", "/api/v1/redemptions", "clerk",
                   json={"member_code": card, "lines": [{"item_id": item_id, "quantity": 1}]},
                   headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_receipts_are_found_by_number_household_card_status_and_day(app, world, clock):
    t = build_town(world)
    r = world.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 1})
    item = r.get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 100, "reason": "purchase"}).status_code == 201
    world.grant(t.h1, 100)
    world.grant(t.h2, 100)
    with app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        card1, card2 = (db.session.get(Household, h).member_code for h in (t.h1, t.h2))
    zhang = [_sell(world, card1, item, f"z{i}") for i in range(35)]
    advance(world, clock, days=2)
    li = _sell(world, card2, item, "li-1")
    assert world.call("POST", f"/api/v1/redemptions/{zhang[0]['id']}/void", "clerk",
                      json={"reason": "扫错了"}).status_code == 200

    clerk = page_login(app, "clerk")
    by_number = clerk.get(f"/clerk/receipts?q=No.{li['receipt_no']}")
    assert _rows(by_number, "data-receipt") == [str(li["id"])]
    by_name = clerk.get("/clerk/receipts?q=李")
    assert _rows(by_name, "data-receipt") == [str(li["id"])]
    by_card = clerk.get(f"/clerk/receipts?q={card1.lower()}")
    first_page = _rows(by_card, "data-receipt")
    assert len(first_page) == 30 and str(li["id"]) not in first_page
    assert f"q={card1.lower()}" in by_card.get_data(as_text=True)  # the "older" link keeps the filter
    older = clerk.get(f"/clerk/receipts?q={card1.lower()}&before={first_page[-1]}")
    assert len(_rows(older, "data-receipt")) == 5
    voided = clerk.get("/clerk/receipts?status=voided")
    assert _rows(voided, "data-receipt") == [str(zhang[0]["id"])]
    today = clock.now().date().isoformat()
    by_day = clerk.get(f"/clerk/receipts?since={today}&until={today}")
    assert _rows(by_day, "data-receipt") == [str(li["id"])]
    nothing = clerk.get("/clerk/receipts?q=没有这户")
    assert _rows(nothing, "data-receipt") == [] and "没有符合条件的小票" in main_text(nothing)
    assert clerk.get("/clerk/receipts?since=not-a-day").status_code == 200


def test_claims_are_found_by_name_card_phone_item_and_status(app, world, clock):
    t = build_town(world)
    rule(world, "clean", title="清扫楼道", points=10, publicity_days=3)
    rule(world, "quick", title="门前三包", points=4, review="auto", publicity_days=0)
    rule(world, "far", community_code="lvye", user="other_committee", title="清扫村道", points=5)
    pending = claim(world, t.r2, t.resident2)
    posted = claim(world, t.r1b, t.resident1b, rule_code="quick")
    claim(world, t.r3, t.resident3, rule_code="far", community_code="lvye")
    advance(world, clock, days=1)
    later = claim(world, t.r1, t.resident1)

    for who in ("committee", "grid", "super"):
        page = page_login(app, who)
        assert set(_rows(page.get("/committee/claims/search"), "data-claim")) == {
            str(c["id"]) for c in (pending, posted, later)}, who  # lvye's claim never shows
    committee = page_login(app, "committee")
    assert _rows(committee.get("/committee/claims/search?q=李四"), "data-claim") == [str(pending["id"])]
    assert _rows(committee.get("/committee/claims/search?q=13800000011"), "data-claim") == [str(posted["id"])]
    assert _rows(committee.get("/committee/claims/search?q=门前"), "data-claim") == [str(posted["id"])]
    assert _rows(committee.get("/committee/claims/search?q=张家"), "data-claim") == [
        str(later["id"]), str(posted["id"])]
    assert _rows(committee.get("/committee/claims/search?status=posted"), "data-claim") == [str(posted["id"])]
    today = clock.now().date().isoformat()
    assert _rows(committee.get(f"/committee/claims/search?since={today}"), "data-claim") == [str(later["id"])]
    yesterday = (clock.now() - timedelta(days=1)).date().isoformat()
    assert str(later["id"]) not in _rows(committee.get(f"/committee/claims/search?until={yesterday}"), "data-claim")
    page = committee.get("/committee/claims/search?q=%25")  # a LIKE wildcard is a character, not "everything"
    assert _rows(page, "data-claim") == [] and "没有符合条件的申报" in main_text(page)
    assert page_login(app, "clerk").get("/committee/claims/search").status_code == 403
