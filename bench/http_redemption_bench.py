"""HTTP redemptions per second against a trivial endpoint of the same app, served the same way.

Prepares a throw-away instance (households with points, goods with stock, a logged-in clerk), starts
``timebank serve --workers 2`` on it and drives it with wrk (Debian's package; ``make bench``
installs it), in one run:

1. ``GET /healthz`` (a trivial JSON endpoint of the same app and server);
2. ``POST /api/v1/redemptions`` (card code, one line, a unique ``Idempotency-Key`` per request,
   cycling through the households and goods), every answer a 201.

The two loads run in alternating rounds (``--rounds``, 5 by default, ``--seconds`` each), so a
machine getting busier or quieter during the run weighs on both sides alike; each side pools its
rounds. For each side it prints the rate, p50 and p99 (wrk's latency histogram), and the CPU time
the server spent per request (gunicorn master and workers from /proc, plus PostgreSQL's backends),
which the client cannot hold down: the ratio of CPU per request is the machine-independent half of
the figure. Any answer that is not 2xx (or a socket error) flags the run: its figures do not count.

Targets (issue "Scale to a sub-district"): sales/healthz >= 0.3 on SQLite, >= 0.2 on PostgreSQL,
and sale p99 < 25 ms. Prints the figures and, last, whether they were met.
Usage: python bench/http_redemption_bench.py [--seconds S] [--rounds R] [--threads T] [--connections C]
[--workers W] [--syscalls] (``--syscalls``: one more round of sales under ``strace -c``, printing each
worker's system calls per sale: page reads and writes, locks, sleeps)
SQLite by default; PostgreSQL when TIMEBANK_DATABASE_URL names a dedicated database (its name must
contain "bench"; it is wiped), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/tb_bench.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile

import benchlib

TARGET = {"sqlite": 0.3, "postgresql": 0.2}
P99_TARGET_MS = 25.0

HEALTH_LUA = """
function next_request(n)
  return wrk.format("GET", "/healthz")
end
"""

SALES_LUA = """
AUTH = %(auth)s
PREFIX = %(prefix)s
ITEMS = {%(items)s}
HOUSEHOLDS = {%(households)s}

-- Request n of this thread is request n * THREADS + tid - 1 of the run: household card and resident
-- card in turn, every household and item in turn, a key no other request of any run uses.
function next_request(n)
  local i = n * THREADS + tid - 1
  local h = HOUSEHOLDS[i %% #HOUSEHOLDS + 1]
  local code = h[1 + i %% 2]
  local body = string.format('{"member_code":"%%s","lines":[{"item_id":%%d,"quantity":%%d}]}',
                             code, ITEMS[i %% #ITEMS + 1], 1 + i %% 2)
  return wrk.format("POST", "/api/v1/redemptions",
                    {["Content-Type"] = "application/json", ["Authorization"] = AUTH,
                     ["Idempotency-Key"] = PREFIX .. tid .. "-" .. n}, body)
end
"""


def sales_script(shop, prefix: str) -> str:
    """:data:`SALES_LUA` for ``shop`` (:func:`benchlib.prepare_shop`), its first clerk selling, every
    ``Idempotency-Key`` beginning with ``prefix``."""
    return SALES_LUA % {
        "auth": benchlib.lua_string(f"Bearer {shop.clerk_tokens[0]}"),
        "prefix": benchlib.lua_string(prefix),
        "items": ", ".join(str(i) for i in shop.item_ids),
        "households": ", ".join(f"{{{benchlib.lua_string(h[1])}, {benchlib.lua_string(h[3])}}}"
                                for h in shop.households)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5, help="seconds of each side in each round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the two loads")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    parser.add_argument("--syscalls", action="store_true",
                        help="after the rounds, one more round of sales under strace -c: each worker's page reads "
                             "and writes, locks and sleeps per sale (docs/performance.md)")
    args = parser.parse_args()
    benchlib.need_wrk()

    print(benchlib.machine())
    print(benchlib.load_average())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        if instance.dialect == "sqlite":
            print(benchlib.disk_flush(folder))
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households)
        instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; wrk: {args.threads} threads, "
              f"{args.connections} connections; households: {args.households}; {args.rounds} rounds of "
              f"{args.seconds:g} s per side")
        run_id = secrets.token_hex(4)

        def sales_lua(tag: str) -> str:
            return sales_script(shop, f"bench-{run_id}-{tag}-")

        def wrk(label, lua, seconds):
            return benchlib.run_wrk(instance, label, lua, threads=args.threads, connections=args.connections,
                                    seconds=seconds)

        # Warm up both paths (imports, caches, the database file), then measure.
        wrk("warm-up /healthz", HEALTH_LUA, 2)
        warm = wrk("warm-up sales", sales_lua("warm"), 2)
        if warm.failures:
            sys.exit(f"warm-up redemptions failed: {warm.line()}")
        # Rounds alternate the two loads (H S, S H, H S...); each side's figures pool its rounds.
        health_rounds, sales_rounds = [], []
        for n in range(args.rounds):
            for kind in (("health", "sales") if n % 2 == 0 else ("sales", "health")):
                if kind == "health":
                    result = wrk(f"round {n + 1} GET /healthz", HEALTH_LUA, args.seconds)
                    health_rounds.append(result)
                else:
                    result = wrk(f"round {n + 1} POST /api/v1/redemptions", sales_lua(str(n)), args.seconds)
                    sales_rounds.append(result)
                print("  " + result.line())
        trivial = benchlib.combine("GET /healthz", health_rounds)
        sales = benchlib.combine("POST /api/v1/redemptions", sales_rounds)
        print(benchlib.load_average())
        if args.syscalls:
            traced, counts = benchlib.count_syscalls(
                instance, lambda: wrk("sales under strace", sales_lua("strace"), args.seconds))
            sold = max(1, traced.requests)
            print(f"system calls per sale ({traced.requests:,} sales under strace, whose rate does not count; "
                  f"SQLite in WAL mode reads again every page a sale touches when another worker committed "
                  f"since its last read):")
            for name in benchlib.SYSCALLS:
                calls = sum(table.get(name, (0, 0))[0] for table in counts.values())
                failed = sum(table.get(name, (0, 0))[1] for table in counts.values())
                by_worker = ", ".join(f"{table.get(name, (0, 0))[0]:,}" for table in counts.values())
                print(f"  {name}: {calls / sold:.1f} a sale" + (f" ({failed / sold:.1f} failed)" if failed else "")
                      + f"; calls by worker: {by_worker}")
    print(trivial.line())
    print(sales.line())
    if trivial.failures or sales.failures:
        sys.exit(f"{trivial.failures + sales.failures} requests were not answered 2xx: the figures above do not count")
    ratio = sales.rate / trivial.rate
    cpu_ratio = trivial.cpu_per_request() / sales.cpu_per_request()
    print(f"redemptions/trivial = {ratio:.3f} (rate under wrk)")
    print(f"server CPU per request: /healthz {trivial.cpu_per_request():.2f} ms, "
          f"sale {sales.cpu_per_request():.2f} ms; ratio {cpu_ratio:.3f}")
    if sales.database_cpu is not None:
        total = (trivial.cpu_per_request() + trivial.cpu_per_request("database")) / (
            sales.cpu_per_request() + sales.cpu_per_request("database"))
        print(f"server + PostgreSQL CPU per request: /healthz "
              f"{trivial.cpu_per_request() + trivial.cpu_per_request('database'):.2f} ms, sale "
              f"{sales.cpu_per_request() + sales.cpu_per_request('database'):.2f} ms; ratio {total:.3f}")
    target = TARGET[instance.dialect]
    p99 = sales.percentile(99)
    met = ratio >= target and p99 < P99_TARGET_MS
    print(f"target: redemptions/trivial >= {target} and sale p99 < {P99_TARGET_MS:.0f} ms: "
          f"{'met' if met else 'NOT met'} ({ratio:.3f}; {sales.rate:,.0f} redemptions/s, "
          f"p50 {sales.percentile(50):.1f} ms, p99 {p99:.1f} ms; {trivial.rate:,.0f} /healthz per s)")


if __name__ == "__main__":
    main()
