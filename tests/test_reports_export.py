"""Ledger exports: the browser's filters, one row per posting, CSV with BOM (streamed), XLSX, the export log."""

from __future__ import annotations

import csv
import io

import pytest

from conftest import IS_POSTGRES
from reports_support import build_scenario, exports_logged

EXPORT = "/api/v1/ledger/transactions/export"


@pytest.fixture
def scenario(world, clock):
    return build_scenario(world, clock)


def browse_all(world, user, query):
    """Every transaction the ledger browser shows for ``query`` (all pages)."""
    items, cursor = [], None
    while True:
        url = f"/api/v1/ledger/transactions?{query}&limit=500" + (f"&cursor={cursor}" if cursor else "")
        page = world.call("GET", url, user).get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def csv_rows(response) -> list[list[str]]:
    """The header and the rows of a ledger export, after checking its trailer row (``#end,<rows>``)."""
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[-1] == ["#end", str(len(rows) - 2)]
    return rows[:-1]


@pytest.mark.parametrize("query", [
    "community_code=yangguang",
    "community_code=yangguang&kind=redemption",
    "community_code=yangguang&category=volunteer&since=2026-03-01T00:00:00%2B08:00&until=2026-04-01T00:00:00%2B08:00",
    "household_id={A}",
])
def test_csv_export_is_the_browser_view_one_row_per_posting(world, scenario, query):
    query = query.format(**scenario)
    browsed = browse_all(world, "yg_committee", query)
    assert browsed  # every filter selects something
    r = world.call("GET", f"{EXPORT}?{query}&format=csv", "yg_committee")
    assert r.status_code == 200
    assert r.is_streamed and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="ledger-')
    rows = csv_rows(r)
    header = rows[0]
    assert header == ["transaction_id", "created_at", "kind", "category", "reference", "memo", "actor",
                      "reverses_id", "account", "amount", "unit", "hash"]
    body = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    expected = [(t["id"], p["account"], p["amount"], p["unit"], t["kind"], t["hash"], t["created_at"])
                for t in sorted(browsed, key=lambda t: t["id"]) for p in t["postings"]]
    assert [(int(b["transaction_id"]), b["account"], int(b["amount"]), b["unit"], b["kind"], b["hash"],
             b["created_at"]) for b in body] == expected
    # The postings of each transaction sum to zero per unit.
    sums = {}
    for b in body:
        key = (b["transaction_id"], b["unit"])
        sums[key] = sums.get(key, 0) + int(b["amount"])
    assert set(sums.values()) == {0}


def test_csv_keeps_chinese_and_is_read_in_batches(world, scenario, monkeypatch):
    from timebank.audit import ledger_browser

    monkeypatch.setattr(ledger_browser, "EXPORT_BATCH", 2)
    r = world.call("GET", f"{EXPORT}?community_code=yangguang", "yg_committee")
    rows = csv_rows(r)[1:]
    ids = [int(row[0]) for row in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(browse_all(world, "yg_committee", "community_code=yangguang"))
    assert any("清扫楼道" in row[5] for row in rows)  # the claim's memo, in Chinese


def test_xlsx_export_has_the_same_rows(world, scenario):
    from openpyxl import load_workbook

    query = "community_code=yangguang&kind=redemption"
    csv_body = csv_rows(world.call("GET", f"{EXPORT}?{query}", "yg_super"))
    r = world.call("GET", f"{EXPORT}?{query}&format=xlsx", "yg_super")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(r.get_data())).active
    rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert rows == csv_body
    assert len(rows) == 1 + 2 * 3  # three receipts, two postings each


def test_exports_are_logged_with_their_filters(world, scenario, caplog):
    expiry = csv_rows(world.call("GET", f"{EXPORT}?community_code=yangguang&kind=expiry", "yg_committee"))
    world.call("GET", f"{EXPORT}?community_code=yangguang&format=xlsx", "yg_super")
    lines = exports_logged(caplog)
    assert [(e["action"], e["username"], e["role"], e["format"]) for e in lines] == [
        ("ledger.export", "yg_committee", "committee", "csv"), ("ledger.export", "yg_super", "supervisor", "xlsx")]
    assert lines[0]["filters"] == {"community_code": "yangguang", "kind": "expiry"}
    assert lines[0]["rows"] == len(expiry) - 1 > 0 and lines[1]["rows"] > lines[0]["rows"]
    assert lines[0]["user_id"] is not None and lines[0]["address"] == "127.0.0.1"
    assert lines[0]["path"] == f"{EXPORT}?community_code=yangguang&kind=expiry"
    # Not written to the audit log: a GET never writes.
    log = world.call("GET", "/api/v1/audit-log?community_code=yangguang&action=ledger.export",
                     "yg_committee").get_json()["items"]
    assert log == []


def test_a_refused_export_is_not_logged(world, scenario, caplog):
    world.user("yg_grid", "grid_worker", community_code="yangguang")
    assert world.call("GET", f"{EXPORT}?community_code=yangguang", "yg_grid").status_code == 403
    world.app.config["TIMEBANK_XLSX_MAX_ROWS"] = 3
    assert world.call("GET", f"{EXPORT}?community_code=yangguang&format=xlsx", "yg_committee").status_code == 422
    assert exports_logged(caplog) == []


def test_page_exports_are_logged_too(world, scenario, caplog):
    client = world.app.test_client()
    assert client.post("/login", data={"username": "yg_committee", "password": "secret-pass"}).status_code == 302
    body = client.get("/committee/ledger/export.csv?kind=expiry")
    assert body.status_code == 200
    rows = list(csv.reader(io.StringIO(body.get_data().decode("utf-8-sig"))))
    assert client.get("/committee/reports/2026-03.xlsx").status_code == 200
    ledger_line, report_line = exports_logged(caplog)
    assert (ledger_line["action"], ledger_line["format"], ledger_line["username"]) == ("ledger.export", "csv",
                                                                                       "yg_committee")
    assert ledger_line["filters"] == {"community_code": "yangguang", "kind": "expiry"}
    assert rows[-1] == ["#end", str(len(rows) - 2)]
    assert ledger_line["rows"] == len(rows) - 2 > 0
    assert (report_line["action"], report_line["format"], report_line["target"]) == (
        "report.export", "xlsx", "report:monthly:yangguang:2026-03")


def test_the_export_log_is_written_somewhere_without_logging_set_up(monkeypatch):
    """A server whose logging nobody configured still writes the lines (to standard error)."""
    import logging

    from timebank.core import audit_log

    log = logging.getLogger(audit_log.EXPORT_LOGGER)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(log, "level", logging.NOTSET)
    audit_log.configure_export_log()
    assert log.isEnabledFor(logging.INFO) and not log.disabled
    assert [type(h) for h in log.handlers] == [logging.StreamHandler]


def test_xlsx_too_large_is_refused(world, scenario):
    world.app.config["TIMEBANK_XLSX_MAX_ROWS"] = 3
    r = world.call("GET", f"{EXPORT}?community_code=yangguang&format=xlsx", "yg_committee")
    assert r.status_code == 422 and r.get_json()["error"] == "export_too_large"
    assert world.call("GET", f"{EXPORT}?community_code=yangguang&format=csv", "yg_committee").status_code == 200


def test_who_may_export(world, scenario):
    world.user("yg_grid", "grid_worker", community_code="yangguang")
    world.user("hx_committee", "committee")
    assert world.call("GET", f"{EXPORT}?community_code=yangguang", "yg_clerk").status_code == 403
    assert world.call("GET", f"{EXPORT}?community_code=yangguang", "yg_grid").status_code == 403
    other = world.call("GET", f"{EXPORT}?community_code=yangguang", "hx_committee")
    assert other.status_code == 403 and other.get_json()["error"] == "forbidden"
    # Without a community filter, staff get their own community only: nothing of 阳光社区.
    own = csv_rows(world.call("GET", EXPORT, "hx_committee"))
    assert own == [own[0]]
    assert world.call("GET", f"{EXPORT}?community_code=yangguang", "admin").status_code == 200
    assert world.client.get(EXPORT).status_code == 401
    bad = world.call("GET", f"{EXPORT}?format=pdf", "yg_committee")
    assert bad.status_code == 422 and bad.get_json()["error"] == "validation_error"
    backwards = world.call("GET", f"{EXPORT}?since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "yg_committee")
    assert backwards.status_code == 422


def test_a_filter_the_database_refuses_is_answered_not_streamed(world, scenario):
    """An id beyond PostgreSQL's INTEGER (no such row can exist) is refused like any bad input there,
    before the CSV starts streaming; SQLite compares it and finds nothing. Never a broken stream."""
    r = world.call("GET", f"{EXPORT}?resident_id=36028797018963968", "admin")
    if IS_POSTGRES:
        assert r.status_code == 422 and r.get_json()["error"] == "validation_error", r.get_data(as_text=True)
    else:
        assert r.status_code == 200 and csv_rows(r) == [csv_rows(r)[0]]  # the header only
