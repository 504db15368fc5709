"""Background ledger exports (后台导出): asked for by the API or on the ledger page, written by a
process of their own with their progress recorded, downloaded once done.

The finding: an XLSX export is built whole before its first byte, about 10 s per 100,000 rows; a
request that silent was killed by the worker's timeout (60 s) long before a million rows."""

from __future__ import annotations

import csv
import io
import time

import pytest
from openpyxl import load_workbook

from conftest import page_login
from reports_support import build_scenario

EXPORT = "/api/v1/ledger/transactions/export"
RUNS = "/api/v1/ledger/transactions/exports"


@pytest.fixture
def scenario(world, clock):
    return build_scenario(world, clock)


def run_it(app, run_id):
    from timebank.audit import export_runs

    with app.app_context():
        return export_runs.run(run_id)


def test_a_background_csv_is_the_streamed_export(app, world, scenario):
    r = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang", "kind": "redemption"})
    assert r.status_code == 202, r.get_json()
    run = r.get_json()
    assert run["status"] == "queued" and run["format"] == "csv" and run["rows_expected"] > 0
    assert r.headers["Location"].endswith(f"{RUNS}/{run['id']}")
    assert run["file_url"] is None
    # Not done yet: no file.
    early = world.call("GET", f"{RUNS}/{run['id']}/file", "yg_committee")
    assert early.status_code == 409 and early.get_json()["error"] == "export_not_ready"

    assert run_it(app, run["id"]) == "done"
    done = world.call("GET", f"{RUNS}/{run['id']}", "yg_committee").get_json()
    assert done["status"] == "done" and done["rows_written"] == run["rows_expected"]
    got = world.call("GET", done["file_url"], "yg_committee")
    assert got.status_code == 200 and got.mimetype == "text/csv"
    assert got.headers["Content-Disposition"].startswith('attachment; filename=ledger-yangguang-')
    streamed = world.call("GET", f"{EXPORT}?community_code=yangguang&kind=redemption", "yg_committee")
    assert got.get_data() == streamed.get_data()
    rows = list(csv.reader(io.StringIO(got.get_data().decode("utf-8-sig"))))
    assert rows[-1] == ["#end", str(run["rows_expected"])]
    # Run again: nothing happens (it is not queued any more).
    assert run_it(app, run["id"]) == "done"


def test_a_big_workbook_continues_on_further_sheets(app, world, scenario, monkeypatch):
    from timebank.audit import ledger_browser

    monkeypatch.setattr(ledger_browser, "SHEET_ROWS", 3)
    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang", "format": "xlsx"}).get_json()
    assert run["rows_expected"] > 6  # three sheets at least
    assert run_it(app, run["id"]) == "done"
    got = world.call("GET", f"{RUNS}/{run['id']}/file", "yg_committee")
    book = load_workbook(io.BytesIO(got.get_data()), read_only=True)
    assert book.sheetnames[:3] == ["ledger", "ledger (2)", "ledger (3)"]
    rows = []
    for sheet in book.worksheets:
        values = [list(row) for row in sheet.iter_rows(values_only=True)]
        assert values[0][0] == "transaction_id" and 1 <= len(values) - 1 <= 3
        rows += values[1:]
    assert len(rows) == run["rows_expected"]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_progress_is_recorded_as_it_goes(app, world, scenario, monkeypatch):
    from timebank.audit import export_runs, ledger_browser
    from timebank.audit.models import ExportRun
    from timebank.core.extensions import db

    monkeypatch.setattr(ledger_browser, "EXPORT_BATCH", 2)
    monkeypatch.setattr(export_runs, "PROGRESS_EVERY_S", 0)
    seen = []
    chunks = ledger_browser.export_csv_chunks

    def every_row(query, progress=None):  # progress after every 500 rows is more than this ledger has
        count = 0
        for chunk in chunks(query):
            count += chunk.count("\n")
            if progress is not None:
                progress(count)
                with app.app_context():
                    seen.append(db.session.get(ExportRun, run["id"]).rows_written)
            yield chunk

    monkeypatch.setattr(export_runs, "export_csv_chunks", every_row)
    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    assert run_it(app, run["id"]) == "done"
    assert seen and seen == sorted(seen) and seen[-1] > 0  # read from another connection while it ran


def test_a_failed_export_says_why_and_leaves_no_file(app, world, scenario, monkeypatch):
    from timebank.audit import export_runs

    def broken(query, progress=None):
        yield "\ufefftransaction_id\n"
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_runs, "export_csv_chunks", broken)
    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    assert run_it(app, run["id"]) == "failed"
    failed = world.call("GET", f"{RUNS}/{run['id']}", "yg_committee").get_json()
    assert failed["status"] == "failed" and "disk full" in failed["error"]
    assert world.call("GET", f"{RUNS}/{run['id']}/file", "yg_committee").status_code == 409
    with app.app_context():
        assert not list(export_runs.folder().glob(f"{run['id']}.*"))


def test_a_silent_run_shows_as_interrupted(app, world, scenario, clock):
    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    assert world.call("GET", f"{RUNS}/{run['id']}", "yg_committee").get_json()["status"] == "queued"
    clock.advance(minutes=3)
    assert world.call("GET", f"{RUNS}/{run['id']}", "yg_committee").get_json()["status"] == "interrupted"


def test_who_may_ask_and_see(app, world, scenario):
    world.user("hx_committee", "committee", community_code="hongxing")
    # A supervisor reads only, and may ask for an export (it changes nothing).
    r = world.call("POST", RUNS, "yg_super", json={"community_code": "yangguang"})
    assert r.status_code == 202, r.get_json()
    run_id = r.get_json()["id"]
    assert world.call("POST", RUNS, "yg_clerk", json={"community_code": "yangguang"}).status_code == 403
    assert world.call("POST", RUNS, "hx_committee", json={"community_code": "yangguang"}).status_code == 403
    assert world.call("GET", f"{RUNS}/{run_id}", "hx_committee").status_code == 403
    assert world.call("GET", f"{RUNS}/{run_id}", "yg_committee").status_code == 200
    assert world.call("GET", f"{RUNS}/{run_id}", "admin").status_code == 200
    assert world.call("GET", f"{RUNS}/999999", "yg_committee").status_code == 404
    # Its filters are scoped when asked: the committee of hongxing gets hongxing's ledger only.
    own = world.call("POST", RUNS, "hx_committee", json={}).get_json()
    assert own["rows_expected"] == 0


def test_files_are_removed_after_a_day(app, world, scenario, clock):
    from timebank.core.scheduler import run_job

    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    run_it(app, run["id"])
    with app.app_context():
        assert run_job("export_cleanup") == {"expired": 0}
    clock.advance(hours=25)
    world._tokens.clear()  # the day's tokens have expired
    with app.app_context():
        assert run_job("export_cleanup") == {"expired": 1}
    gone = world.call("GET", f"{RUNS}/{run['id']}/file", "yg_committee")
    assert gone.status_code == 410 and gone.get_json()["error"] == "export_expired"
    assert world.call("GET", f"{RUNS}/{run['id']}", "yg_committee").get_json()["status"] == "expired"


def test_a_workbook_in_the_request_keeps_its_worker_alive(app, world, scenario, monkeypatch):
    """The XLSX built in a request tells the worker's heartbeat as it goes, as the CSV always did."""
    from timebank.audit import ledger_browser

    beats = []
    monkeypatch.setattr(ledger_browser, "keep_alive", lambda: beats.append(1))
    rows = [(n, "2026-01-01T00:00:00+08:00", "grant", "", "", "", "", "", "a", 1, "points", "h") for n in range(1200)]
    monkeypatch.setattr(ledger_browser, "_export_rows", lambda query: iter(rows))
    r = world.call("GET", f"{EXPORT}?community_code=yangguang&format=xlsx", "yg_committee")
    assert r.status_code == 200
    assert len(beats) == 2


def test_the_page_asks_shows_progress_and_downloads(app, world, scenario):
    from timebank.audit.models import ExportRun
    from timebank.core.extensions import db

    client = page_login(app, "yg_committee")
    ledger = client.get("/committee/ledger?kind=redemption")
    assert 'id="background-export"' in ledger.get_data(as_text=True)
    form_key = "export-form-key-1"
    r = client.post("/committee/ledger/exports", data={"fmt": "xlsx", "kind": "redemption", "form_key": form_key})
    assert r.status_code in (302, 303)
    shown = client.get(r.headers["Location"])
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200, page[-1500:]
    assert "<progress" in page and "export_progress.js" in page  # it updates itself
    with app.app_context():
        run = db.session.execute(db.select(ExportRun).order_by(ExportRun.id.desc())).scalars().first()
        assert run.fmt == "xlsx" and run.community_id is not None
        assert '"kind": "redemption"' in run.filters
        run_id = run.id
    run_it(app, run_id)
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert f'id="download-{run_id}"' in page and "<progress" not in page
    got = client.get(f"/committee/ledger/exports/{run_id}/file")
    assert got.status_code == 200
    book = load_workbook(io.BytesIO(got.get_data()), read_only=True)
    kinds = {row[2] for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)}
    assert kinds == {"redemption"}
    listing = client.get("/committee/ledger/exports").get_data(as_text=True)
    assert f'id="export-{run_id}"' in listing
    # A supervisor may ask on the page too; another community's committee sees nothing of it.
    # Sent twice (a double tap): asked once, and the second sending goes to the first one's run.
    again = client.post("/committee/ledger/exports", data={"fmt": "xlsx", "kind": "redemption", "form_key": form_key})
    assert again.headers["Location"] == r.headers["Location"]
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(ExportRun)).scalar_one() == 1
    assert page_login(app, "yg_super").post("/committee/ledger/exports",
                                            data={"fmt": "csv", "form_key": "super-form-key"}).status_code in (302, 303)
    world.user("hx_committee", "committee", community_code="hongxing")
    other = page_login(app, "hx_committee")
    assert other.get(f"/committee/ledger/exports/{run_id}").status_code == 404
    assert other.get(f"/committee/ledger/exports/{run_id}/file").status_code == 404


@pytest.mark.slow
def test_the_export_runs_in_a_process_of_its_own(app, world, scenario):
    """As deployed: the request starts ``timebank export-run`` after its commit."""
    app.config["TIMEBANK_EXPORT_RUNNER"] = "process"
    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    deadline = time.monotonic() + 90
    status = None
    while time.monotonic() < deadline:
        status = world.call("GET", f"{RUNS}/{run['id']}", "yg_committee").get_json()
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    assert status["status"] == "done", status
    got = world.call("GET", status["file_url"], "yg_committee")
    streamed = world.call("GET", f"{EXPORT}?community_code=yangguang", "yg_committee")
    assert got.get_data() == streamed.get_data()


def test_two_at_once_per_community(app, world, scenario, clock):
    """Each export is a process reading the whole ledger: a third one waits for one of two to end."""
    first = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang", "format": "xlsx"})
    third = world.call("POST", RUNS, "yg_super", json={"community_code": "yangguang"})
    assert third.status_code == 409 and third.get_json()["error"] == "exports_busy"
    client = page_login(app, "yg_committee")
    refused = client.post("/committee/ledger/exports", data={"fmt": "csv", "form_key": "third-export"},
                          follow_redirects=True)
    assert "正在生成" in refused.get_data(as_text=True)
    run_it(app, first["id"])
    assert world.call("POST", RUNS, "yg_super", json={"community_code": "yangguang"}).status_code == 202
    # An interrupted one does not count.
    clock.advance(minutes=3)
    world._tokens.clear()
    assert world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).status_code == 202


def test_the_export_process_marks_the_database_in_use(app, world, scenario, monkeypatch):
    """`timebank restore` must not swap the database under an export being written."""
    from timebank.audit import export_runs

    held = []
    monkeypatch.setattr(export_runs.in_use, "hold", lambda config: held.append(config["SQLALCHEMY_DATABASE_URI"]))
    run = world.call("POST", RUNS, "yg_committee", json={"community_code": "yangguang"}).get_json()
    result = app.test_cli_runner().invoke(args=["export-run", str(run["id"])])
    assert result.exit_code == 0, result.output
    assert f"export {run['id']}: done" in result.output
    assert held == [app.config["SQLALCHEMY_DATABASE_URI"]]


def test_a_subdistrict_follows_the_exports_of_its_communities(app, world):
    """A 街道's committee may export a 社区 below it, as it may read its ledger: and then see its run."""
    world.community("dongjie", "东街街道")
    world.community("xiangyang", "向阳社区", parent_code="dongjie")
    world.user("jd_committee", "committee", community_code="dongjie")
    world.user("xy_committee", "committee", community_code="xiangyang")
    world.user("hx_committee", "committee", community_code="hongxing")
    world.grant(world.household("xiangyang", "张家"), 10)
    r = world.call("POST", RUNS, "jd_committee", json={"community_code": "xiangyang"})
    assert r.status_code == 202, r.get_json()
    run = r.get_json()
    assert run["rows_expected"] == 2
    assert run_it(app, run["id"]) == "done"
    assert world.call("GET", f"{RUNS}/{run['id']}", "jd_committee").get_json()["status"] == "done"
    assert world.call("GET", f"{RUNS}/{run['id']}/file", "jd_committee").status_code == 200
    assert world.call("GET", f"{RUNS}/{run['id']}", "xy_committee").status_code == 200  # its own ledger
    assert world.call("GET", f"{RUNS}/{run['id']}", "hx_committee").status_code == 403
