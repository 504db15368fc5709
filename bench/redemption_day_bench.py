"""Redemption day (兑换日): 1,000 households come to the love supermarket within a few hours.

Prepares a throw-away instance (1,000 households, one resident each with a login, points, eight
goods with stock, several clerks), starts ``timebank serve --workers 2`` and plays the queue as fast
as the tills can go: several clerk threads, each serving households one after another. Half the
households show their household card (``member_code``), half show the phone's pay code (the
resident's phone asks ``GET /api/v1/me/pay-code`` first, then the clerk scans it). Each basket has
1-3 lines (seeded random goods, 1-2 units each); every sale carries an ``Idempotency-Key``.

Afterwards, with the server stopped, it checks the database: every acknowledged (201) redemption
exists with the ledger transaction, lines and stock movements its answer named; there is no
redemption that was not acknowledged; ``timebank verify`` exits 0 (hash chain, balances, stock).

Prints the figures and, last, whether every acknowledged redemption is in the database and the
ledger verifies.
Usage: python bench/redemption_day_bench.py [--households N] [--tills T] [--seed S]
SQLite by default; PostgreSQL via TIMEBANK_DATABASE_URL (a dedicated database whose name contains
"bench"; it is wiped).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import tempfile
import threading
import time

import benchlib


def check(instance: benchlib.Instance, acknowledged: dict[int, dict]) -> dict:
    from sqlalchemy import func, select

    from ledger.models import Transaction
    from timebank.core.extensions import db
    from timebank.shop.models import Redemption, RedemptionLine, StockMovement

    app = instance.app()
    with app.app_context():
        s = db.session
        rows = {r.id: r for r in s.scalars(select(Redemption))}
        lines = {}
        for line in s.scalars(select(RedemptionLine)):
            lines.setdefault(line.redemption_id, {})[line.item_id] = line.quantity
        moved = {}
        for m in s.scalars(select(StockMovement).where(StockMovement.reason == "redemption")):
            moved.setdefault(m.redemption_id, {})[m.item_id] = -m.quantity
        refs = dict(s.execute(select(Transaction.reference, Transaction.id)
                              .where(Transaction.kind == "redemption")).all())
        missing, wrong = [], []
        for rid, answer in acknowledged.items():
            row = rows.get(rid)
            if row is None:
                missing.append(rid)
                continue
            want = {line["item_id"]: line["quantity"] for line in answer["lines"]}
            if (row.transaction_id != answer["transaction_id"] or refs.get(f"redemption:{rid}") != row.transaction_id
                    or lines.get(rid) != want or moved.get(rid) != want or row.total_points != answer["total_points"]):
                wrong.append(rid)
        unacknowledged = sorted(set(rows) - set(acknowledged))
        out = {"redemptions_in_db": len(rows), "acknowledged": len(acknowledged), "missing": len(missing),
               "mismatched": len(wrong), "not_acknowledged_but_present": len(unacknowledged),
               "ledger_transactions": s.scalar(select(func.count()).select_from(Transaction))}
        s.remove()
        db.engine.dispose()
    verify = subprocess.run([str(benchlib.BIN / "timebank"), "verify"], env=instance.env(), capture_output=True,
                            text=True)
    out["timebank_verify_exit"] = verify.returncode
    out["timebank_verify"] = ((verify.stdout or verify.stderr).strip().splitlines()[0]
                              if (verify.stdout or verify.stderr) else "")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--tills", type=int, default=6, help="clerk threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20260302)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    args = parser.parse_args()

    print(benchlib.machine())
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households, points=500, goods=8, stock=100_000,
                                     clerks=args.tills, resident_tokens=True)
        port = instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; tills (clerk threads): {args.tills}; "
              f"households: {args.households}")
        baskets = []
        for n, household in enumerate(shop.households):
            goods = rng.sample(shop.item_ids, rng.randint(1, 3))
            baskets.append((n, household, rng.random() < 0.5, [{"item_id": g, "quantity": rng.randint(1, 2)}
                                                                for g in goods]))
        queue = list(reversed(baskets))
        lock = threading.Lock()
        acknowledged: dict[int, dict] = {}
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        failures: list[str] = []
        deadline = time.monotonic() + args.max_seconds

        def till(clerk_token: str):
            conn = http.client.HTTPConnection(benchlib.HOST, port, timeout=60)

            def call(method, path, token, body=None, headers=None):
                h = {"Authorization": f"Bearer {token}", **(headers or {})}
                payload = None
                if body is not None:
                    payload = json.dumps(body).encode()
                    h["Content-Type"] = "application/json"
                conn.request(method, path, body=payload, headers=h)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                return response.status, data

            while time.monotonic() < deadline:
                with lock:
                    if not queue:
                        break
                    n, household, by_phone, lines = queue.pop()
                try:
                    if by_phone:  # the resident's phone shows a fresh pay code
                        status, data = call("GET", "/api/v1/me/pay-code", household[4])
                        if status != 200:
                            failures.append(f"pay-code {status}")
                            continue
                        who = {"pay_code": json.loads(data)["pay_code"]}
                    else:
                        who = {"member_code": household[1]}
                    began = time.perf_counter()
                    status, data = call("POST", "/api/v1/redemptions", clerk_token, {**who, "lines": lines},
                                        {"Idempotency-Key": f"day-{n}"})
                    elapsed = time.perf_counter() - began
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    failures.append(repr(exc))
                    continue
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 201:
                        answer = json.loads(data)
                        acknowledged[answer["id"]] = answer
            conn.close()

        threads = [threading.Thread(target=till, args=(shop.clerk_tokens[i],)) for i in range(args.tills)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - began
        instance.stop()
        counts = check(instance, acknowledged)
    done = len(latencies)
    print(f"redemptions: {done} in {seconds:.1f} s = {done / seconds:,.1f}/s (pay-code fetches not counted); "
          f"p50 {benchlib.percentile(latencies, 50) * 1000:.0f} ms, "
          f"p99 {benchlib.percentile(latencies, 99) * 1000:.0f} ms; "
          f"statuses {statuses}; transport errors and refused pay codes {len(failures)}")
    print(f"database: {counts}")
    ok = (statuses == {201: args.households} and not failures and counts["missing"] == 0
          and counts["mismatched"] == 0 and counts["not_acknowledged_but_present"] == 0
          and counts["redemptions_in_db"] == args.households and counts["timebank_verify_exit"] == 0)
    print(f"target: all {args.households} redemptions acknowledged and in the database, none extra, "
          f"timebank verify exits 0: {'met' if ok else 'NOT met'} "
          f"({done / seconds:,.1f} redemptions/s, p99 {benchlib.percentile(latencies, 99) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
