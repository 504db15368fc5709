"""The roster import at a large community's size: 12,000 households, about 30,000 people.

Generates the roster (CSV in GB18030, as Excel on a Chinese Windows saves it, and XLSX; each for a
community of its own, with other phone numbers), then on a fresh database: the dry run, the import,
and the same file again (which creates nothing), each through the API
(``POST /api/v1/imports/households``) in-process, and the ledger's verify afterwards. Prints the
times: wall clock, and this process's CPU time, which other work on the machine disturbs less (on
PostgreSQL the server's own work is in the wall clock only). SQLite in a temporary folder always;
PostgreSQL too when ``TIMEBANK_DATABASE_URL`` (or the second argument) names one: it is wiped, and
its name must contain "bench".

Last line: whether the CSV import of the whole roster took less than the target (60 s) on every
database, with every count right and the ledger verified.

Usage: python bench/import_bench.py [HOUSEHOLDS] [postgresql+psycopg://.../tb_bench]
"""

from __future__ import annotations

import csv
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华玉兰凤英志强秀珍"
TARGET_SECONDS = 60
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ["户名", "地址", "网格", "标签", "姓名", "手机", "出生年份", "期初积分"]


def roster(households: int, seed: int = 7, phones: int = 13_000_000_000) -> list[list[str]]:
    """One row per person: 1 to 4 people per household (2.5 on average), a third with opening points."""
    rng = random.Random(seed)
    rows = [HEADER]
    phone = phones
    for h in range(households):
        surname = SURNAMES[h % len(SURNAMES)]
        name, address = f"{surname}家{h}", f"幸福路{h // 40 + 1}号{h % 40 + 1}室"
        grid, color = str(h % 24 + 1), rng.choice(["绿", "绿", "绿", "黄", "红"])
        opening = str(rng.randrange(1, 500)) if h % 3 == 0 else ""
        for p in range(rng.choice([1, 2, 2, 3, 3, 4])):
            phone += 1
            rows.append([name, address, grid, color, surname + rng.choice(GIVEN) + str(p),
                         str(phone) if p < 3 else "", str(rng.randrange(1930, 2020)), opening if p == 0 else ""])
    return rows


def as_csv(rows) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("gb18030")


def as_xlsx(rows) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("花名册")
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def run(uri: str, folder: str, files: dict[str, bytes]) -> float:
    """Each file's dry run, import and import again; returns the CSV import's wall-clock seconds."""
    from timebank import create_app
    from timebank.cli import init_db
    from timebank.core.extensions import db
    from timebank.people.operations import community_by_code, create_community, create_user

    app = create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": uri,
                      "TIMEBANK_CHEAP_PASSWORD_HASHING": True, "RATELIMIT_ENABLED": False})
    with app.app_context():
        init_db()
        for code in files:
            create_community(code, f"{code} 社区")
            create_user(f"boss-{code}", "bench-pass-123", "committee", community_id=community_by_code(code).id)
        db.session.commit()
    client = app.test_client()
    csv_import = 0.0
    for code, data in files.items():
        token = client.post("/api/v1/auth/token", json={"username": f"boss-{code}", "password": "bench-pass-123"})
        headers = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
        kind = "text/csv" if code == "csv" else XLSX
        url = f"/api/v1/imports/households?community_code={code}"
        for label, query, status in (("dry run", "&dry_run=true", 200), ("import", "", 201), ("again", "", 201)):
            start, cpu = time.perf_counter(), time.process_time()
            r = client.post(url + query, data=data, content_type=kind, headers=headers)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            body = r.get_json()
            if code == "csv" and label == "import":
                csv_import = elapsed
            assert r.status_code == status, (r.status_code, body.get("errors", body)[:5])
            print(f"  {code:5} {label:8} {elapsed:7.2f} s (CPU {cpu:6.2f} s)  rows {body['rows']},"
                  f" households {body['households_created']},"
                  f" residents {body['residents_created']}, opening balances {body['opening_balances_posted']}"
                  f" ({body['opening_points_posted']} points)", flush=True)
    with app.app_context():
        import ledger
        from timebank.core.database import reading

        start = time.perf_counter()
        with reading():
            report = ledger.verify(db.session)
        print(f"  ledger verify {time.perf_counter() - start:7.2f} s  ok={report.ok}", flush=True)
        assert report.ok
        db.session.remove()
        db.engine.dispose()
    return csv_import


def main() -> None:
    households = int(sys.argv[1]) if len(sys.argv) > 1 else 12_000
    rows = roster(households)
    start = time.perf_counter()
    files = {"csv": as_csv(rows)}
    csv_seconds = time.perf_counter() - start
    start = time.perf_counter()
    files["xlsx"] = as_xlsx(roster(households, phones=15_000_000_000))  # another community: other phones
    print(f"roster: {households} households, {len(rows) - 1} people; CSV (GB18030) {len(files['csv']) / 1e6:.1f} MB"
          f" in {csv_seconds:.2f} s, XLSX {len(files['xlsx']) / 1e6:.1f} MB in {time.perf_counter() - start:.2f} s")
    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite:")
        seconds["SQLite"] = run(f"sqlite:///{os.path.join(folder, 'bench.sqlite')}", folder, files)
    postgres = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("TIMEBANK_DATABASE_URL", "")
    if postgres.startswith("postgresql"):
        import benchlib

        benchlib.reset_postgres(postgres)
        with tempfile.TemporaryDirectory() as folder:
            print("PostgreSQL:")
            seconds["PostgreSQL"] = run(postgres, folder, files)
    met = all(s < TARGET_SECONDS for s in seconds.values())
    print(f"target: the CSV import of {households} households in less than {TARGET_SECONDS} s: "
          + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()) + (" — met" if met else " — MISSED"))


if __name__ == "__main__":
    main()
