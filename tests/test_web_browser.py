"""Resident pages in a real browser (Debian's Chromium through Playwright).

Any console error or uncaught page error fails a test (see ``browser_support.page``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, rule
from timebank.core import accounts

pytestmark = pytest.mark.browser


@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world, code="clean", title="周六清扫槐树街", review="auto", publicity_days=0, points=10)
    return t


def make_task(world, clock, title="周六清扫槐树街"):
    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": title,
        "starts_at": (clock.now() - timedelta(minutes=30)).isoformat(),
        "ends_at": (clock.now() + timedelta(hours=2)).isoformat(), "slots": 5})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_resident_checks_in_through_the_task_qr_url(town, world, clock, live_server, page):  # noqa: F811
    task = make_task(world, clock)
    code = world.call("GET", f"/api/v1/tasks/{task['id']}/checkin-code", "grid").get_json()
    assert code["url"].startswith(live_server + "/checkin?token=")

    # The phone's camera opens the QR code's URL; the resident is not logged in yet.
    page.goto(code["url"])
    assert "/login" in page.url
    page.fill("#username", "138 0000 0001")  # typed with spaces, as on the card
    page.fill("#password", "secret-pass")
    page.click("form button[type=submit]")

    # Back on the check-in page, which checks in by itself and says so plainly.
    result = page.locator("#checkin-result")
    result.wait_for()
    assert result.inner_text().strip() == "签到成功！"
    assert "ok" in result.get_attribute("class")
    assert "周六清扫槐树街" in page.inner_text("main")
    assert world.balance(accounts.household_points(town.h1)) == 10

    # Opening the same code again does not check in twice, and says that too.
    page.goto(code["url"])
    page.locator("#checkin-result").wait_for()
    assert page.inner_text("#checkin-result").strip() == "您已经签到过了。"
    assert world.balance(accounts.household_points(town.h1)) == 10

    # Home shows the household's points from the ledger.
    page.goto(live_server + "/me/")
    assert "10" in page.inner_text("#household-points")


def test_expired_code_is_refused_plainly(town, world, clock, live_server, page, console_allow):  # noqa: F811
    # The refusal page answers 410 Gone, which Chromium reports on the console; nothing else may.
    console_allow.append("status of 410")
    task = make_task(world, clock)
    code = world.call("GET", f"/api/v1/tasks/{task['id']}/checkin-code", "grid").get_json()
    login(page, live_server, town.resident1)
    clock.advance(minutes=10)
    page.goto(code["url"])
    result = page.locator("#checkin-result")
    result.wait_for()
    assert "签到码已过期" in result.inner_text() and "bad" in result.get_attribute("class")
    assert world.balance(accounts.household_points(town.h1)) == 0


def test_pay_code_refreshes_itself_before_it_expires(town, world, app, live_server, page):  # noqa: F811
    app.config["TIMEBANK_PAY_CODE_TTL_SECONDS"] = 24  # the page asks for a new code 4 s before expiry
    login(page, live_server, town.resident1)
    page.clock.install()  # the page's timers run on Playwright's clock: no real waiting
    page.goto(live_server + "/me/pay-code")
    page.wait_for_function("() => document.getElementById('paycode').dataset.refreshed === '1'")
    qr = page.locator("#paycode-qr")
    first = qr.get_attribute("data-code")
    assert first and qr.locator("svg").count() == 1
    assert "24 秒有效" in page.inner_text("#paycode-countdown")
    page.clock.run_for(21_000)
    page.wait_for_function("() => document.getElementById('paycode').dataset.refreshed === '2'")
    second = qr.get_attribute("data-code")
    assert second and second != first
    # The new code is one the supermarket accepts.
    world.grant(town.h1, 20)
    world.call("POST", "/api/v1/items", "clerk", json={"community_code": "hongxing", "sku": "soap", "name": "肥皂",
                                                       "price_points": 3})
    items = world.call("GET", "/api/v1/items?community_code=hongxing", "clerk").get_json()["items"]
    world.call("POST", "/api/v1/stock-movements", "clerk", json={"item_id": items[0]["id"], "quantity": 5,
                                                                 "reason": "donation", "donor": "爱心企业"})
    r = world.call("POST", "/api/v1/redemptions", "clerk",
                   json={"pay_code": second, "lines": [{"item_id": items[0]["id"], "quantity": 1}]})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["household_id"] == town.h1


@pytest.mark.parametrize("page", [None, DESKTOP], indirect=True, ids=["phone", "desktop"])
def test_resident_pages_are_large_and_easy_to_tap(town, world, live_server, page):  # noqa: F811
    world.grant(town.h1, 35)
    login(page, live_server, town.resident1)
    assert page.url.endswith("/me/")
    for path in ("/me/", "/me/claims", "/me/help", "/me/gift", "/me/shop", "/me/history", "/me/card",
                 "/me/pay-code"):
        page.goto(live_server + path)
        smallest_text = page.evaluate("""() => {
            let least = 1000;
            for (const el of document.querySelectorAll('main p, main li, main td, main small, main .badge, """
                                      """main label, main a, main button, main input, main select')) {
                if (el.offsetParent === null) continue;
                least = Math.min(least, parseFloat(getComputedStyle(el).fontSize));
            }
            return least; }""")
        assert smallest_text >= 18, (path, smallest_text)
        smallest_target = page.evaluate("""() => {
            let least = 1000;
            for (const el of document.querySelectorAll('main button, main .btn, main .tile, """
                                      """main input, main select, nav a')) {
                if (el.offsetParent === null) continue;
                least = Math.min(least, el.getBoundingClientRect().height);
            }
            return least; }""")
        assert smallest_target >= 44, (path, smallest_target)
    page.goto(live_server + "/me/")
    assert "35" in page.inner_text("#household-points")
    # The language switch keeps the page and changes the words.
    page.click("a[lang=en]")
    assert page.url.endswith("/me/") and "Household points" in page.inner_text("main")
    page.click("a[lang=zh-CN]")
    assert "家庭积分" in page.inner_text("main")
