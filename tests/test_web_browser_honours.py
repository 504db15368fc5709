"""Honours and deductions in Chromium (issue 19: "each works end to end ... in Chromium").

A grid worker enters a deduction on the deductions page; a committee member approves it, and it is on
the public board under notice with the household's name masked; the committee publishes the black list.
A grid worker nominates a household for an honour and a committee member approves it onto the board.
The household keeps its spendable points apart from its ranking score.
"""

from __future__ import annotations

import pytest

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_a_deduction_and_an_honour_through_the_pages(world, clock, live_server, page):  # noqa: F811
    t = build_town(world)
    world.grant(t.h2, 8)
    r = world.call("POST", "/api/v1/deduction-items", "committee", json={
        "community_code": "hongxing", "code": "litter", "title": "乱倒垃圾", "points": -20, "publicity_days": 3})
    assert r.status_code == 201, r.get_json()
    r = world.call("POST", "/api/v1/honours", "committee", json={
        "community_code": "hongxing", "code": "civilized", "title": "文明家庭", "points": 10, "publicity_days": 5})
    assert r.status_code == 201, r.get_json()

    login(page, live_server, "grid")
    page.goto(f"{live_server}/committee/deductions")
    page.select_option("#e-item", "litter")
    page.select_option("#e-household", str(t.h2))
    page.fill("#e-note", "楼道堆放杂物")
    page.click("#enter-deduction button[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator("#deduction-queue li[data-deduction]").count() == 1
    page.goto(f"{live_server}/committee/honours")
    page.select_option("#n-honour", "civilized")
    page.select_option("#n-household", str(t.h1))
    page.click("#nominate button[type=submit]")
    page.wait_for_load_state("load")
    page.context.clear_cookies()

    login(page, live_server, "committee")
    page.goto(f"{live_server}/committee/deductions")
    page.click("#deduction-queue li[data-deduction] button.approve")
    page.wait_for_load_state("load")
    assert page.locator("#deduction-publicity li[data-deduction]").count() == 1
    page.select_option("#publish-black", "1")
    page.click("#black-list-setting button[type=submit]")
    page.wait_for_load_state("load")
    page.goto(f"{live_server}/committee/honours")
    page.locator("button.approve").first.click()
    page.wait_for_load_state("load")

    page.goto(f"{live_server}/public/hongxing")
    notices = page.locator("#notices").inner_text()
    assert "乱倒垃圾" in notices and "文明家庭" in notices
    assert "李家" not in notices and "李*" in notices  # masked on the public board
    assert page.locator("#black-list").count() == 1  # published, though empty until a deduction applies

    # Nothing is taken before the notice ends; the wallet keeps its 8 points until then.
    r = world.call("GET", f"/api/v1/households/{t.h2}/ranking", "committee")
    assert r.status_code == 200 and r.get_json()["balance_points"] == 8, r.get_json()
