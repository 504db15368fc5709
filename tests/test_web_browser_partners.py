"""Services and partner shops in a real browser (Debian's Chromium through Playwright): the committee
adds a partner shop and a haircut with places a day, the partner's clerk sells it at its till, the
resident sees the places left, and the settlement shows the sale. Any console error fails a test."""

from __future__ import annotations

import pytest

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_a_partner_shop_sells_a_haircut_and_settles(world, app, live_server, page):  # noqa: F811
    t = build_town(world)
    world.grant(t.h1, 100)
    world.user("barber", "clerk")
    with app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        card = db.session.get(Household, t.h1).member_code
    login(page, live_server, "committee")
    page.goto(live_server + "/committee/partners")
    page.fill("#partner-name", "幸福理发店")
    page.fill("#partner-address", "幸福路18号")
    page.click("#partner-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "幸福理发店" in page.inner_text("#partners")
    page.select_option("#partners select[name=username]", "barber")
    page.click("#partners form button[type=submit]")
    page.wait_for_load_state("load")
    assert "barber" in page.inner_text("#partners")

    page.goto(live_server + "/clerk/services")
    page.fill("#service-name", "理发")
    page.fill("#service-sku", "cut")
    page.fill("#service-price", "8")
    page.fill("#service-places", "1")
    page.select_option("#service-partner", label="幸福理发店")
    page.click("#service-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "理发" in page.inner_text("#services")

    # The partner's clerk sells it at its own till: the card, then the service's code, then confirm.
    page.context.clear_cookies()
    login(page, live_server, "barber")
    page.goto(live_server + "/clerk/pos")
    assert "幸福理发店" in page.inner_text("h1")
    page.keyboard.type(card, delay=5)
    page.keyboard.press("Enter")
    page.locator("#member-household").wait_for()
    page.keyboard.type("cut", delay=5)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#pos-total') && "
                           "document.querySelector('#pos-total').textContent.trim() === '8'")
    assert "理发" in page.inner_text("#pos-lines")
    page.keyboard.press("Enter")  # the empty goods field moves to the confirm button
    page.keyboard.press("Enter")
    page.locator("#pos-done").wait_for()
    assert "92" in page.inner_text("#pos-done")

    page.context.clear_cookies()
    login(page, live_server, "13800000001")
    page.goto(live_server + "/me/shop")
    assert "今天的名额已满" in page.inner_text("#services")

    page.context.clear_cookies()
    login(page, live_server, "committee")
    page.goto(live_server + "/committee/partners/settlement?month=2026-03")
    row = page.inner_text("#settlement tbody tr")
    assert "幸福理发店" in row and "8" in row
