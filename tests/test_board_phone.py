"""The public notice board on a phone (issue: "the public board on a phone wraps names and the 提出异议
button one character per line").

The board is opened in Chromium at 360 px, a small phone, with long names and a long item of the points
list under notice: nothing is wider than the screen, no name or button breaks into a column of single
characters, and each claim still shows what each value is (the table's headings, beside the values).
"""

from __future__ import annotations

import pytest

from browser_support import browser, console_allow, live_server, page  # noqa: F401
from earning_support import build_town, claim, rule

SMALL_PHONE = {"width": 360, "height": 740}

#: For each text cell and button of the board's tables: its characters and how many lines they take.
LINES_JS = """
() => Array.from(document.querySelectorAll('.board-table td, .board-table .btn')).map(el => {
  const text = el.innerText.trim();
  const tops = new Set();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) { if (r.width > 0) tops.add(Math.round(r.top)); }
  }
  return {text, chars: text.length, lines: tops.size};
})
"""


@pytest.mark.browser
@pytest.mark.parametrize("page", [SMALL_PHONE], indirect=True)
def test_the_board_fits_a_small_phone(world, clock, live_server, page):  # noqa: F811
    t = build_town(world)
    h = world.household(name="欧阳家（槐树街十二号院）", grid="1")
    r = world.resident(h, "欧阳娜仁其其格", phone="13800000099", password="secret-pass")
    rule(world, "clean", title="周六清扫槐树街及周边楼道卫生", points=10, publicity_days=3)
    c = claim(world, r, "13800000099")
    claim(world, t.r2, t.resident2)
    for claim_id in (c["id"],):
        assert world.call("POST", f"/api/v1/claims/{claim_id}/approve", "committee").status_code == 200
    pending = world.call("GET", "/api/v1/claims?community_code=hongxing&status=pending", "committee").get_json()
    for item in pending["items"]:
        assert world.call("POST", f"/api/v1/claims/{item['id']}/approve", "committee").status_code == 200

    # A deduction under notice too: its table is laid out for the phone as well.
    r = world.call("POST", "/api/v1/deduction-items", "committee", json={
        "community_code": "hongxing", "code": "litter", "title": "乱倒垃圾及占用公共楼道堆放杂物", "points": -5})
    assert r.status_code == 201, r.get_json()
    made = world.call("POST", "/api/v1/deductions", "grid", json={
        "community_code": "hongxing", "item_code": "litter", "household_id": h}).get_json()["id"]
    assert world.call("POST", f"/api/v1/deductions/{made}/approve", "committee").status_code == 200

    page.goto(f"{live_server}/public/hongxing")
    assert page.locator("#notices .board-table").count() == 1
    assert page.locator("#publicity .board-table").count() == 1
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the board is {overflow} px wider than the phone"
    squeezed = [cell for cell in page.evaluate(LINES_JS)
                if cell["chars"] >= 3 and cell["lines"] > 1 and cell["chars"] / cell["lines"] < 3]
    assert not squeezed, f"cells broken into a column of characters: {squeezed}"
    button = page.get_by_role("link", name="提出异议").first
    box = button.bounding_box()
    assert box["height"] < 72 and box["width"] >= 4 * 16, box
    # Each value still says what it is: the heading is shown beside it on a phone.
    labels = page.evaluate("""() => Array.from(document.querySelectorAll('#publicity tbody tr:first-child td'))
        .map(td => getComputedStyle(td, '::before').content)""")
    assert '"公示截止"' in labels and '"积分"' in labels, labels
