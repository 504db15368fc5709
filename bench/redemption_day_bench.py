"""Redemption day (兑换日): 1,000 households come to the love supermarket within a few hours.

Prepares a throw-away instance (1,000 households, one resident each with a login, points, eight
goods with stock, several clerks), starts ``timebank serve --workers 2`` and plays the queue as fast
as the tills can go, with wrk (Debian's package): one wrk thread and one connection per till, each
serving its share of the households one after another. Half the
households show their household card (``member_code``), half show the phone's pay code (the
resident's phone asks ``GET /api/v1/me/pay-code`` first, then the clerk scans it). Each basket has
1-3 lines (seeded random goods, 1-2 units each); every sale carries an ``Idempotency-Key``.

Afterwards, with the server stopped, it checks the database: every acknowledged (201) redemption
exists with the ledger transaction, lines and stock movements its answer named; there is no
redemption that was not acknowledged; ``timebank verify`` exits 0 (hash chain, balances, stock).

Prints the figures and, last, whether every acknowledged redemption is in the database and the
ledger verifies.
Sale latencies are timed by the till's script from request to answer (pay-code fetches not
counted); the server's CPU per sale is read from /proc.
Usage: python bench/redemption_day_bench.py [--households N] [--tills T] [--seed S]
SQLite by default; PostgreSQL via TIMEBANK_DATABASE_URL (a dedicated database whose name contains
"bench"; it is wiped).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile

import benchlib

TILLS_LUA = """
CLERKS = {%(clerks)s}
BASKETS = {%(baskets)s}

-- Till tid serves baskets tid, tid + THREADS, ... one after another on its one connection: the
-- resident's phone fetches a pay code first when the basket is paid by phone.
function on_init()
  mine = {}
  for k = tid, #BASKETS, THREADS do mine[#mine + 1] = BASKETS[k] end
  pos, phase, pay, started = 1, nil, nil, 0
  own_latencies, refused = {}, 0
end

local function advance()
  pay = nil
  pos = pos + 1
  if pos > #mine then finish() end
end

function request()
  if probe then probe = false; return wrk.format("GET", "/healthz") end
  local b = mine[pos]
  if sent == 0 then first = now() end
  sent = sent + 1
  if b[3] and not pay then
    phase = "pay"
    return wrk.format("GET", "/api/v1/me/pay-code", {["Authorization"] = "Bearer " .. b[4]})
  end
  phase = "sale"
  local who = pay and string.format('"pay_code": "%%s"', pay) or string.format('"member_code": "%%s"', b[2])
  started = now()
  return wrk.format("POST", "/api/v1/redemptions",
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. CLERKS[tid],
                     ["Idempotency-Key"] = "day-" .. b[1]},
                    "{" .. who .. ', "lines": ' .. b[5] .. "}")
end

function response(status, headers, body)
  if phase == "pay" then
    if status == 200 then pay = string.match(body, '"pay_code"%%s*:%%s*"([^"]+)"') end
    if not pay then refused = refused + 1; advance() end
  else
    own_latencies[#own_latencies + 1] = now() - started
    record(status, body)
    advance()
  end
end
"""


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

    benchlib.need_wrk()
    print(benchlib.machine())
    print(benchlib.load_average())
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households, points=500, goods=8, stock=100_000,
                                     clerks=args.tills, resident_tokens=True)
        instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; tills (clerk threads): {args.tills}; "
              f"households: {args.households}")
        baskets = []
        for n, household in enumerate(shop.households):
            goods = rng.sample(shop.item_ids, rng.randint(1, 3))
            baskets.append((n, household, rng.random() < 0.5, [{"item_id": g, "quantity": rng.randint(1, 2)}
                                                                for g in goods]))
        lua = TILLS_LUA % {
            "clerks": ", ".join(benchlib.lua_string(t) for t in shop.clerk_tokens[:args.tills]),
            "baskets": ", ".join(
                f"{{{n}, {benchlib.lua_string(h[1])}, {'true' if phone else 'false'}, {benchlib.lua_string(h[4])}, "
                f"{benchlib.lua_string(json.dumps(lines))}}}" for n, h, phone, lines in baskets)}
        day = benchlib.run_wrk(instance, "redemption day", lua, threads=args.tills, connections=args.tills,
                               keep_answers=True, max_seconds=args.max_seconds)
        instance.stop()
        acknowledged = {}
        for status, data in day.answers:
            if status == 201:
                answer = json.loads(data)
                acknowledged[answer["id"]] = answer
        counts = check(instance, acknowledged)
    statuses, latencies, seconds = day.statuses, day.own_latencies, day.seconds
    failures = day.refused + sum(v for k, v in day.errors.items() if k != "status")
    done = len(latencies)
    print(f"redemptions: {done} in {seconds:.1f} s = {done / seconds:,.1f}/s (pay-code fetches not counted); "
          f"p50 {benchlib.percentile(latencies, 50) * 1000:.0f} ms, "
          f"p99 {benchlib.percentile(latencies, 99) * 1000:.0f} ms; "
          f"statuses {statuses}; socket errors and refused pay codes {failures}; "
          f"server CPU {day.server_cpu / max(done, 1) * 1000:.2f} ms per sale (its pay-code fetch included)")
    print(f"database: {counts}")
    ok = (statuses == {201: args.households} and not failures and counts["missing"] == 0
          and counts["mismatched"] == 0 and counts["not_acknowledged_but_present"] == 0
          and counts["redemptions_in_db"] == args.households and counts["timebank_verify_exit"] == 0)
    print(f"target: all {args.households} redemptions acknowledged and in the database, none extra, "
          f"timebank verify exits 0: {'met' if ok else 'NOT met'} "
          f"({done / seconds:,.1f} redemptions/s, p99 {benchlib.percentile(latencies, 99) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
