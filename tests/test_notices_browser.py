"""The resident's notices in Chromium: unread ones marked, large type, marked read with a tap."""

from __future__ import annotations

import pytest

from browser_support import PHONE, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, claim, rule

pytestmark = pytest.mark.browser


def test_a_resident_reads_and_marks_notices(world, live_server, page):  # noqa: F811
    t = build_town(world)
    rule(world)
    approved = claim(world, t.r1, t.resident1)["id"]
    rejected = claim(world, t.r1, t.resident1, note="again")["id"]
    world.call("POST", f"/api/v1/claims/{approved}/approve", "committee")
    world.call("POST", f"/api/v1/claims/{rejected}/reject", "committee", json={"reason": "重复申报"})
    page.set_viewport_size(PHONE)
    login(page, live_server, t.resident1)
    page.goto(live_server + "/me/")
    assert "新通知：2" in page.inner_text("#notices-tile")
    page.click("#notices-tile")
    assert page.url.endswith("/me/notices")
    assert page.locator("#notices li.unread").count() == 2
    assert "重复申报" in page.inner_text("#notices")
    # Large type for elderly readers.
    size = page.eval_on_selector("#notices li.unread .notice-text", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 24
    page.locator("#notices li.unread .read-form button").first.click()
    page.wait_for_url(live_server + "/me/notices")
    assert page.locator("#notices li.unread").count() == 1
    assert "已标为已读" in page.inner_text("main")
    page.click("#read-all-form button")
    page.wait_for_url(live_server + "/me/notices")
    assert page.locator("#notices li.unread").count() == 0 and page.locator("#notices li.read").count() == 2
    assert world.call("GET", "/api/v1/me/notifications", t.resident1).get_json()["unread_count"] == 0
