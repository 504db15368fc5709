"""A burst of QR check-ins: 500 residents scan the code of one task at the same moment.

Prepares a throw-away instance (500 residents with logins and bearer tokens, one task with 600
slots whose rule posts points at once), starts ``timebank serve --workers 2``, then fires every
``POST /api/v1/checkins`` together from wrk (Debian's package; one connection per request, each
sending its one request as soon as it is connected), plus a second scan by the first 100 residents
(a double tap must give 200 with the same claim, not a second one). Afterwards it counts in the
database: 500 check-ins, 500 claims, one per resident, the ledger verifies.

It also prints the CPU time the server spent per check-in (gunicorn master and workers from /proc,
plus PostgreSQL's backends) against its CPU per ``GET /healthz`` in a short wrk run just before,
and, on SQLite, how long the disk takes to make a write durable: what sets the burst's rate
(docs/performance.md, "The check-in burst").

Prints the figures and, last, whether every check-in was recorded exactly once.
Usage: python bench/checkin_burst_bench.py [--residents N] [--repeats N] [--threads T]
SQLite by default; PostgreSQL via TIMEBANK_DATABASE_URL (a dedicated database whose name contains
"bench"; it is wiped).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import timedelta

import benchlib

BURST_LUA = """
TOKENS = {%(tokens)s}
BODY = %(body)s
TOTAL = %(total)d

-- Request i of the burst (0 .. TOTAL-1) is resident i %% #TOKENS's scan; thread tid sends
-- i = tid-1, tid-1+THREADS, ..., one per connection.
function on_init()
  local count = 0
  for i = tid - 1, TOTAL - 1, THREADS do count = count + 1 end
  bounded(count)
end

function next_request(n)
  local i = n * THREADS + tid - 1
  return wrk.format("POST", "/api/v1/checkins",
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. TOKENS[i %% #TOKENS + 1]},
                    BODY)
end
"""


def prepare_task(instance: benchlib.Instance, slots: int) -> tuple[int, str]:
    from timebank.core.clock import now
    from timebank.core.extensions import db
    from timebank.earning import operations as earning
    from timebank.earning import tasks
    from timebank.people import operations as people

    app = instance.app()
    with app.app_context():
        community = people.community_by_code("bench")
        committee = people.create_user("bench-committee", "bench-committee-pass", "committee",
                                       community_id=community.id)
        earning.create_rule(committee, community, "cleanup", "清扫楼道", "volunteer", 5, "auto")
        task = tasks.create_task(committee, community, "cleanup", "周六大扫除", now() - timedelta(hours=1),
                                 now() + timedelta(hours=3), slots)
        code = tasks.checkin_code(committee, task)
        db.session.commit()
        task_id, token = task.id, code["token"]
        db.session.remove()
        db.engine.dispose()
    return task_id, token


def count(instance: benchlib.Instance, task_id: int) -> dict:
    from sqlalchemy import distinct, func, select

    import ledger
    from timebank.core.extensions import db
    from timebank.earning.models import CheckIn, Claim

    app = instance.app()
    with app.app_context():
        s = db.session
        out = {
            "checkins": s.scalar(select(func.count()).select_from(CheckIn).where(CheckIn.task_id == task_id)),
            "checkin_residents": s.scalar(select(func.count(distinct(CheckIn.resident_id)))
                                          .where(CheckIn.task_id == task_id)),
            "claims": s.scalar(select(func.count()).select_from(Claim).where(Claim.task_id == task_id)),
            "claim_residents": s.scalar(select(func.count(distinct(Claim.resident_id)))
                                        .where(Claim.task_id == task_id)),
            "posted": s.scalar(select(func.count()).select_from(Claim)
                               .where(Claim.task_id == task_id, Claim.transaction_id.is_not(None))),
            "verify_ok": ledger.verify(s).ok,
        }
        s.remove()
        db.engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--residents", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=100, help="residents who scan twice")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    args = parser.parse_args()
    n, repeats = args.residents, min(args.repeats, args.residents)
    total = n + repeats
    benchlib.need_wrk()

    print(benchlib.machine())
    print(benchlib.load_average())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        if instance.dialect == "sqlite":
            print(benchlib.disk_flush(folder))
        instance.init_db()
        shop = benchlib.prepare_shop(instance, n, points=1, goods=1, stock=1, resident_tokens=True)
        task_id, token = prepare_task(instance, slots=n + 100)
        instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; residents: {n}; "
              f"second scans: {repeats}; task slots: {n + 100}; wrk: {args.threads} threads, {total} connections")
        health = benchlib.run_wrk(instance, "GET /healthz", "function next_request(n) return wrk.format('GET', "
                                  "'/healthz') end", threads=1, connections=2, seconds=2)
        lua = BURST_LUA % {"tokens": ", ".join(benchlib.lua_string(h[4]) for h in shop.households),
                           "body": benchlib.lua_string(json.dumps({"token": token})), "total": total}
        burst = benchlib.run_wrk(instance, "POST /api/v1/checkins burst", lua, threads=args.threads,
                                 connections=total, keep_answers=True, max_seconds=600, timeout=120)
        instance.stop()
        counts = count(instance, task_id)
    print(burst.line())
    claims_by_resident: dict[int, set[int]] = {}
    for status, data in burst.answers:
        if status in (200, 201):
            claim = json.loads(data)["claim"]
            claims_by_resident.setdefault(claim["resident_id"], set()).add(claim["id"])
    same_claim = all(len(ids) == 1 for ids in claims_by_resident.values()) and len(claims_by_resident) == n
    cpu = burst.cpu_per_request() + (burst.cpu_per_request("database") if burst.database_cpu is not None else 0)
    print(f"check-in requests per second (first and second scans): {burst.rate:,.0f}; "
          f"p50 {burst.percentile(50):.0f} ms, "
          f"p99 {burst.percentile(99):.0f} ms (every request queued at once, so p99 is about the burst's length)")
    health_cpu = health.cpu_per_request() + (health.cpu_per_request("database")
                                             if health.database_cpu is not None else 0)
    print(f"server CPU per check-in {cpu:.2f} ms against {health_cpu:.2f} ms per GET /healthz "
          f"({cpu / health_cpu:.1f}x; {args.workers} workers on {os.cpu_count()} CPUs)")
    print(f"database: {counts}")
    print(f"each resident's answers name one claim: {same_claim}")
    ok = (burst.statuses == {201: n, 200: repeats} and burst.failures == 0 and same_claim
          and counts["checkins"] == counts["checkin_residents"] == n
          and counts["claims"] == counts["claim_residents"] == counts["posted"] == n and counts["verify_ok"])
    print(f"target: {n} check-ins recorded once each (201 x {n}, 200 x {repeats}, {n} claims, ledger verifies): "
          f"{'met' if ok else 'NOT met'} ({burst.rate:,.0f} check-ins/s, p99 {burst.percentile(99):.0f} ms)")


if __name__ == "__main__":
    main()
