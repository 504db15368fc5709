"""A burst of QR check-ins: 500 residents scan the code of one task at the same moment.

Prepares a throw-away instance (500 residents with logins and bearer tokens, one task with 600
slots whose rule posts points at once), starts ``timebank serve --workers 2``, then fires every
``POST /api/v1/checkins`` together (one thread per request, released by a barrier), plus a second
scan by the first 100 residents (a double tap must give 200 with the same claim, not a second one).
Afterwards it counts in the database: 500 check-ins, 500 claims, one per resident, the ledger
verifies.

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
    parser.add_argument("--threads", type=int, default=0, help="default: one per request")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    args = parser.parse_args()
    n, repeats = args.residents, min(args.repeats, args.residents)
    total = n + repeats

    print(benchlib.machine())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        instance.init_db()
        shop = benchlib.prepare_shop(instance, n, points=1, goods=1, stock=1, resident_tokens=True)
        task_id, token = prepare_task(instance, slots=n + 100)
        port = instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; residents: {n}; "
              f"second scans: {repeats}; task slots: {n + 100}")
        body = json.dumps({"token": token}).encode()

        def checkin(i):
            resident = shop.households[i % n]
            return ("POST", "/api/v1/checkins", body,
                    {"Content-Type": "application/json", "Authorization": f"Bearer {resident[4]}"})

        burst = benchlib.run_load(port, checkin, total, args.threads or total, label="POST /api/v1/checkins burst",
                                  start_barrier=True, keep_answers=True, max_seconds=600)
        instance.stop()
        counts = count(instance, task_id)
    print(burst.line())
    claims_by_resident: dict[int, set[int]] = {}
    for i, (status, data) in burst.answers.items():
        if status in (200, 201):
            claims_by_resident.setdefault(i % n, set()).add(json.loads(data)["claim"]["id"])
    same_claim = all(len(ids) == 1 for ids in claims_by_resident.values()) and len(claims_by_resident) == n
    print(f"check-in requests per second (first and second scans): {burst.rate:,.0f}; "
          f"p50 {burst.percentile(50):.0f} ms, "
          f"p99 {burst.percentile(99):.0f} ms (every request queued at once, so p99 is about the burst's length)")
    print(f"database: {counts}")
    print(f"each resident's answers name one claim: {same_claim}")
    ok = (burst.statuses == {201: n, 200: repeats} and burst.errors == 0 and same_claim
          and counts["checkins"] == counts["checkin_residents"] == n
          and counts["claims"] == counts["claim_residents"] == counts["posted"] == n and counts["verify_ok"])
    print(f"target: {n} check-ins recorded once each (201 x {n}, 200 x {repeats}, {n} claims, ledger verifies): "
          f"{'met' if ok else 'NOT met'} ({burst.rate:,.0f} check-ins/s, p99 {burst.percentile(99):.0f} ms)")


if __name__ == "__main__":
    main()
