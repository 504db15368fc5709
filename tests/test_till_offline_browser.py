"""The till through a network cut, in Debian's Chromium with the network switched off.

The clerk opens the till online once (the service worker keeps the offline till and the goods list),
then the network goes: the till says 离线 instead of the browser's "no internet" page, cards and
goods are scanned against the kept goods list, each charge is kept on the device with its own
Idempotency-Key; when the network is back the sales are sent, the ledger decides, and the clerk sees
each outcome (a receipt, or the refusal in words). Sending a sale again charges nothing twice.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from shop_support import shop_town as build_shop_town
from timebank.core import accounts

pytestmark = pytest.mark.browser


@pytest.fixture
def shop_town(world):
    return build_shop_town(world)


def receipts_of(app, household_id):
    from timebank.core.extensions import db
    from timebank.shop.models import Redemption

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Redemption)
                                  .where(Redemption.household_id == household_id)).scalar_one()


def scan(page, code):
    page.keyboard.type(code, delay=5)
    page.keyboard.press("Enter")


def network_off(page):
    """The network is switched off: ``set_offline`` (the page is told: ``navigator.onLine``, the
    "offline" event), and every request fails as with no internet, the service worker's own included
    (Chromium's offline emulation does not reach a service worker's fetches here)."""
    page.context.route("**/*", lambda route: route.abort("internetdisconnected"))
    page.context.set_offline(True)


def network_on(page):
    page.context.unroute("**/*")
    page.context.set_offline(False)


def till_ready(page, base_url):
    """The till opened online, its service worker in control and the goods list kept."""
    page.goto(base_url + "/clerk/pos")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.wait_for_function("""async () => {
        const names = await caches.keys();
        for (const name of names) {
            const cache = await caches.open(name);
            if (await cache.match('/clerk/pos/goods.json') && await cache.match('/clerk/pos/offline')) return true;
        }
        return false;
    }""")


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_the_till_sells_through_a_network_cut(shop_town, world, app, live_server, page, console_allow):  # noqa: F811
    console_allow.append("status of 409")   # the ledger's refusal of the second sale, as the browser logs it
    t = shop_town
    login(page, live_server, "clerk")
    till_ready(page, live_server)
    assert page.is_hidden("#offline-banner")

    network_off(page)
    # The online till hands over to the offline till: same address, a clear 离线 banner.
    page.locator("#pos[data-mode=local]").wait_for()
    assert page.is_visible("#offline-banner") and "离线" in page.inner_text("#offline-banner")
    # A reload while offline is the offline till again, never the browser's error page.
    page.reload()
    page.locator("#pos[data-mode=local]").wait_for()
    assert "离线" in page.inner_text("#offline-banner")
    assert page.evaluate("() => document.activeElement.id") == "member"

    # Sale 1: 张家 (100 points) takes a soap and a tissue.
    scan(page, t.card1)
    page.locator("#member-box").wait_for()
    assert t.card1 in page.inner_text("#member-household")
    scan(page, "6901111000011")
    scan(page, "6901111000035")
    page.wait_for_function("() => document.querySelector('#pos-total').textContent.trim() === '11'")
    assert "香皂" in page.inner_text("#pos-lines") and "纸巾" in page.inner_text("#pos-lines")
    page.keyboard.press("Enter")            # empty goods field: to the confirm button
    assert page.evaluate("() => document.activeElement.id") == "confirm"
    page.keyboard.press("Enter")            # charge: kept on the device
    page.locator("#till-queue li[data-status=queued]").wait_for()
    assert "待发送" in page.inner_text("#till-queue")
    assert page.evaluate("() => document.activeElement.id") == "member"

    # A phone pay code is refused offline (it would expire while queued).
    scan(page, "eyJhIjoxfQ.signature")
    assert "积分卡" in page.inner_text("#pos-error")

    # Sale 2: 李家 has no points: a name search, then the oil.
    scan(page, t.card2)
    scan(page, "食用")
    page.locator("#search-results button").first.wait_for()
    page.keyboard.press("Enter")            # the first result has the focus
    page.wait_for_function("() => document.querySelector('#pos-total').textContent.trim() === '45'")
    page.click("#confirm")
    page.wait_for_function("() => document.querySelectorAll('#till-queue li[data-status=queued]').length === 2")
    assert receipts_of(app, t.h1) == 0 and receipts_of(app, t.h2) == 0   # nothing sent while offline

    # The network is back: the queue is sent, the ledger decides, each outcome is shown.
    network_on(page)
    page.locator("#till-queue li[data-status=sent]").wait_for()
    page.locator("#till-queue li[data-status=refused]").wait_for()
    queue = page.inner_text("#till-queue")
    assert "已发送" in queue and "小票" in queue
    assert "积分不够" in page.inner_text("#till-queue li[data-status=refused]")
    assert page.is_hidden("#offline-banner") and page.is_visible("#online-banner")
    assert receipts_of(app, t.h1) == 1 and receipts_of(app, t.h2) == 0
    assert world.balance(accounts.household_points(t.h1)) == 89

    # The answer to a sale may be lost on the way: sending it again (same key) charges nothing twice.
    page.evaluate("""() => {
        const key = Object.keys(localStorage).find(k => k.startsWith('timebank.till.queue.'));
        const queue = JSON.parse(localStorage.getItem(key));
        queue.forEach(s => { if (s.status === 'sent') { s.status = 'queued'; } });
        localStorage.setItem(key, JSON.stringify(queue));
    }""")
    page.click("#till-queue-send")
    page.wait_for_function("() => document.querySelectorAll('#till-queue li[data-status=queued]').length === 0")
    assert receipts_of(app, t.h1) == 1
    assert world.balance(accounts.household_points(t.h1)) == 89

    # Back to the online till: the outcomes are still listed there.
    page.click("#back-online")
    page.locator("#pos[data-mode=online]").wait_for()
    assert "已发送" in page.inner_text("#till-queue")


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_back_after_a_sale_never_shows_the_charged_basket(shop_town, world, app, live_server, page):  # noqa: F811
    t = shop_town
    login(page, live_server, "clerk")
    page.goto(live_server + "/clerk/pos")
    scan(page, t.card1)
    page.locator("#member-household").wait_for()
    scan(page, "6901111000011")
    page.wait_for_function("() => document.querySelector('#pos-total') && "
                           "document.querySelector('#pos-total').textContent.trim() === '3'")
    basket = page.url
    assert "sale=" in basket
    page.goto(basket)                       # the basket as its own page in the history
    page.locator("#confirm-form").evaluate("form => form.submit()")   # as without the script
    page.locator("#pos-done").wait_for()
    page.go_back()
    page.locator("#pos-stale").wait_for()
    assert page.locator("#pos-lines").count() == 0
    assert "已经结过账" in page.inner_text("#pos-stale")
    assert receipts_of(app, t.h1) == 1
