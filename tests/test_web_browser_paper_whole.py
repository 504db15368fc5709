"""The paper path whole, in Chromium (issue 16: "Done when a grid worker can serve a resident without a
phone from registration to a printed statement").

A grid worker registers a household with its first member, neither with a phone; the committee adds a
second member on the household's page; the grid worker scans the household card at the desk, is asked
which member, and enters a claim for her (credited at once by an automatic item); after the night's
seal (a checkpoint) the household's printable statement lists the entry with the QR that proves it.
"""

from __future__ import annotations

import pytest

from browser_support import DESKTOP, browser, console_allow, live_server, login, page  # noqa: F401
from earning_support import build_town, rule

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("page", [DESKTOP], indirect=True)
def test_a_grid_worker_serves_a_resident_without_a_phone_from_registration_to_statement(
        app, world, clock, live_server, page):  # noqa: F811
    build_town(world)
    rule(world, "quick", title="门前三包", points=4, review="auto", publicity_days=0)

    login(page, live_server, "grid")
    page.goto(f"{live_server}/committee/households")
    page.fill("#h-name", "孙家")
    page.fill("#h-address", "槐树街 9 号")
    page.fill("#h-resident", "孙大爷")
    page.locator("form").filter(has=page.locator("#h-name")).locator("button[type=submit]").click()
    page.wait_for_load_state("load")
    with app.app_context():
        from sqlalchemy import select

        from timebank.core.extensions import db
        from timebank.people.models import Household

        household = db.session.execute(select(Household).where(Household.name == "孙家")).scalar_one()
        household_id, card = household.id, household.member_code
    page.context.clear_cookies()

    login(page, live_server, "committee")
    page.goto(f"{live_server}/committee/households/{household_id}")
    page.click("#add-member summary")
    page.fill("#member-name", "孙奶奶")
    page.fill("#member-birth", "1942")
    page.click("#add-member button[type=submit]")
    page.wait_for_load_state("load")
    assert "孙奶奶" in page.inner_text("main")
    page.context.clear_cookies()

    login(page, live_server, "grid")
    page.goto(f"{live_server}/committee/serve")
    page.fill("#serve-card-field", card)
    page.click("#serve-card button[type=submit]")
    page.wait_for_load_state("load")
    page.locator("#members li").filter(has_text="孙奶奶").locator("a").click()
    page.wait_for_load_state("load")
    assert page.inner_text("#serving-name") == "孙奶奶"
    page.select_option("#sc-rule", "quick")
    page.click("#serve-claim button[type=submit]")
    page.wait_for_load_state("load")
    assert page.inner_text("#serving-points").strip() == "4"

    r = world.call("POST", "/api/v1/ledger/checkpoints", "committee")  # the night's seal
    assert r.status_code == 201, r.get_json()
    month = clock.now().strftime("%Y-%m")
    page.goto(f"{live_server}/committee/households/{household_id}/statement?month={month}")
    entries = page.inner_text("#statement-entries")
    assert "门前三包" in entries and "4" in entries
    assert page.locator("#statement-seal svg").count() == 1  # the QR that proves the entries
    assert page.locator("#statement-pending").count() == 0
    assert "4" in page.inner_text("#statement-closing")
