"""HTTP redemptions per second against a trivial endpoint of the same app, served the same way.

Prepares a throw-away instance (households with points, goods with stock, a logged-in clerk), starts
``timebank serve --workers 2`` on it, and in one run measures:

1. the load client's own ceiling against a null server (so we know the client is not the limit);
2. ``GET /healthz`` (a trivial JSON endpoint of the same app and server);
3. ``POST /api/v1/redemptions`` (card code, one line, ``Idempotency-Key``), every answer a 201.

Prints the figures and, last, whether redemptions reached the target share of the trivial rate.
Both loads run in alternating rounds (``--rounds``, 5 by default) and each side pools its rounds.
It also prints how long the disk takes to make a write durable: every SQLite sale waits for that
once and /healthz never, so a slow disk weighs on one side only. Run it on a quiet machine: a busy
core slows sales more than /healthz (docs/performance.md).
Usage: python bench/http_redemption_bench.py [--redemptions N] [--health N] [--threads T] [--workers W] [--rounds R]
SQLite by default; PostgreSQL when TIMEBANK_DATABASE_URL names a dedicated database (its name must
contain "bench"; it is wiped), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/tb_bench.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import benchlib

TARGET = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--redemptions", type=int, default=5000)
    parser.add_argument("--health", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the two loads")
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    args = parser.parse_args()

    print(benchlib.machine())
    ceiling = benchlib.client_limit(args.threads)
    print(ceiling.line())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        if instance.dialect == "sqlite":
            print(benchlib.disk_flush(folder))
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households)
        port = instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; client threads: {args.threads}; "
              f"households: {args.households}")
        auth = {"Authorization": f"Bearer {shop.clerk_tokens[0]}"}
        goods = shop.item_ids

        def redemption(i):
            household = shop.households[i % len(shop.households)]
            code = household[1] if i % 2 == 0 else household[3]  # household card or resident card
            body = {"member_code": code, "lines": [{"item_id": goods[i % len(goods)], "quantity": 1 + i % 2}]}
            return benchlib.json_request("POST", "/api/v1/redemptions", body,
                                         {**auth, "Idempotency-Key": f"bench-{i}"})

        def health(_i):
            return "GET", "/healthz", None, {}

        # Warm up both paths (imports, caches, the database file), then measure.
        benchlib.run_load(port, health, 300, args.threads)
        warm = benchlib.run_load(port, lambda i: redemption(10_000_000 + i), 200, args.threads)
        if warm.statuses != {201: 200}:
            sys.exit(f"warm-up redemptions failed: {warm.line()}")
        # Rounds alternate the two loads (H R, R H, H R...), so that a machine getting busier or
        # quieter during the run weighs on both sides alike; each side's figures pool its rounds.
        trivial_rounds, sales_rounds = [], []
        health_each, sales_each = args.health // args.rounds, args.redemptions // args.rounds
        for n in range(args.rounds):
            loads = [("health", health_each), ("sales", sales_each)]
            for kind, count in (loads if n % 2 == 0 else loads[::-1]):
                if kind == "health":
                    trivial_rounds.append(benchlib.run_load(port, health, count, args.threads))
                else:
                    offset = n * sales_each
                    sales_rounds.append(benchlib.run_load(port, lambda i, offset=offset: redemption(offset + i), count,
                                                          args.threads))
        trivial = benchlib.combine("GET /healthz", trivial_rounds)
        sales = benchlib.combine("POST /api/v1/redemptions", sales_rounds)
        args.redemptions = sales.requests
    print(trivial.line())
    print(sales.line())
    if sales.statuses != {201: args.redemptions}:
        sys.exit("some redemptions were not 201: the figures above do not count")
    print(f"client ceiling / trivial rate = {ceiling.rate / trivial.rate:.1f} "
          f"({'client is not the limit' if ceiling.rate > 1.5 * trivial.rate else 'client may be the limit'})")
    ratio = sales.rate / trivial.rate
    print(f"redemptions/trivial = {ratio:.2f}")
    print(f"target: redemptions/trivial >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'} "
          f"({sales.rate:,.0f} redemptions/s, p50 {sales.percentile(50):.1f} ms, p99 {sales.percentile(99):.1f} ms; "
          f"{trivial.rate:,.0f} /healthz per s)")


if __name__ == "__main__":
    main()
