"""In Chromium: a resident forms a household team on their tasks page, then opens the task's code and the
whole household is checked in at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from browser_support import browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, rule
from timebank.core import accounts

pytestmark = pytest.mark.browser


def test_household_team_formed_on_the_page_and_checked_in_by_its_leader(world, clock, live_server, page):  # noqa: F811
    town = build_town(world)
    rule(world, code="clean", title="周六清扫槐树街", review="auto", publicity_days=0, points=10)
    world.resident(town.h2, "李奶奶")  # no phone: her grandson checks her in
    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "周六清扫槐树街",
        "starts_at": (clock.now() - timedelta(minutes=30)).isoformat(),
        "ends_at": (clock.now() + timedelta(hours=2)).isoformat(), "slots": 5})
    task = r.get_json()

    login(page, live_server, town.resident2)
    page.goto(live_server + "/me/tasks")
    page.get_by_role("button", name="以户为单位参加（李家）").click()
    page.wait_for_load_state("load")
    team = page.locator(".team.mine")
    assert "李家" in team.inner_text() and "李奶奶" in team.inner_text() and "李四" in team.inner_text()

    code = world.call("GET", f"/api/v1/tasks/{task['id']}/checkin-code", "grid").get_json()
    page.goto(code["url"])
    result = page.locator("#checkin-result")
    result.wait_for()
    assert "ok" in result.get_attribute("class")
    assert "本次 2 人" in result.inner_text()
    assert page.locator("#checkin-team li").count() == 2
    assert world.balance(accounts.household_points(town.h2)) == 20
