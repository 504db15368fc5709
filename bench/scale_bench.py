"""Reports and exports as the ledger grows: the monthly report and the ledger CSV export at 10k, 100k
and (``--full``) 1M transactions.

The ledger is built through ``ledger.post`` on a Core connection (balance checks, hash chain and
triggers all run), many transactions per database transaction, for one community of ``--households``
households with one resident each, over 24 months: grants from the issuance accounts (as claims
post), purchases at the supermarket, returns, and time-bank minutes between residents.

At each size it measures, on the same database:

- the ``month_totals`` job (the month-end totals the report starts from): seconds;
- the monthly report (the JSON's figures, as ``GET /api/v1/reports/monthly`` computes them) for the
  newest month, a month in the middle and a month after the last transaction (empty): seconds;
- the ledger CSV export of the whole community, fetched from ``timebank serve`` (gunicorn, the
  production worker timeout) by ``curl``: seconds, bytes, and whether the file is whole (its row
  count equals the postings in the ledger and it ends with the export's trailer row);
- with ``--background xlsx`` (or ``csv``): the same export made in the background (``POST
  /api/v1/ledger/transactions/exports``, its own process), polled once a second until done: seconds,
  rows written against rows expected, and how many progress figures the polls saw;
- ``timebank verify``-equivalent ``ledger.verify``: seconds;
- ``timebank backup`` (SQLite's online backup API, or ``pg_dump -Fc`` on PostgreSQL): seconds, the
  start of the command (a few seconds of imports) included, and the backup's size.

Inclusion proofs at 1M are timed by ``bench/proof_bench.py --full`` (``make bench-1m`` runs both).

Targets at 1M transactions (issue "Scale to a sub-district"): monthly report < 0.5 s; the export of
every row complete in < 90 s. Prints the figures and, last, whether the targets were met.
Usage: python bench/scale_bench.py [--full] [--sizes 10000,100000] [--households 2000]
SQLite by default; PostgreSQL via TIMEBANK_DATABASE_URL (a dedicated database whose name contains
"bench"; it is wiped).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta

import benchlib

REPORT_TARGET_S = 0.5
EXPORT_TARGET_S = 90.0
BATCH = 5000
#: The ledger spans these months; the clock of the build walks through them evenly.
FIRST = datetime(2024, 1, 1)
MONTHS = 24


def setup(app, households: int) -> dict:
    from timebank.core.extensions import db
    from timebank.people import operations as people

    with app.app_context():
        community = people.create_community("bench", "基准社区")
        ids, residents = [], []
        for n in range(households):
            household = people.create_household(community, f"户{n}", f"路{n}号", str(n % 20 + 1))
            resident = people.create_resident(household, f"居民{n}")
            ids.append(household.id)
            residents.append(resident.id)
        db.session.commit()
        cid = community.id
    # Give the benchmark its user for the HTTP export.
    with app.app_context():
        people.create_user("bench-committee", "bench-password-1", "committee", community_id=cid,
                           **({"phone": "13900000001"} if _takes_phone() else {}))
        db.session.commit()
    return {"community_id": cid, "households": ids, "residents": residents}


def _takes_phone() -> bool:
    import inspect

    from timebank.people import operations as people

    return "phone" in inspect.signature(people.create_user).parameters


def grow(engine, world: dict, start: int, end: int, total: int, rng: random.Random) -> float:
    """Post transactions ``start+1 .. end`` of ``total`` (the clock walks the 24 months over ``total``)."""
    import ledger
    from ledger import Leg
    from timebank.core import accounts

    cid = world["community_id"]
    households, residents = world["households"], world["residents"]
    shop = accounts.supermarket_points(cid)
    span = timedelta(days=30.4 * MONTHS)
    began = time.perf_counter()
    with engine.connect() as conn:
        n = start
        while n < end:
            with conn.begin():
                for _ in range(min(BATCH, end - n)):
                    n += 1
                    now = FIRST + span * (n / total)
                    h = households[rng.randrange(len(households))]
                    wallet = accounts.household_points(h)
                    kind = n % 10
                    try:
                        if kind < 5:
                            category = accounts.CATEGORIES[n % len(accounts.CATEGORIES)]
                            ledger.post(conn, [Leg(accounts.issuance_points(cid, category), -20), Leg(wallet, 20)],
                                        kind="claim", category=category, memo=f"claim {n}", actor="bench",
                                        reference=f"claim:{n}", now=now)
                        elif kind < 8:
                            ledger.post(conn, [Leg(wallet, -15), Leg(shop, 15)], kind="redemption",
                                        memo=f"receipt {n}", actor="bench", reference=f"redemption:{n}", now=now)
                        elif kind < 9:
                            ledger.post(conn, [Leg(shop, -5), Leg(wallet, 5)], kind="return",
                                        memo=f"return {n}", actor="bench", now=now)
                        else:
                            a = residents[rng.randrange(len(residents))]
                            b = residents[rng.randrange(len(residents))]
                            if a == b:
                                b = residents[(residents.index(a) + 1) % len(residents)]
                            ledger.post(conn, [Leg(accounts.issuance_minutes(cid), -60),
                                               Leg(accounts.resident_minutes(a), 60)],
                                        kind="help", memo=f"help {n}", actor="bench", now=now)
                    except ledger.InsufficientFunds:
                        ledger.post(conn, [Leg(accounts.issuance_points(cid, "volunteer"), -50), Leg(wallet, 50)],
                                    kind="claim", category="volunteer", memo=f"claim {n}", actor="bench", now=now)
    return time.perf_counter() - began


def _transactions(app) -> int:
    from sqlalchemy import func, select

    from ledger.models import Transaction
    from timebank.core.extensions import db

    count = db.session.execute(select(func.count()).select_from(Transaction)).scalar_one()
    db.session.rollback()
    return int(count)


def _world(app) -> dict:
    """The households and residents of a kept instance."""
    from sqlalchemy import select

    from timebank.core.extensions import db
    from timebank.people.models import Household, Resident

    with app.app_context():
        households = list(db.session.execute(select(Household.id).order_by(Household.id)).scalars())
        residents = list(db.session.execute(select(Resident.id).order_by(Resident.id)).scalars())
        return {"community_id": 1, "households": households, "residents": residents}


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def time_report(app, month: str) -> tuple[float, dict]:
    from timebank.core.extensions import db
    from timebank.people.models import Community
    from timebank.reports.operations import monthly_report

    with app.app_context():
        community = db.session.get(Community, 1)
        db.session.rollback()
        t0 = time.perf_counter()
        report = monthly_report(community, month)
        seconds = time.perf_counter() - t0
        db.session.rollback()
    return seconds, report


def postings_of_community(app) -> int:
    from sqlalchemy import func, select

    from ledger.models import Posting, Transaction
    from timebank.audit.ledger_browser import ledger_query
    from timebank.core.extensions import db

    with app.app_context():
        ids = ledger_query(community_id=1).with_only_columns(Transaction.id)
        count = db.session.execute(select(func.count()).select_from(Posting)
                                   .where(Posting.transaction_id.in_(ids))).scalar_one()
        db.session.rollback()
    return int(count)


def analyze_like_autovacuum(app) -> None:
    """Gather PostgreSQL's statistics when its autovacuum is off, as autovacuum would have on a
    deployment (it analyzes a table once a tenth of it has changed). Without any statistics the
    planner guessed 20 owners for a community of 4,008 accounts and the whole export took 93 s
    instead of 28 s (docs/performance.md); that is a server set up for tests, not a ledger."""
    from sqlalchemy import text

    from timebank.core.extensions import db

    with app.app_context():
        with db.engine.connect() as conn:
            if conn.execute(text("SHOW autovacuum")).scalar() == "on":
                return
            t0 = time.perf_counter()
            conn.execute(text("ANALYZE"))
            conn.commit()
    print(f"  PostgreSQL's autovacuum is off here: ANALYZE as it would have run, {time.perf_counter() - t0:.1f} s")


def time_export(instance: benchlib.Instance, port: int, folder: str, expected_rows: int) -> dict:
    """The whole community's ledger as CSV over HTTP, fetched by curl; checks the file is whole."""
    status, body = benchlib.request_once(port, "POST", "/api/v1/auth/token",
                                         {"username": "bench-committee", "password": "bench-password-1"})
    import json

    token = json.loads(body).get("access_token") if status == 200 else None
    if not token:
        raise SystemExit(f"login failed: {status} {body}")
    out = os.path.join(folder, "export.csv")
    t0 = time.perf_counter()
    result = subprocess.run(
        ["curl", "-sS", "--fail", "-o", out, "-w", "%{http_code} %{size_download}",
         "-H", f"Authorization: Bearer {token}",
         f"http://{benchlib.HOST}:{port}/api/v1/ledger/transactions/export?community_code=bench&format=csv"],
        capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    rows, trailer = 0, None
    with open(out, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            if row and row[0].startswith("#"):
                trailer = row
                continue
            rows += 1
    whole = result.returncode == 0 and rows == expected_rows and trailer is not None
    return {"seconds": seconds, "bytes": os.path.getsize(out), "rows": rows, "expected": expected_rows,
            "curl": (result.stdout + " " + result.stderr).strip(), "whole": whole}


def time_background_export(port: int, fmt: str, expected_rows: int, limit_s: float = 1800) -> dict:
    """The whole community's ledger exported in the background, polled once a second until done."""
    import json

    status, body = benchlib.request_once(port, "POST", "/api/v1/auth/token",
                                         {"username": "bench-committee", "password": "bench-password-1"})
    token = json.loads(body)["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    status, body = benchlib.request_once(port, "POST", "/api/v1/ledger/transactions/exports",
                                         {"community_code": "bench", "format": fmt}, headers=auth)
    if status != 202:
        raise SystemExit(f"background export refused: {status} {body}")
    run = json.loads(body)
    progress = set()
    while time.perf_counter() - t0 < limit_s:
        time.sleep(1)
        status, body = benchlib.request_once(port, "GET", f"/api/v1/ledger/transactions/exports/{run['id']}",
                                             headers=auth)
        run = json.loads(body)
        if run["status"] == "running":
            progress.add(run["rows_written"])
        if run["status"] not in ("queued", "running"):
            break
    seconds = time.perf_counter() - t0
    whole = run["status"] == "done" and run["rows_written"] == expected_rows == run["rows_expected"]
    return {"seconds": seconds, "status": run["status"], "rows": run["rows_written"], "expected": expected_rows,
            "bytes": run.get("size_bytes") or 0, "progress_seen": len(progress), "whole": whole,
            "error": run.get("error")}


def time_backup(instance: benchlib.Instance, folder: str) -> dict:
    """``timebank backup`` of the whole database into ``folder``: seconds, bytes, and whether it exited 0."""
    target = os.path.join(folder, "backup.bin")
    if os.path.exists(target):
        os.unlink(target)
    t0 = time.perf_counter()
    result = subprocess.run([str(benchlib.BIN / "timebank"), "backup", target], env=instance.env(),
                            capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    size = os.path.getsize(target) if os.path.exists(target) else 0
    if os.path.exists(target):
        os.unlink(target)
    said = (result.stderr or result.stdout).strip().splitlines()
    return {"seconds": seconds, "bytes": size, "ok": result.returncode == 0, "error": said[-1] if said else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also 1,000,000 transactions")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes (default 10000,100000)")
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    parser.add_argument("--background", choices=("csv", "xlsx"), default=None,
                        help="also time the export made in the background, in this format")
    parser.add_argument("--folder", default=None,
                        help="keep the instance in this folder (on PostgreSQL: keep the database, named in the "
                             "folder); a later run with the same folder and sizes measures it again without "
                             "rebuilding")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [10_000, 100_000]
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    sizes.sort()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install -y curl)")

    from timebank.core.extensions import db

    print(benchlib.machine())
    rng = random.Random(args.seed)
    total = sizes[-1]
    results = []
    if args.folder is not None:
        os.makedirs(args.folder, exist_ok=True)
    with (tempfile.TemporaryDirectory() if args.folder is None else contextlib.nullcontext(args.folder)) as folder:
        # A kept PostgreSQL database is named in the folder by the run that built it.
        kept = os.path.join(folder, "postgresql-database")
        if args.database_url:
            reuse = args.folder is not None and os.path.exists(kept) and open(kept).read() == args.database_url
        else:
            reuse = args.folder is not None and os.path.exists(os.path.join(folder, "timebank.sqlite"))
        instance = benchlib.Instance(folder, args.database_url, keep=reuse)
        instance.init_db()
        app = instance.app()
        world = _world(app) if reuse else setup(app, args.households)
        print(f"database: {instance.dialect}; one community of {args.households:,} households; sizes: "
              f"{', '.join(f'{s:,}' for s in sizes)}; the ledger spans {MONTHS} months from {FIRST:%Y-%m}")
        built = 0
        for size in sizes:
            with app.app_context():
                have = _transactions(app)
                seconds = grow(db.engine, world, have, size, total, rng) if have < size else 0.0
            if args.database_url and args.folder is not None:
                with open(kept, "w") as named:
                    named.write(args.database_url)
            if seconds:
                print(f"built {built:,} -> {size:,} transactions in {seconds:.1f} s "
                      f"({(size - built) / seconds:,.0f}/s)")
            else:
                print(f"{size:,} transactions already in {folder}")
            built = size
            if instance.dialect == "postgresql":
                analyze_like_autovacuum(app)
            newest = month_of(FIRST + timedelta(days=30.4 * MONTHS) * (size / total) - timedelta(days=1))
            middle = month_of(FIRST + timedelta(days=30.4 * MONTHS) * (size / total / 2))
            empty = "2027-01"
            # The nightly job stores the month-end totals the report starts from (its first run
            # reads the whole history once; later runs one month).
            t0 = time.perf_counter()
            with app.app_context():
                from timebank.core.clock import month_bounds
                from timebank.reports.operations import keep_month_totals

                stored = keep_month_totals(month_bounds(month_of(FIRST + timedelta(days=30.4 * MONTHS)
                                                                 * (size / total)))[1])
                db.session.commit()
            job_seconds = time.perf_counter() - t0
            print(f"  month_totals job: {stored} month-ends stored in {job_seconds:.1f} s")
            figures = {}
            for label, month in (("newest", newest), ("middle", middle), ("empty", empty)):
                time_report(app, month)  # warm the page cache once
                seconds, report = time_report(app, month)
                figures[label] = (month, seconds, report["points"]["issued_total"])
            expected = postings_of_community(app)
            with instance:
                port = instance.start(workers=2)
                export = time_export(instance, port, folder, expected)
                background = time_background_export(port, args.background, expected) if args.background else None
            t0 = time.perf_counter()
            with app.app_context():
                import ledger

                ok = ledger.verify(db.session).ok
                db.session.rollback()
            verify_seconds = time.perf_counter() - t0
            backup = time_backup(instance, folder)
            results.append({"size": size, "reports": figures, "export": export, "verify": verify_seconds,
                            "verify_ok": ok, "backup": backup})
            print(f"{size:>9,} transactions: monthly report "
                  + ", ".join(f"{label} ({m}, {issued:,} issued) {s * 1000:,.0f} ms"
                              for label, (m, s, issued) in figures.items())
                  + f"; CSV export {export['rows']:,} of {export['expected']:,} posting rows, "
                  f"{export['bytes'] / 1e6:,.1f} MB in {export['seconds']:.1f} s "
                  f"({'whole' if export['whole'] else 'NOT WHOLE: ' + export['curl']}); "
                  f"verify {verify_seconds:.1f} s ({'ok' if ok else 'FAILED'}); "
                  f"backup {backup['seconds']:.1f} s, {backup['bytes'] / 1e6:,.1f} MB "
                  f"({'ok' if backup['ok'] else 'FAILED: ' + backup['error']})")
            if background is not None:
                print(f"  background {args.background.upper()} export: {background['status']}, "
                      f"{background['rows']:,} of {background['expected']:,} rows, "
                      f"{background['bytes'] / 1e6:,.1f} MB in {background['seconds']:.1f} s "
                      f"({'whole' if background['whole'] else 'NOT WHOLE: ' + str(background['error'])}); "
                      f"{background['progress_seen']} progress figures seen while running")
    last = results[-1]
    report_max = max(s for _, s, _ in last["reports"].values())
    report_ok = report_max < REPORT_TARGET_S
    export_ok = last["export"]["whole"] and last["export"]["seconds"] < EXPORT_TARGET_S
    print(f"backup at {last['size']:,} transactions: {last['backup']['seconds']:.1f} s, "
          f"{last['backup']['bytes'] / 1e6:,.1f} MB ({'ok' if last['backup']['ok'] else 'FAILED'})")
    print(f"target at {last['size']:,} transactions: monthly report < {REPORT_TARGET_S} s "
          f"({report_max * 1000:,.0f} ms: {'met' if report_ok else 'NOT met'}); whole CSV export < "
          f"{EXPORT_TARGET_S:.0f} s ({last['export']['seconds']:.1f} s: {'met' if export_ok else 'NOT met'})")


if __name__ == "__main__":
    main()
