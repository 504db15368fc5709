"""More of the pages issue's flows in Chromium: errors in the site's frame, searching receipts and claims,
and a price change on the goods page (issue 16: "Every flow above gets a Playwright test").
"""

from __future__ import annotations

import pytest

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, claim, rule

pytestmark = pytest.mark.browser


def test_errors_are_pages_in_the_frame_with_a_way_back(world, live_server, page, console_allow):  # noqa: F811
    build_town(world)
    console_allow.extend(["status of 404", "status of 403"])
    page.goto(f"{live_server}/no-such-page")
    assert page.locator("header, .topbar").count() >= 1  # the site's frame
    assert "找不到" in page.inner_text("main") or "没有" in page.inner_text("main")
    assert page.get_by_role("link", name="首页").count() >= 1
    login(page, live_server, "13800000001")
    page.goto(f"{live_server}/committee/ledger")
    assert page.locator("main").count() == 1 and "{" not in page.inner_text("main")  # never raw JSON


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_a_clerk_finds_a_receipt_and_changes_a_price(world, clock, live_server, page):  # noqa: F811
    t = build_town(world)
    r = world.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 3})
    item = r.get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 10, "reason": "purchase"}).status_code == 201
    world.grant(t.h1, 50)
    world.grant(t.h2, 50)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        cards = {h: db.session.get(Household, h).member_code for h in (t.h1, t.h2)}
    sold = {}
    for h in (t.h1, t.h2):
        r = world.call("POST", "/api/v1/redemptions", "clerk", json={
            "member_code": cards[h], "lines": [{"item_id": item, "quantity": 1}]})
        assert r.status_code == 201, r.get_json()
        sold[h] = r.get_json()

    login(page, live_server, "clerk")
    page.goto(f"{live_server}/clerk/receipts")
    assert page.locator("#receipts li[data-receipt]").count() == 2
    page.fill("#receipt-q", "李")
    page.locator("form[role=search] button[type=submit]").click()
    page.wait_for_load_state("load")
    assert page.locator("#receipts li[data-receipt]").count() == 1
    assert page.locator(f"#receipts li[data-receipt='{sold[t.h2]['id']}']").count() == 1

    page.goto(f"{live_server}/clerk/goods/{item}")
    page.fill("#new-price", "5")
    page.fill("#price-note", "进价上涨")
    page.click("#price-form button[type=submit]")
    page.wait_for_load_state("load")
    assert page.inner_text("#item-price").strip() == "5"
    assert "进价上涨" in page.inner_text("#price-history")


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_a_committee_member_searches_every_claim(world, live_server, page):  # noqa: F811
    t = build_town(world)
    rule(world, "clean", title="清扫楼道", points=10, publicity_days=3)
    rule(world, "quick", title="门前三包", points=4, review="auto", publicity_days=0)
    claim(world, t.r2, t.resident2)
    mine = claim(world, t.r1b, t.resident1b, rule_code="quick")
    login(page, live_server, "committee")
    page.goto(f"{live_server}/committee/claims")
    page.click("text=搜索全部申报")
    page.wait_for_load_state("load")
    assert page.locator("#claim-results tr[data-claim]").count() == 2
    page.fill("#search-q", "门前")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_load_state("load")
    rows = page.locator("#claim-results tr[data-claim]")
    assert rows.count() == 1 and rows.first.get_attribute("data-claim") == str(mine["id"])
