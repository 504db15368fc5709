"""No export carries a formula: text a spreadsheet would evaluate (=, +, -, @, a tab or a carriage return
first) is written as text, prefixed with ' in CSV and as a quote-prefixed text cell in XLSX. Numbers
stay numbers."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest

SHANGHAI = timezone(timedelta(hours=8))
TITLE = '=HYPERLINK("http://x","点我")'
DONOR = "+cmd|' /C calc'!A0"
MEMO = "@SUM(1)"
TAB_NAME = "\t张家"
CR_NAME = "\r李家"
HOSTILE = (TITLE, DONOR, MEMO, TAB_NAME, CR_NAME)
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

API_EXPORTS = [
    ("/api/v1/ledger/transactions/export?community_code=hongxing&format=csv", "csv"),
    ("/api/v1/ledger/transactions/export?community_code=hongxing&format=xlsx", "xlsx"),
    ("/api/v1/reports/monthly?community_code=hongxing&month=2026-03&format=csv", "csv"),
    ("/api/v1/reports/monthly?community_code=hongxing&month=2026-03&format=xlsx", "xlsx"),
    ("/api/v1/reports/stock?community_code=hongxing&month=2026-03&format=csv", "csv"),
    ("/api/v1/partners/settlement?community_code=hongxing&month=2026-03&format=csv", "csv"),
]
PAGE_EXPORTS = [
    ("/committee/ledger/export.csv", "csv"),
    ("/committee/ledger/export.xlsx", "xlsx"),
    ("/committee/reports/2026-03.csv", "csv"),
    ("/committee/reports/2026-03.xlsx", "xlsx"),
    ("/committee/partners/settlement.csv?month=2026-03", "csv"),
]


@pytest.fixture
def hostile(world, clock):
    """A month in which every free text that reaches an export looks like a formula."""
    import ledger
    from timebank.core import accounts, ledgering
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.hours import operations as hours
    from timebank.people.models import Community, Household
    from timebank.shop import operations as shop

    clock.set(datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI))
    tab_home = world.household(name=TAB_NAME)
    cr_home = world.household(name=CR_NAME)
    asker = world.resident(tab_home, "张三")
    helper = world.resident(cr_home, "李四")
    world.user("committee", "committee")
    world.user("clerk", "clerk")
    app = world.app
    with app.app_context():
        community = db.session.execute(db.select(Community).filter_by(code="hongxing")).scalar_one()
        committee = db.session.execute(db.select(User).filter_by(username="committee")).scalar_one()
        clerk = db.session.execute(db.select(User).filter_by(username="clerk")).scalar_one()
        for home, points in ((tab_home, 30), (cr_home, 20)):
            h = db.session.get(Household, home)
            ledgering.post(community.id, [ledger.Leg(accounts.issuance_points(community.id, "volunteer"), -points),
                                          ledger.Leg(accounts.household_points(h.id), points)],
                           kind="grant", category="volunteer", memo=MEMO, actor="test")
        ledgering.post(community.id, [ledger.Leg(accounts.issuance_minutes(community.id), -60),
                                      ledger.Leg(accounts.resident_minutes(asker), 60)],
                       kind="deposit", memo="-60 minutes in", actor="test")
        item = shop.create_item(community, committee, sku="soap", name="香皂", price_points=3)
        shop.record_movement(item, clerk, quantity=5, reason="donation", donor=DONOR, donor_kind="person")
        from timebank.shop import partners

        partners.create_partner(community, committee, name=DONOR, address=TITLE)
        request = hours.create_help_request(committee, asker, TITLE, 30)
        hours.accept_help_request(committee, request, helper)
        hours.complete_help_request(committee, request)
        db.session.commit()
    clock.set(datetime(2026, 4, 2, 9, 0, tzinfo=SHANGHAI))


def _cells_csv(body: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")) for cell in row]


def _check_csv(body: bytes) -> set[str]:
    """Every cell that starts like a formula is a plain number; return the texts the ' protected."""
    protected = set()
    for cell in _cells_csv(body):
        if cell.startswith("'"):
            protected.add(cell[1:])
        elif cell.startswith(DANGEROUS):
            assert NUMBER.match(cell), f"formula-like CSV cell {cell!r}"
    return protected


def _check_xlsx(body: bytes) -> set[str]:
    from openpyxl import load_workbook

    protected, negatives = set(), 0
    for sheet in load_workbook(io.BytesIO(body)).worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(DANGEROUS):
                    assert cell.data_type == "s" and cell.quotePrefix, (sheet.title, cell.coordinate, cell.value)
                    protected.add(cell.value)
                if isinstance(cell.value, int) and cell.value < 0:
                    negatives += 1
    return protected


def _expected(url: str, fmt: str) -> set[str]:
    if "ledger" in url:
        return {MEMO}  # the help's memo starts with the title: "=HYPERLINK(...): 张三 -> 李四"
    if "stock" in url:
        return {DONOR}
    if "partners" in url:
        return {DONOR, TITLE}  # a partner shop's name and address
    # Donors and the ranking's household names. XML reads a carriage return back as a line feed, so
    # in XLSX the \r name is only checked for not being a formula (as every cell is).
    return {DONOR, TAB_NAME} | ({CR_NAME} if fmt == "csv" else set())


def _assert_safe(url, fmt, response):
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_data()
    protected = _check_csv(body) if fmt == "csv" else _check_xlsx(body)
    assert _expected(url, fmt) <= protected, (url, protected)
    if "ledger" in url:
        assert any(p.startswith(TITLE) for p in protected), (url, protected)


@pytest.mark.parametrize("url, fmt", API_EXPORTS)
def test_api_exports_carry_no_formula(world, hostile, url, fmt):
    _assert_safe(url, fmt, world.call("GET", url, "committee"))


@pytest.mark.parametrize("url, fmt", PAGE_EXPORTS)
def test_page_exports_carry_no_formula(world, hostile, url, fmt):
    client = world.app.test_client()
    assert client.post("/login", data={"username": "committee", "password": "secret-pass"}).status_code == 302
    _assert_safe(url, fmt, client.get(url))


def test_numbers_stay_numbers(world, hostile):
    """A negative amount is the number -30 in XLSX and the bare -30 in CSV, never the text '-30."""
    from openpyxl import load_workbook

    url = "/api/v1/ledger/transactions/export?community_code=hongxing"
    cells = _cells_csv(world.call("GET", url + "&format=csv", "committee").get_data())
    assert "-30" in cells and "'-30" not in cells
    sheet = load_workbook(io.BytesIO(world.call("GET", url + "&format=xlsx", "committee").get_data())).active
    amounts = [row[9] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert -30 in amounts and all(isinstance(a, int) for a in amounts)


def test_safe_cell_is_the_one_rule():
    from timebank.core.exports import safe_cell

    for text in HOSTILE + ("-5", "+86 139", "=1+1"):
        assert safe_cell(text) == "'" + text
    for value in (-5, 0, 3.5, None, "张家", "5", "a=b", ""):
        assert safe_cell(value) == value
