"""Background ledger exports (后台导出) in Chromium: asked for on the ledger page, followed on the run's page
(a progress bar while it waits, put in place by the page's script as it changes), downloaded once
done; axe-core checks each of these pages, the unfinished ones too.

The tests' config runs no export by itself (``TIMEBANK_EXPORT_RUNNER`` is ``none``): the test writes the
file with ``timebank.audit.export_runs.run`` in the live server's app, as a process would.
The app's Content-Security-Policy refuses inline scripts, and axe is put into the page by the test, so the
pages here are opened in a context that bypasses the CSP (as tests/test_accessibility.py does).
"""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook

from browser_support import browser, console_allow, live_server, login, open_tab  # noqa: F401
from earning_support import build_town
from test_accessibility import AXE, run_axe

pytestmark = pytest.mark.browser

RUN_PAGE = re.compile(r"/committee/ledger/exports/(\d+)$")


@pytest.fixture
def axe_page(browser, console_allow):  # noqa: F811
    """A phone-sized page, as ``browser_support.page``, that lets axe in (CSP bypassed)."""
    assert AXE.is_file(), f"{AXE} is missing: run `make axe`"
    with open_tab(browser, console_allow, bypass_csp=True, accept_downloads=True) as tab:
        yield tab


def axe_violations(page) -> list[str]:
    """The serious and critical violations on the page, as lines naming the rule and the elements."""
    page.wait_for_load_state("load")
    return [f"{page.url}: {v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in run_axe(page)]


def a_town_with_a_ledger(world):
    town = build_town(world)
    for household, points in ((town.h1, 30), (town.h2, 12), (town.h3, 5)):
        world.grant(household, points)
    world.grant(town.h1, 7, category="red")
    return town


def ask_for_an_export(page, base_url: str, fmt: str) -> int:
    """On the ledger page, choose ``fmt`` and start a background export; answers the run's id."""
    page.goto(f"{base_url}/committee/ledger")
    page.select_option("#background-fmt", fmt)
    with page.expect_navigation():
        page.click("#background-export-start")
    page.wait_for_load_state("load")
    found = RUN_PAGE.search(page.url.split("?")[0])
    assert found, page.url
    return int(found.group(1))


def run_export(app, run_id: int) -> str:
    from timebank.audit import export_runs

    with app.app_context():
        return export_runs.run(run_id)


def test_a_committee_member_exports_the_ledger_in_the_background(app, world, live_server, axe_page):  # noqa: F811
    page = axe_page
    a_town_with_a_ledger(world)
    login(page, live_server, "committee")
    run_id = ask_for_an_export(page, live_server, "xlsx")

    # Queued: the run's page shows a progress bar (and updates itself, without reloading).
    assert page.locator(f"#export-{run_id}[data-status=queued]").count() == 1
    assert page.locator(f"progress#progress-{run_id}").is_visible()
    assert page.locator(f"#download-{run_id}").count() == 0
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    found = axe_violations(page)

    page.evaluate("window.notReloaded = true")
    assert run_export(app, run_id) == "done"
    page.locator(f"#export-{run_id}[data-status=done]").wait_for(timeout=10_000)
    assert page.evaluate("window.notReloaded") is True  # put in place, not reloaded
    assert page.locator("progress").count() == 0
    link = page.locator(f"#download-{run_id}")
    assert link.is_visible()
    found += axe_violations(page)

    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith(".xlsx"), download.suggested_filename
    with open(download.path(), "rb") as handle:
        body = handle.read()
    assert body[:4] == b"PK\x03\x04", body[:16]  # a zip: what an XLSX workbook is
    book = load_workbook(io.BytesIO(body), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert len(rows) > 1, rows  # a header and the ledger's rows

    page.goto(f"{live_server}/committee/ledger/exports")
    assert page.locator(f"#export-{run_id}[data-status=done]").count() == 1
    assert page.locator(f"#download-{run_id}").is_visible()
    found += axe_violations(page)

    page.goto(f"{live_server}/committee/ledger")
    assert page.locator("#background-export").is_visible()
    found += axe_violations(page)
    assert not found, f"{len(found)} serious or critical violations:\n" + "\n".join(found)


def test_the_pages_of_an_unfinished_export_pass_axe(app, world, live_server, axe_page):  # noqa: F811
    page = axe_page
    a_town_with_a_ledger(world)
    login(page, live_server, "committee")
    run_id = ask_for_an_export(page, live_server, "csv")
    assert page.locator(f"progress#progress-{run_id}").is_visible()
    found = axe_violations(page)
    page.goto(f"{live_server}/committee/ledger/exports")
    assert page.locator(f"#export-{run_id}[data-status=queued] progress").count() == 1
    found += axe_violations(page)
    assert not found, f"{len(found)} serious or critical violations:\n" + "\n".join(found)
