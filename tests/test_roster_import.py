"""The roster import (花名册导入): a committee's Excel roster, with the opening balances of its paper
ledger, in one go: CSV (UTF-8 with or without BOM, GB18030) or XLSX, raw or as a form's file; a dry
run writes nothing; one wrong row and nothing is written; the same file again creates nothing; an
opening balance is posted once per household, ever; the ledger still verifies."""

from __future__ import annotations

import csv
import hashlib
import io
import re

import openpyxl
import pytest
from sqlalchemy import func, select

from conftest import page_login
from timebank.core import accounts

URL = "/api/v1/imports/households?community_code=hongxing"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ["户名", "地址", "网格", "标签", "姓名", "手机", "出生年份", "期初积分"]
ENGLISH = ["household", "address", "grid", "color", "name", "phone", "birth_year", "opening_points"]
ROWS = [
    ["张家", "幸福路1号", "1", "绿", "张三", "13800000001", "1956", "120"],
    ["张家", "幸福路1号", "1", "绿", "李四", "13800000002", "1958", ""],
    ["王家", "幸福路2号", "2", "红", "王五", "", "1940", "30"],
    ["赵家", "幸福路3号", "", "", "赵六", "138 0000 0004", "", ""],
]


def as_csv(rows, header=HEADER, encoding="utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue().encode(encoding)


def as_xlsx(rows, header=HEADER) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        # Numbers typed as numbers, as Excel keeps them: 13800000001, 1956.
        sheet.append([int(v) if v.isdigit() else v for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def post(world, body, user="committee", content_type="text/csv", query="", url=URL, **headers):
    return world.client.post(url + query, data=body, content_type=content_type,
                             headers={**world.headers(user), **headers})


def counts(app) -> dict[str, int]:
    from timebank.core.extensions import db

    with app.app_context():
        return {t.name: db.session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in db.metadata.sorted_tables}


def roster(app):
    """name -> (address, grid, color, [(name, phone, birth_year)], points balance)."""
    import ledger
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        return {h.name: (h.address, h.grid, h.color, [(m.name, m.phone, m.birth_year) for m in h.members],
                         ledger.balance(db.session, accounts.household_points(h.id)))
                for h in db.session.execute(select(Household)).scalars()}


def opening_transactions(app):
    from ledger.models import Transaction
    from timebank.core.extensions import db

    with app.app_context():
        return db.session.execute(select(Transaction.id, Transaction.idempotency_key, Transaction.reference)
                                  .where(Transaction.kind == "opening_balance")).all()


EXPECTED = {
    "张家": ("幸福路1号", "1", "green", [("张三", "13800000001", 1956), ("李四", "13800000002", 1958)], 120),
    "王家": ("幸福路2号", "2", "red", [("王五", None, 1940)], 30),
    "赵家": ("幸福路3号", None, "green", [("赵六", "13800000004", None)], 0),
}


@pytest.fixture
def committee(world):
    world.user("committee", "committee")
    return world


def verify_ok(runner):
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output


# --- the formats ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["utf-8", "utf-8 with BOM", "gb18030", "xlsx", "multipart csv", "multipart xlsx",
                                  "english headers"])
def test_every_format_imports_the_same_roster(committee, app, runner, kind):
    world = committee
    if kind == "utf-8":
        r = post(world, as_csv(ROWS), content_type="text/csv; charset=utf-8")
    elif kind == "utf-8 with BOM":
        r = post(world, b"\xef\xbb\xbf" + as_csv(ROWS))
    elif kind == "gb18030":
        data = as_csv(ROWS, encoding="gb18030")
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # really GB18030, as Excel on a Chinese Windows writes it
        r = post(world, data, content_type="application/vnd.ms-excel")
    elif kind == "xlsx":
        r = post(world, as_xlsx(ROWS), content_type=XLSX)
    elif kind.startswith("multipart"):
        data, name = (as_xlsx(ROWS), "花名册.xlsx") if kind.endswith("xlsx") else (as_csv(ROWS), "花名册.csv")
        r = world.client.post(URL, data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data",
                              headers=world.headers("committee"))
    else:
        r = post(world, as_csv([[*row[:3], {"绿": "green", "红": "red"}.get(row[3], row[3]), *row[4:]] for row in ROWS],
                               header=ENGLISH))
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"rows": 4, "households_created": 3, "residents_created": 4, "opening_points_posted": 150,
                            "opening_balances_posted": 2, "errors": []}
    assert roster(app) == EXPECTED
    verify_ok(runner)


def test_a_blank_row_keeps_the_row_numbers_of_the_spreadsheet(committee, app):
    rows = [ROWS[0], ["", "", "", "", "", "", "", ""], ["王家", "幸福路2号", "2", "紫", "王五", "", "", ""]]
    for body, kind in ((as_csv(rows), "text/csv"), (as_xlsx(rows), XLSX)):
        r = post(committee, body, content_type=kind)
        assert r.status_code == 422, r.get_json()
        assert [(e["row"], e["column"]) for e in r.get_json()["errors"]] == [(4, "标签")]


# --- dry run, errors, all or nothing --------------------------------------------------------------------

def test_a_dry_run_counts_and_writes_nothing(committee, app):
    committee.headers("committee")  # logged in first (a token and its audit entry)
    before = counts(app)
    r = post(committee, as_csv(ROWS), query="&dry_run=true")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["households_created"] == 3 and r.get_json()["opening_points_posted"] == 150
    assert counts(app) == before


def test_one_wrong_row_refuses_the_whole_file_with_row_and_column(committee, app):
    rows = [
        ROWS[0],                                                                  # row 2: fine
        ["张家", "幸福路1号", "1", "绿", "李四", "13800000001", "1958", ""],      # 3: the same phone as row 2
        ["王家", "幸福路2号", "2", "紫", "王五", "12ab", "1850", "-5"],           # 4: colour, phone, year, points
        ["", "幸福路9号", "", "", "", "", "", ""],                                # 5: no household, no name
        ["钱家", "幸福路4号", "3", "黄", "钱七", "", "19五六", "2000000"],        # 6: not a year; too many points
        ["王家", "幸福路2号", "5", "红", "王八", "", "", ""],                     # 7: row 4 gives another grid
        ["孙家", "x" * 301, "", "", "孙九", "", "", ""],                          # 8: address too long
    ]
    committee.headers("committee")
    before = counts(app)
    for dry_run in ("&dry_run=true", ""):
        r = post(committee, as_csv(rows), query=dry_run)
        assert r.status_code == 422, r.get_json()
        body = r.get_json()
        assert body["error"] == "import_invalid" and r.mimetype == "application/problem+json"
        found = {(e["row"], e["column"]) for e in body["errors"]}
        assert found == {(3, "手机"), (4, "标签"), (4, "手机"), (4, "出生年份"), (4, "期初积分"),
                         (5, "户名"), (5, "姓名"), (6, "出生年份"), (6, "期初积分"), (8, "地址")}, body["errors"]
        assert all(e["message"] for e in body["errors"])
        assert body["rows"] == 7 and set(body) >= {"households_created", "residents_created", "opening_points_posted"}
    assert counts(app) == before


def test_conflicting_grid_or_opening_points_within_a_household_are_errors(committee):
    rows = [ROWS[2], ["王家", "幸福路2号", "5", "红", "王八", "", "", ""],
            ["王家", "幸福路2号", "", "", "王九", "", "", "40"]]
    r = post(committee, as_csv(rows))
    assert r.status_code == 422
    assert [(e["row"], e["column"]) for e in r.get_json()["errors"]] == [(3, "网格"), (4, "期初积分")]


def test_the_header_is_checked(committee):
    r = post(committee, as_csv(ROWS, header=["户名", "住址", "网格", "标签", "名字", "手机", "出生年份", "期初积分"]))
    assert r.status_code == 422
    assert {(e["row"], e["column"]) for e in r.get_json()["errors"]} == {(1, "住址"), (1, "名字"), (1, "姓名")}
    r = post(committee, "户名,户名,姓名\n张家,张家,张三\n".encode())
    assert [(e["row"], e["column"]) for e in r.get_json()["errors"]] == [(1, "户名")]


def test_a_file_that_is_not_a_roster_is_refused_in_words(committee):
    for body in (b"", b"\xff\xfe\x00\x00\x81", b"PK\x03\x04 not really a workbook"):
        r = post(committee, body)
        assert r.status_code == 422, body
        [error] = r.get_json()["errors"]
        assert error["row"] is None and error["message"]


def test_a_phone_of_another_household_is_refused(committee, app):
    world = committee
    other = world.household(name="李家")
    world.resident(other, "李大", phone="13800000002")
    r = post(world, as_csv(ROWS))
    assert r.status_code == 422
    [error] = r.get_json()["errors"]
    assert (error["row"], error["column"]) == (3, "手机") and "李大" in error["message"]


# --- importing again ------------------------------------------------------------------------------------

def test_the_same_file_again_creates_nothing_and_posts_no_second_opening_balance(committee, app, runner):
    world = committee
    assert post(world, as_csv(ROWS)).status_code == 201
    first = counts(app)
    for body, kind in ((as_csv(ROWS), "text/csv"), (as_xlsx(ROWS), XLSX),
                       (as_csv(ROWS, encoding="gb18030"), "text/csv")):
        r = post(world, body, content_type=kind)
        assert r.status_code == 201, r.get_json()
        assert r.get_json() == {"rows": 4, "households_created": 0, "residents_created": 0, "opening_points_posted": 0,
                                "opening_balances_posted": 0, "errors": []}
    # Only the audit log grew (one entry per import).
    assert {k: v for k, v in counts(app).items() if k != "audit_log"} == \
        {k: v for k, v in first.items() if k != "audit_log"}
    assert roster(app) == EXPECTED
    assert len(opening_transactions(app)) == 2
    verify_ok(runner)


def test_a_longer_roster_adds_only_what_is_new(committee, app):
    world = committee
    assert post(world, as_csv(ROWS)).status_code == 201
    more = [*ROWS,
            ["王家", "幸福路2号", "2", "红", "王小五", "13900000009", "2015", "30"],  # a new member; the same 30
            ["周家", "幸福路5号", "4", "黄", "周十", "", "1970", "15"]]              # a new household
    r = post(world, as_csv(more))
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"rows": 6, "households_created": 1, "residents_created": 2,
                                             "opening_points_posted": 15, "opening_balances_posted": 1, "errors": []}
    found = roster(app)
    assert found["王家"][3] == [("王五", None, 1940), ("王小五", "13900000009", 2015)] and found["王家"][4] == 30
    assert found["周家"] == ("幸福路5号", "4", "yellow", [("周十", None, 1970)], 15)


def test_an_opening_balance_is_posted_once_per_household_ever(committee, app, runner):
    world = committee
    assert post(world, as_csv(ROWS)).status_code == 201
    # The household spends its points; importing the file again does not give them back.
    hid = _household_id(app, "张家")
    _spend(app, hid, 100)
    assert post(world, as_csv(ROWS)).get_json()["opening_points_posted"] == 0
    assert world.balance(accounts.household_points(hid)) == 20
    # Another opening figure for the same household is refused, not posted on top.
    changed = [[*ROWS[0][:7], "500"], *ROWS[1:]]
    r = post(world, as_csv(changed))
    assert r.status_code == 422
    assert [(e["row"], e["column"]) for e in r.get_json()["errors"]] == [(2, "期初积分")]
    # A household without an opening balance may get one by a later file, once.
    later = [*ROWS[:3], [*ROWS[3][:7], "8"]]
    assert post(world, as_csv(later)).get_json()["opening_points_posted"] == 8
    assert post(world, as_csv(later)).get_json()["opening_points_posted"] == 0
    keys = sorted(key for _id, key, _ref in opening_transactions(app))
    assert keys == sorted(f"opening_balance:household:{_household_id(app, n)}" for n in ("张家", "王家", "赵家"))
    verify_ok(runner)


def test_opening_balances_come_from_the_communitys_opening_issuance_account(committee, app):
    import ledger
    from ledger.models import Account, Posting, Transaction
    from timebank.core.extensions import db

    data = as_csv(ROWS)
    assert post(committee, data).status_code == 201
    from timebank.people.operations import community_by_code

    with app.app_context():
        cid = community_by_code("hongxing").id
        legs = db.session.execute(
            select(Transaction.reference, Account.code, Posting.amount)
            .join(Posting, Posting.transaction_id == Transaction.id).join(Account, Account.id == Posting.account_id)
            .where(Transaction.kind == "opening_balance").order_by(Transaction.id, Posting.amount)).all()
        source = accounts.opening_points(cid)
        assert ledger.balance(db.session, source) == -150
    reference = "import:" + hashlib.sha256(data).hexdigest()[:16]
    assert [(ref, code) for ref, code, _amount in legs] == [
        (reference, source), (reference, accounts.household_points(_household_id(app, "张家"))),
        (reference, source), (reference, accounts.household_points(_household_id(app, "王家")))]


# --- who, limits, idempotency, the audit log ------------------------------------------------------------

def test_only_the_committee_of_the_community_imports(committee, app):
    world = committee
    world.user("grid", "grid_worker")
    world.user("super", "supervisor")
    world.user("clerk", "clerk")
    world.community("other", "别的社区")
    world.user("stranger", "committee", community_code="other")
    for user in ("grid", "super", "clerk", "stranger"):
        world.headers(user)
    before = counts(app)
    for user in ("grid", "super", "clerk", "stranger"):
        for dry_run in ("", "&dry_run=true"):
            r = post(world, as_csv(ROWS), user=user, query=dry_run)
            assert r.status_code == 403, (user, r.get_json())
    assert counts(app) == before
    assert post(world, as_csv(ROWS), user="admin").status_code == 201
    r = post(world, as_csv(ROWS), user="admin", url="/api/v1/imports/households?community_code=nowhere")
    assert r.status_code == 404


def test_the_upload_is_bounded_in_bytes_and_rows(committee, app):
    world = committee
    app.config.update(MAX_CONTENT_LENGTH=1000, TIMEBANK_IMPORT_MAX_BYTES=4000, TIMEBANK_IMPORT_MAX_ROWS=30)
    rows = [[f"户{i}", f"路{i}号", "1", "绿", f"人{i}", f"1390000{i:04d}", "1960", ""] for i in range(30)]
    body = as_csv(rows)
    assert 1000 < len(body) < 4000  # more than the app's limit for other requests, within the import's
    assert post(world, body, query="&dry_run=true").status_code == 200
    r = post(world, as_csv(rows + [["户x", "路", "", "", "人x", "", "", ""]]), query="&dry_run=true")
    assert r.status_code == 422 and r.get_json()["errors"][0]["row"] is None
    big = body + b"\n" * 3000
    r = post(world, big)
    assert r.status_code == 413 and r.get_json()["error"] == "payload_too_large"
    r = world.client.post(URL, data={"file": (io.BytesIO(big), "big.csv")}, content_type="multipart/form-data",
                          headers=world.headers("committee"))
    assert r.status_code == 413


def test_other_media_types_are_refused(committee):
    r = committee.call("POST", URL, "committee", json={"rows": []})
    assert r.status_code == 415 and r.get_json()["error"] == "unsupported_media_type"
    r = committee.client.post(URL, data={"other": (io.BytesIO(as_csv(ROWS)), "a.csv")},
                              content_type="multipart/form-data", headers=committee.headers("committee"))
    assert r.status_code == 422


def test_an_idempotency_key_replays_the_first_answer(committee, app):
    world = committee
    r = post(world, as_csv(ROWS), **{"Idempotency-Key": "roster-1"})
    assert r.status_code == 201 and r.get_json()["households_created"] == 3
    again = post(world, as_csv(ROWS), **{"Idempotency-Key": "roster-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == r.get_json()
    other = post(world, as_csv(ROWS[:2]), **{"Idempotency-Key": "roster-1"})
    assert other.status_code == 422 and other.get_json()["error"] == "idempotency_key_reused"
    dry = post(world, as_csv(ROWS), query="&dry_run=true", **{"Idempotency-Key": "roster-1"})
    assert dry.status_code == 422 and dry.get_json()["error"] == "idempotency_key_reused"


def test_the_import_is_one_audit_entry_with_the_counts_and_the_files_hash(committee, app):
    world = committee
    data = as_csv(ROWS)
    assert post(world, data, query="&dry_run=true").status_code == 200
    assert post(world, data).status_code == 201
    r = world.call("GET", "/api/v1/audit-log?action=roster.import", "admin")
    [entry] = r.get_json()["items"]
    assert entry["actor"] == "committee"
    assert entry["details"] | {"via": "api"} == {
        "via": "api", "file_sha256": hashlib.sha256(data).hexdigest(), "rows": 4, "households_created": 3,
        "residents_created": 4, "opening_points_posted": 150, "opening_balances_posted": 2}


# --- the page ------------------------------------------------------------------------------------------

def form_key(response) -> str:
    return re.search(r'name="form_key" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def test_the_page_checks_shows_and_imports_exactly_the_checked_file(committee, app, runner):
    client = page_login(app, "committee")
    home = client.get("/").get_data(as_text=True)
    assert "/committee/import" in home
    page = client.get("/committee/import")
    assert page.status_code == 200 and "roster-template" not in page.get_data(as_text=True)
    data = as_xlsx(ROWS)
    before = counts(app)
    r = client.post("/committee/import", data={"action": "check", "form_key": form_key(page),
                                               "file": (io.BytesIO(data), "花名册.xlsx")},
                    content_type="multipart/form-data")
    assert r.status_code == 302
    digest = hashlib.sha256(data).hexdigest()
    assert r.headers["Location"].endswith(f"/committee/import?file={digest}")
    check = client.get(r.headers["Location"])
    html = check.get_data(as_text=True)
    assert check.status_code == 200
    assert re.search(r'id="count-households">3<', html) and re.search(r'id="count-residents">4<', html)
    assert re.search(r'id="count-points">150<', html) and 'id="import-confirm"' in html
    assert html.count('<tr data-household=') == 3 and "张三、李四" in html
    # The check wrote nothing but the form's one-time key.
    assert {k: v for k, v in counts(app).items() if k != "idempotency_records"} == \
        {k: v for k, v in before.items() if k != "idempotency_records"}
    # The confirmation names the checked file by its hash; the kept file is imported.
    confirm = {"action": "confirm", "file": digest, "form_key": form_key(check)}
    done = client.post("/committee/import", data=confirm)
    assert done.status_code == 302 and done.headers["Location"].endswith("/committee/households")
    assert roster(app) == EXPECTED
    assert "已导入" in client.get(done.headers["Location"]).get_data(as_text=True)
    # The same form again: done once.
    again = client.post("/committee/import", data=confirm)
    assert again.status_code == 302 and roster(app) == EXPECTED and len(opening_transactions(app)) == 2
    # A hash whose file was not checked here imports nothing.
    other = client.get("/committee/import")
    r = client.post("/committee/import", data={"action": "confirm", "file": "0" * 64, "form_key": form_key(other)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/committee/import")
    verify_ok(runner)


def test_the_page_shows_the_errors_by_row_and_column_and_offers_no_confirmation(committee, app):
    client = page_login(app, "committee")
    page = client.get("/committee/import")
    rows = [ROWS[0], ["王家", "幸福路2号", "2", "紫", "王五", "", "", ""]]
    r = client.post("/committee/import", data={"action": "check", "form_key": form_key(page),
                                               "file": (io.BytesIO(as_csv(rows, encoding="gb18030")), "a.csv")},
                    content_type="multipart/form-data")
    html = client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'data-row="3" data-column="标签"' in html and 'id="import-confirm"' not in html
    # Confirming it anyway (a hand-made form) imports nothing.
    digest = re.search(r"file=([0-9a-f]{64})", r.headers["Location"]).group(1)
    before = counts(app)
    r = client.post("/committee/import", data={"action": "confirm", "file": digest, "form_key": "x" * 20})
    assert r.status_code == 302
    assert {k: v for k, v in counts(app).items() if k != "idempotency_records"} == \
        {k: v for k, v in before.items() if k != "idempotency_records"}


def test_grid_workers_and_supervisors_do_not_get_the_page(committee, app):
    committee.user("grid", "grid_worker")
    committee.user("super", "supervisor")
    for user in ("grid", "super"):
        client = page_login(app, user)
        assert client.get("/committee/import").status_code == 403
        assert client.get("/committee/import/template.csv").status_code == 403
        assert "/committee/import" not in client.get("/").get_data(as_text=True)


def test_the_templates_have_the_chinese_headers_and_an_example_row_that_imports(committee, app):
    client = page_login(app, "committee")
    for path, kind in (("/committee/import/template.csv", "text/csv"), ("/committee/import/template.xlsx", XLSX)):
        r = client.get(path)
        assert r.status_code == 200 and r.mimetype == kind
        data = r.get_data()
        if kind == "text/csv":
            assert data.startswith(b"\xef\xbb\xbf") and data[3:].decode().splitlines()[0] == ",".join(HEADER)
        else:
            sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
            assert [c for c in next(sheet.iter_rows(values_only=True))] == HEADER
        r = post(committee, data, content_type=kind, query="&dry_run=true")
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["rows"] == 1 and r.get_json()["households_created"] == 1


# --- helpers --------------------------------------------------------------------------------------------

def _household_id(app, name):
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        return db.session.execute(select(Household.id).where(Household.name == name)).scalar_one()


def _spend(app, household_id, points):
    import ledger
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        community_id = db.session.get(Household, household_id).community_id
        ledger.post(db.session, [ledger.Leg(accounts.household_points(household_id), -points),
                                 ledger.Leg(accounts.supermarket_points(community_id), points)],
                    kind="redemption", memo="test", actor="test")
        db.session.commit()
