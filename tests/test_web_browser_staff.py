"""The clerk's till and the committee's pages in a real browser (Debian's Chromium through Playwright).

The scanner is a keyboard: it types the code into the focused field and presses Enter, so the tests
type with ``page.keyboard`` and never click into a field. Any console error fails a test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, claim, rule
from timebank.core import accounts

pytestmark = pytest.mark.browser


@pytest.fixture
def shop_town(world):
    t = build_town(world)
    t.items = {}
    for sku, name, price, barcode in (("soap", "香皂", 3, "6901111000011"), ("oil", "食用油", 45, "6901111000028"),
                                      ("tissue", "纸巾", 8, "6901111000035")):
        r = world.call("POST", "/api/v1/items", "clerk", json={
            "community_code": "hongxing", "sku": sku, "name": name, "price_points": price, "barcode": barcode})
        assert r.status_code == 201, r.get_json()
        t.items[sku] = r.get_json()["id"]
        r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
            "item_id": t.items[sku], "quantity": 10, "reason": "donation", "donor": "红星粮油店"})
        assert r.status_code == 201, r.get_json()
    world.grant(t.h1, 100)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        t.card1 = db.session.get(Household, t.h1).member_code
    return t


def on_hand(app, item_id):
    from timebank.core.extensions import db
    from timebank.shop.models import Item

    with app.app_context():
        return db.session.get(Item, item_id).on_hand


def scan(page, code):
    """What a keyboard-wedge scanner does: type fast into whatever has the focus, then Enter."""
    page.keyboard.type(code, delay=5)
    page.keyboard.press("Enter")


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_clerk_redeems_two_items_by_scanning(shop_town, world, app, live_server, page):  # noqa: F811
    t = shop_town
    login(page, live_server, "clerk")
    page.goto(live_server + "/clerk/pos")
    assert page.evaluate("document.activeElement.id") == "member"

    scan(page, t.card1)
    page.locator("#member-household").wait_for()
    assert page.inner_text("#member-household") == "张家"
    assert page.inner_text("#member-balance").strip() == "100"
    assert page.evaluate("document.activeElement.id") == "scan"

    # Two barcodes, the second scanned before the page has answered the first.
    scan(page, "6901111000011")
    scan(page, "6901111000035")
    # A function, not an expression: the page's Content-Security-Policy forbids eval of a string.
    page.wait_for_function("() => document.querySelector('#pos-total') && "
                           "document.querySelector('#pos-total').textContent.trim() === '11'")
    lines = page.inner_text("#pos-lines")
    assert "香皂" in lines and "纸巾" in lines
    assert page.evaluate("document.activeElement.id") == "scan"

    # Enter on the empty goods field goes to the confirm button; Enter there charges.
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "confirm"
    page.keyboard.press("Enter")
    done = page.locator("#pos-done")
    done.wait_for()
    assert "89" in done.inner_text() and "张家" in done.inner_text()
    assert world.balance(accounts.household_points(t.h1)) == 89
    assert on_hand(app, t.items["soap"]) == 9 and on_hand(app, t.items["tissue"]) == 9
    assert page.evaluate("document.activeElement.id") == "member"  # ready for the next resident

    # The receipt opens for printing (80 mm by default).
    href = page.get_attribute("#print-receipt", "href")
    page.goto(live_server + href)
    assert "香皂" in page.inner_text("body") and "89 积分" in page.inner_text("body")


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_a_double_click_charges_once_and_refusals_are_plain(shop_town, world, app, live_server, page):  # noqa: F811
    t = shop_town
    # The till charges in the background; a refusal comes back as the till with the words in it.
    login(page, live_server, "clerk")
    page.goto(live_server + f"/clerk/pos?member={t.card1}&item={t.items['oil']}")
    page.dblclick("#confirm")
    page.locator("#pos-done").wait_for()
    assert world.balance(accounts.household_points(t.h1)) == 55
    assert on_hand(app, t.items["oil"]) == 9

    # 55 points left: two bottles of oil (90) are refused in words, nothing moves.
    page.goto(live_server + f"/clerk/pos?member={t.card1}&item={t.items['oil']}&item={t.items['oil']}")
    page.click("#confirm")
    error = page.locator("#pos-error")
    error.wait_for()
    assert "积分不够" in error.inner_text()
    assert world.balance(accounts.household_points(t.h1)) == 55

    # An unknown card is said plainly, without a failed request on the console.
    page.goto(live_server + "/clerk/pos")
    scan(page, "HNOSUCHCARD")
    page.locator("#pos-error").wait_for()
    assert "没有找到这张卡" in page.inner_text("#pos-error")


def test_committee_approves_a_claim_and_it_appears_on_the_public_board(shop_town, world,  # noqa: F811
                                                                       live_server, page):  # noqa: F811
    t = shop_town
    rule(world, code="visit", title="探访空巢老人", category="neighbour_help", points=6, publicity_days=3)
    c = claim(world, t.r2, t.resident2, rule_code="visit")
    login(page, live_server, "committee")
    page.goto(live_server + "/committee/claims")
    item = page.locator(f"#claim-queue li[data-claim='{c['id']}']")
    assert "李四" in item.inner_text() and "探访空巢老人" in item.inner_text()
    item.locator("button.approve").click()
    page.wait_for_load_state("load")
    assert "已通过" in page.inner_text(".flash")
    assert page.locator(f"#claim-queue li[data-claim='{c['id']}']").count() == 0
    assert page.locator(f"#publicity li[data-claim='{c['id']}']").count() == 1

    page.context.clear_cookies()  # the board needs no login
    page.goto(live_server + "/public/hongxing")
    board = page.inner_text("#publicity")
    assert "探访空巢老人" in board and "李*" in board and "李四" not in board


def test_full_screen_check_in_code_refreshes_before_it_rotates(shop_town, world, clock, live_server,  # noqa: F811
                                                               page):
    rule(world, review="auto", publicity_days=0)
    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "周六清扫槐树街",
        "starts_at": (clock.now() - timedelta(minutes=30)).isoformat(),
        "ends_at": (clock.now() + timedelta(hours=2)).isoformat(), "slots": 5})
    task = r.get_json()
    # One second before the code rotates, so the page asks for the next code almost at once.
    period = 60
    clock.advance(seconds=period - 1 - int(clock.now().timestamp()) % period)
    login(page, live_server, "grid")
    page.goto(live_server + f"/committee/tasks/{task['id']}/qr")
    first = page.get_attribute("#venue-qr", "data-code-url")
    assert "/checkin?token=" in first
    box = page.locator("#venue-qr svg").bounding_box()
    assert box["width"] >= 300  # large enough to scan from a few metres on a phone-sized screen
    clock.advance(seconds=2)
    page.wait_for_function(f"() => document.querySelector('#venue-qr').dataset.codeUrl !== {first!r}", timeout=10_000)
    assert page.locator("#venue-qr svg").count() == 1
    assert "0 / 5" in page.inner_text("#venue-count")


# --- the till's retry: the same key after a 503 or a lost answer ------------------------------------

def _form_keys(requests) -> list[str]:
    from urllib.parse import parse_qs

    return [parse_qs(r.post_data or "").get("form_key", [""])[0] for r in requests]


def _watch_charges(page) -> list:
    charges: list = []
    page.on("request", lambda r: charges.append(r) if r.method == "POST" and r.url.endswith("/clerk/pos")
            else None)
    return charges


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
@pytest.mark.parametrize("fault", ["commit_failed_after_the_write", "answer_lost_on_the_network"])
def test_the_till_retries_a_failed_charge_with_the_same_key_and_charges_once(shop_town, world, app, live_server,
                                                                             page, console_allow, monkeypatch,
                                                                             fault):  # noqa: F811
    """The sale is written, but the till never hears so: the commit fails afterwards (503) or the
    answer is lost on the way. The till says so in Chinese and offers a retry; the retry sends the same
    form_key, and the server shows the first sale's receipt instead of charging again."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from timebank.core import boundary

    t = shop_town
    login(page, live_server, "clerk")
    page.goto(live_server + f"/clerk/pos?member={t.card1}&item={t.items['oil']}")
    charges = _watch_charges(page)
    if fault == "commit_failed_after_the_write":
        console_allow.append("status of 503")
        real = boundary.finish_request
        failures = []

        def commit_then_fail():
            real()
            if request_is_a_charge() and not failures:
                failures.append(1)
                raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

        def request_is_a_charge():
            from flask import request

            return request.method == "POST" and request.path == "/clerk/pos"

        monkeypatch.setattr(boundary, "finish_request", commit_then_fail)
    else:
        lost = []

        def lose_the_first_answer(route):
            if lost or route.request.method != "POST":
                route.continue_()
                return
            lost.append(route.fetch())        # the server does the sale ...
            route.abort("connectionreset")    # ... and the till never hears of it

        console_allow.append("ERR_CONNECTION_RESET")
        page.route("**/clerk/pos", lose_the_first_answer)

    page.click("#confirm")
    busy = page.locator("#pos-busy")
    busy.wait_for()
    assert "系统忙或网络不通，请稍候重试" in busy.inner_text() and "重试不会重复扣分" in busy.inner_text()
    assert world.balance(accounts.household_points(t.h1)) == 55   # the sale was written once
    assert page.evaluate("document.activeElement.id") == "pos-retry"

    page.click("#pos-retry")
    page.locator("#pos-done").wait_for()
    assert "这个表单已经提交过了，没有重复办理。" in page.inner_text("#pos-again")
    assert "55" in page.inner_text("#pos-done")
    assert world.balance(accounts.household_points(t.h1)) == 55
    assert on_hand(app, t.items["oil"]) == 9
    keys = _form_keys(charges)
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_the_till_retries_with_the_same_key_when_nothing_was_written(shop_town, world, app, live_server, page,  # noqa: F811
                                                                     console_allow, monkeypatch):
    """The commit failed before anything was written: the retry, with the same key, makes the sale."""
    import sqlite3

    from flask import request
    from sqlalchemy.exc import OperationalError

    from timebank.core import boundary

    t = shop_town
    console_allow.append("status of 503")
    login(page, live_server, "clerk")
    page.goto(live_server + f"/clerk/pos?member={t.card1}&item={t.items['oil']}")
    charges = _watch_charges(page)
    real = boundary.finish_request
    failures = []

    def fail_first_charge():
        if request.method == "POST" and request.path == "/clerk/pos" and not failures:
            failures.append(1)
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
        real()

    monkeypatch.setattr(boundary, "finish_request", fail_first_charge)
    page.click("#confirm")
    page.locator("#pos-busy").wait_for()
    assert world.balance(accounts.household_points(t.h1)) == 100
    page.keyboard.press("Enter")          # the retry button has the focus
    page.locator("#pos-done").wait_for()
    assert page.locator("#pos-again").count() == 0
    assert world.balance(accounts.household_points(t.h1)) == 55
    keys = _form_keys(charges)
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys
