"""The monthly report: every figure against a scenario with exact expected numbers.

Scenario in 阳光社区 (points expire one month after they were granted), local time Asia/Shanghai:

| when (local)      | what                                                                      |
|-------------------|---------------------------------------------------------------------------|
| 02-10             | grant 赵家 12 volunteer (expires on 03-25)                                 |
| 02-20             | grant 张家 50 volunteer; donation 老张 soap 4                               |
| 02-28 23:30       | grant 李家 7 moral (February: 15:30 UTC)                                    |
| 03-01 00:30       | grant 李家 20 moral (March, although 02-28 16:30 UTC)                        |
| 03-05             | grant 张家 30 volunteer, 王家 15 red; claims: 张家 10 volunteer, 李家 8 neighbour_help + 60 min |
| 03-10             | grant 张家 5 volunteer and its reversal                                     |
| 03-12             | donations 华联超市 soap 20 + oil 5, 县农业银行 soap 10; receipts 张家 60, 李家 9, 王家 3;     |
|                   | void 李家's; return 2 soap of 张家's                                          |
| 03-15             | pool funded 50 min; help: 王家 (red, pool pays) 30 min to 张三丰; 李四 20 min to 赵六 |
| 03-25             | expiry job: 赵家 12                                                          |
| 03-31 23:30       | grant 王家 4 red (still March)                                              |
| 04-01 00:30       | grant 张家 100 volunteer, household 孙家 created (April)                       |
"""

from __future__ import annotations

import csv
import io

import pytest

from reports_support import build_scenario, exports_logged


@pytest.fixture
def scenario(world, clock):
    return build_scenario(world, clock)


EXPECTED_POINTS = {
    "issued_by_category": {"volunteer": 40, "red": 19, "moral": 20, "neighbour_help": 8},
    "issued_total": 87,
    "redeemed": 72,
    "voided": 15,
    "voided_by_void": 9,
    "voided_by_return": 6,
    "redeemed_net": 57,
    "expired": 12,
    "reversed": 0,
    "deducted": 0,
    "outstanding": 87,
}
EXPECTED_HOURS = {"deposited_minutes": 110, "withdrawn_minutes": 20, "help_minutes": 50,
                  "pool_balance_minutes": 20, "outstanding_minutes": 90}


def test_every_figure_of_the_month(world, scenario):
    r = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-03", "yg_committee")
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["period"] == {"start": "2026-03-01T00:00:00+08:00", "end": "2026-04-01T00:00:00+08:00"}
    assert report["points"] == EXPECTED_POINTS
    assert report["hours"] == EXPECTED_HOURS
    assert report["participation"] == {"households_earning": 3, "households_total": 4, "rate": 0.75}
    assert report["activity"] == {"claims_posted": 2, "claims_reversed": 0, "receipts": 3}
    assert [(e["rank"], e["household_id"], e["household_name"], e["points"]) for e in report["top_households"]] == [
        (1, scenario["A"], "张家", 40), (2, scenario["B"], "李家", 28), (3, scenario["C"], "王家", 19)]
    assert [(d["donor"], d["donor_kind"], d["units"], [(i["name"], i["quantity"]) for i in d["items"]])
            for d in report["donations"]] == [
        ("华联超市", "enterprise", 25, [("香皂", 20), ("食用油", 5)]),
        ("县农业银行", "unit", 10, [("香皂", 10)]),
    ]


def test_february_and_april_are_their_own(world, scenario):
    feb = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-02", "yg_committee").get_json()
    assert feb["points"]["issued_by_category"] == {"volunteer": 62, "red": 0, "moral": 7, "neighbour_help": 0}
    assert feb["points"]["outstanding"] == 69
    assert feb["participation"] == {"households_earning": 3, "households_total": 4, "rate": 0.75}
    assert [d["donor"] for d in feb["donations"]] == ["老张"]
    apr = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-04", "yg_committee").get_json()
    assert apr["points"]["issued_total"] == 100 and apr["points"]["outstanding"] == 187
    assert apr["participation"] == {"households_earning": 1, "households_total": 5, "rate": 0.2}


def test_report_agrees_with_the_month_close_statement(world, scenario):
    from timebank.audit.month_close import compute_statement
    from timebank.people.operations import community_by_code

    report = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-03",
                        "yg_super").get_json()
    with world.app.app_context():
        statement = compute_statement(community_by_code("yangguang"), "2026-03")
    for key in ("issued_by_category", "issued_total", "redeemed", "voided", "expired", "outstanding"):
        assert report["points"][key] == statement["points"][key]
    assert report["hours"]["deposited_minutes"] == statement["hours"]["deposited_minutes"]
    assert report["hours"]["withdrawn_minutes"] == statement["hours"]["withdrawn_minutes"]


def test_csv_has_a_bom_every_figure_and_its_export_is_logged(world, scenario, caplog):
    r = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-03&format=csv",
                   "yg_committee")
    assert r.status_code == 200
    assert r.mimetype == "text/csv" and "monthly-yangguang-2026-03.csv" in r.headers["Content-Disposition"]
    raw = r.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["section", "name", "value", "detail"]
    figures = {name: value for section, name, value, _ in rows[1:] if section == "figure"}
    assert figures["points.issued.volunteer"] == "40" and figures["points.outstanding"] == "87"
    assert figures["points.expired"] == "12" and figures["hours.help_minutes"] == "50"
    assert figures["participation.rate"] == "0.75"
    assert ["ranking", "张家", "40", "rank 1"] in rows
    assert ["donation", "华联超市", "5", "食用油"] in rows
    # Logged, not written: a GET never writes (no audit-log row).
    [line] = exports_logged(caplog)
    assert line["action"] == "report.export" and line["target"] == "report:monthly:yangguang:2026-03"
    assert line["format"] == "csv" and line["username"] == "yg_committee" and line["role"] == "committee"
    assert line["filters"] == {"community_code": "yangguang", "month": "2026-03"}
    assert line["rows"] == len(rows) - 1 and line["address"] == "127.0.0.1"
    assert line["at"] == "2026-04-02T09:00:00+08:00"
    log = world.call("GET", "/api/v1/audit-log?community_code=yangguang&action=report.export",
                     "yg_committee").get_json()["items"]
    assert log == []


def test_xlsx_opens_with_the_figures(world, scenario, caplog):
    from openpyxl import load_workbook

    r = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-03&format=xlsx",
                   "yg_super")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(r.get_data()))
    assert book.sheetnames == ["figures", "ranking", "donations"]
    figures = {row[0]: row[1] for row in book["figures"].iter_rows(min_row=2, values_only=True)}
    assert figures["points.redeemed"] == 72 and figures["points.voided"] == 15
    assert figures["hours.deposited_minutes"] == 110
    ranking = list(book["ranking"].iter_rows(min_row=2, values_only=True))
    assert ranking[0] == (1, scenario["A"], "张家", 40)
    donations = list(book["donations"].iter_rows(min_row=2, values_only=True))
    assert ("县农业银行", "unit", "香皂", 10) in donations
    [line] = exports_logged(caplog)
    assert (line["action"], line["format"], line["username"]) == ("report.export", "xlsx", "yg_super")
    assert line["rows"] == sum(sheet.max_row - 1 for sheet in book.worksheets)


def test_access_and_validation(world, scenario):
    url = "/api/v1/reports/monthly?community_code=yangguang&month=2026-03"
    world.user("yg_grid", "grid_worker", community_code="yangguang")
    world.user("hx_committee", "committee")
    assert world.call("GET", url, "yg_grid").status_code == 403
    assert world.call("GET", url, "hx_committee").get_json()["error"] == "forbidden"
    assert world.call("GET", url, "admin").status_code == 200
    assert world.client.get(url).get_json()["error"] == "unauthenticated"
    bad = world.call("GET", "/api/v1/reports/monthly?community_code=yangguang&month=2026-13", "yg_committee")
    assert bad.status_code == 422 and bad.get_json()["error"] == "validation_error"
    fmt = world.call("GET", url + "&format=pdf", "yg_committee")
    assert fmt.status_code == 422
    missing = world.call("GET", "/api/v1/reports/monthly?community_code=nowhere&month=2026-03", "admin")
    assert missing.status_code == 404
