"""The paper path and the pay code in a real browser (Debian's Chromium through Playwright).

* a grid worker enters a claim from a household card (the page asks which member) and a help
  request from the desk for a resident without a phone;
* the phone's pay code: with the network off it counts down on the phone's own clock and shows an
  unmistakable expired state; after a sale it shows the new balance and a new code;
* the till takes the code's short number typed by hand, and refuses a spent code at the scan.

The phone's timers run on Playwright's clock (``page.clock``), so no test waits for real minutes.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, rule
from timebank.core import accounts

pytestmark = pytest.mark.browser


@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world, code="clean", title="清扫楼道", points=10)
    r = world.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 3, "barcode": "6901111000011"})
    t.soap = r.get_json()["id"]
    world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": t.soap, "quantity": 10, "reason": "donation", "donor": "红星粮油店"})
    world.grant(t.h1, 30)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        t.card1 = db.session.get(Household, t.h1).member_code
    return t


def scan(page, code):
    """A keyboard-wedge scanner (or the clerk's fingers): type into the focused field, then Enter."""
    page.keyboard.type(code, delay=5)
    page.keyboard.press("Enter")


def seconds_left(page) -> int:
    """The countdown's seconds (the page's clock runs on from the moment the code arrived)."""
    import re

    return int(re.search(r"(\d+) 秒有效", page.inner_text("#paycode-countdown")).group(1))


def rows(app, model, **where):
    from timebank.core.extensions import db

    with app.app_context():
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return db.session.execute(query).scalars().all()


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_grid_worker_serves_a_resident_from_the_household_card(town, world, app, live_server, page):  # noqa: F811
    from timebank.earning.models import Claim
    from timebank.hours.models import HelpRequest

    login(page, live_server, "grid")
    page.goto(live_server + "/committee/claims")
    page.click("#enter-claim summary")
    page.fill("#enter-card", town.card1)
    page.select_option("#enter-rule", "clean")
    page.click("#enter-claim button[type=submit]")
    # The household has three members: the page asks which one.
    page.locator("#choose-member").wait_for()
    assert "是哪一位成员" in page.inner_text("main")
    assert page.locator("#members label.choice").count() == 3
    page.click(f"#members label[data-resident='{town.r1b}']")
    page.click("#choose-member button[type=submit]")
    page.wait_for_load_state("load")
    assert "张小妹" in page.inner_text(".flash")
    claims = rows(app, Claim)
    assert [(c.resident_id, c.entered_for_resident) for c in claims] == [(town.r1b, True)]

    # The desk: scan the card, choose the member, ask for help for him.
    page.click("nav.main a[href='/committee/serve']")
    page.locator("#serve-card-field").focus()
    scan(page, town.card1)
    page.locator("#members").wait_for()
    page.click(f"#members li[data-resident='{town.r1}'] a")
    assert page.inner_text("#serving-name") == "张三"
    assert page.inner_text("#serving-points") == "30"
    page.fill("#sh-title", "帮忙换灯泡")
    page.click("#serve-ask button[type=submit]")
    page.wait_for_load_state("load")
    assert "张三" in page.inner_text(".flash") and "帮忙换灯泡" in page.inner_text("#serve-theirs")
    asked = rows(app, HelpRequest)
    assert [(h.requester_id, h.title, h.minutes) for h in asked] == [(town.r1, "帮忙换灯泡", 60)]
    # Per-person cards for the household, from the desk.
    page.click("#print-person-cards")
    page.wait_for_load_state("load")
    assert page.locator("article.member-card").count() == 3
    assert "个人积分卡" in page.inner_text("article.member-card >> nth=0")


def test_the_pay_code_shows_expired_when_the_phone_is_offline(town, world, app, clock, live_server,  # noqa: F811
                                                               page, console_allow):
    console_allow.append("ERR_INTERNET_DISCONNECTED")  # the phone's requests while the network is off
    login(page, live_server, town.resident1)
    page.clock.install()
    page.goto(live_server + "/me/pay-code")
    page.wait_for_function("() => document.getElementById('paycode').dataset.state === 'valid'")
    number = page.get_attribute("#paycode-number", "data-code")
    assert len(number) == 8 and page.inner_text("#paycode-number") == number[:4] + " " + number[4:]
    assert 115 <= seconds_left(page) <= 120
    assert page.locator("#paycode-expired").is_hidden()

    page.context.set_offline(True)
    page.clock.run_for(60_000)
    assert 55 <= seconds_left(page) <= 61   # still counting down, with no network
    page.clock.run_for(61_000)     # past the end: the new code could not be fetched
    page.wait_for_function("() => document.getElementById('paycode').dataset.state === 'expired'")
    assert page.locator("#paycode-expired").is_visible() and page.inner_text("#paycode-expired") == "已过期"
    assert "已过期" in page.inner_text("#paycode-countdown")
    assert float(page.eval_on_selector("#paycode-qr", "el => getComputedStyle(el).opacity")) < 0.5
    # What the phone shows as expired is refused by the till too, once the same time has passed there.
    clock.advance(seconds=121)
    r = world.call("POST", "/api/v1/redemptions", "clerk", json={
        "pay_code": number, "lines": [{"item_id": town.soap, "quantity": 1}]})
    assert r.status_code == 410 and r.get_json()["error"] == "pay_code_expired"

    # Back online: a fresh code replaces the expired one.
    page.context.set_offline(False)
    page.clock.run_for(6_000)
    page.wait_for_function("() => document.getElementById('paycode').dataset.state === 'valid'")
    assert page.locator("#paycode-expired").is_hidden()


def test_the_phone_shows_the_new_balance_after_a_sale(town, world, app, live_server, page):  # noqa: F811
    login(page, live_server, town.resident1)
    page.clock.install()
    page.goto(live_server + "/me/pay-code")
    page.wait_for_function("() => document.getElementById('paycode').dataset.state === 'valid'")
    assert page.inner_text("#paycode-points") == "30"
    number = page.get_attribute("#paycode-number", "data-code")
    # The clerk types the number at the till.
    r = world.call("POST", "/api/v1/redemptions", "clerk", json={
        "pay_code": number, "lines": [{"item_id": town.soap, "quantity": 2}]})
    assert r.status_code == 201, r.get_json()
    page.clock.run_for(4_000)
    page.locator("#paycode-paid").wait_for()
    assert "24" in page.inner_text("#paycode-paid") and "付款成功" in page.inner_text("#paycode-paid")
    assert page.inner_text("#paycode-points") == "24"
    page.wait_for_function(f"() => document.getElementById('paycode-number').dataset.code !== {number!r}")
    assert world.balance(accounts.household_points(town.h1)) == 24


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_the_till_takes_the_number_and_refuses_a_spent_code_at_the_scan(town, world, app, live_server,  # noqa: F811
                                                                         page):
    r = world.client.post("/api/v1/me/pay-code", headers=world.headers(town.resident1))
    number = r.get_json()["short_code"]
    login(page, live_server, "clerk")
    page.goto(live_server + "/clerk/pos")
    scan(page, number[:4] + " " + number[4:])
    page.locator("#member-household").wait_for()
    assert page.inner_text("#member-household") == "张家" and "手机付款码" in page.inner_text("#member-box")
    scan(page, "6901111000011")
    page.wait_for_function("() => document.querySelector('#pos-total') && "
                           "document.querySelector('#pos-total').textContent.trim() === '3'")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.locator("#pos-done").wait_for()
    assert world.balance(accounts.household_points(town.h1)) == 27

    # The same number again: refused when it is scanned, before any goods.
    assert page.evaluate("document.activeElement.id") == "member"
    scan(page, number)
    page.locator("#pos-error").wait_for()
    assert "已经用过" in page.inner_text("#pos-error")
    assert page.locator("#member-household").count() == 0
    assert page.evaluate("document.activeElement.id") == "member"
