"""Accessibility: axe-core, run inside Debian's Chromium, finds no serious or critical violation on any
page (issue: "axe-core ... with no serious or critical violations on any page, as a test").

Every HTML page of the app's URL map (the same list the "GET never writes" test builds, with every path
value and query variant) is opened by the role that uses it (the resident for /me, the clerk for the
till, the committee for the back office, nobody for the public board and the login), on a phone, in a
community with claims, a task, goods, a sale, a help request, a checkpoint and a closed month. axe-core
comes from the npm registry (`make axe`, pinned in tools/axe/package-lock.json).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_support import PHONE, browser, live_server  # noqa: F401
from test_gets_never_write import add_checkpoint_and_close, build_world, requests_for

AXE = Path(__file__).resolve().parent.parent / "tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "secret-pass"

#: Who opens which pages, by the start of the address; the first match wins.
ROLE_BY_PREFIX = (("/me", "13800000001"), ("/checkin", "13800000001"), ("/clerk", "clerk"), ("/receipts", "clerk"),
                  ("/public", None), ("/login", None), ("/committee", "committee"), ("/", "committee"))
SKIP = ("/api/", "/static/", "/lang/", "/logout", "/favicon.ico", "/healthz")


def role_for(url: str):
    return next(role for prefix, role in ROLE_BY_PREFIX if url.startswith(prefix))


def run_axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
      const result = await axe.run(document, {resultTypes: ['violations']});
      return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")


def test_axe_is_installed():
    assert AXE.is_file(), f"{AXE} is missing: run `make axe`"


@pytest.mark.browser
@pytest.mark.slow
def test_no_page_has_a_serious_accessibility_violation(app, world, clock, live_server, browser):  # noqa: F811
    from playwright.sync_api import Error as PlaywrightError

    ids = build_world(world, clock)
    add_checkpoint_and_close(world, clock, ids)
    urls = sorted({url for _rule, url in requests_for(app, ids)
                   if not url.startswith(SKIP) and "." not in url.split("?")[0].rsplit("/", 1)[-1]})  # no files
    pages: dict = {}
    for url in urls:
        pages.setdefault(role_for(url), []).append(url)

    found: list[str] = []
    checked = 0
    for role, role_urls in pages.items():
        # The app's Content-Security-Policy refuses inline scripts; axe is put into the page by the test.
        context = browser.new_context(viewport=PHONE, locale="zh-CN", bypass_csp=True)
        context.set_default_timeout(20_000)
        page = context.new_page()
        if role is not None:
            page.goto(f"{live_server}/login")
            page.fill("#username", role)
            page.fill("#password", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_load_state("load")
        for url in role_urls:
            try:
                response = page.goto(live_server + url)
            except PlaywrightError as exc:  # a file sent as an attachment (say, a background export's)
                if "Download is starting" in str(exc):
                    continue
                raise
            if response is None or "text/html" not in (response.headers.get("content-type") or ""):
                continue
            checked += 1
            for v in run_axe(page):
                found.append(f"{url} [{role or 'anonymous'}] {v['impact']} {v['id']}: {v['help']} at {v['targets']}")
        context.close()
    assert checked > 40, checked
    assert not found, f"{len(found)} serious or critical violations:\n" + "\n".join(found[:60])
