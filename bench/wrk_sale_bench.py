"""The HTTP sale against ``/healthz`` under wrk (a native load generator): sales per second, p99,
and their ratio, on SQLite or PostgreSQL.

Prepares a throw-away instance (households with points, goods with stock, a logged-in clerk),
starts ``timebank serve --workers 2`` on it and runs wrk against ``GET /healthz`` and
``POST /api/v1/redemptions`` (card code, one line, a fresh ``Idempotency-Key`` per request), in
alternating rounds. Needs ``wrk`` on the PATH (Debian's package).

Usage: python bench/wrk_sale_bench.py [--seconds S] [--rounds R] [--connections C] [--threads T]
SQLite by default; PostgreSQL via TIMEBANK_DATABASE_URL (a dedicated database whose name contains
"bench"; it is wiped).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import benchlib

SALE_SCRIPT = r"""
local token, households, items = "%(token)s", %(households)s, %(items)s
local counter, tag, started = 0, 0, 0
function setup(thread)
  tag = tag + 1
  thread:set("tag", tag)
end
function init(_args)
  started = os.time()  -- every round's keys are new: a repeated key would be a replay, not a sale
end
function request()
  counter = counter + 1
  local household = households[(counter * 7 + tag) %% #households + 1]
  local item = items[counter %% #items + 1]
  local body = '{"member_code": "' .. household .. '", "lines": [{"item_id": ' .. item .. ', "quantity": 1}]}'
  return wrk.format("POST", "/api/v1/redemptions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = "wrk-" .. started .. "-" .. tag .. "-" .. counter,
  }, body)
end
"""

# Printed by wrk when a run ends: what run_wrk reads back.
DONE_SCRIPT = r"""
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("JSON {\"requests\": %d, \"errors\": %d, \"non2xx\": %d,"
    .. " \"p99_ms\": %.2f, \"p50_ms\": %.2f}\n",
    summary.requests, errors.status + errors.connect + errors.read + errors.write + errors.timeout,
    errors.status, latency:percentile(99) / 1000, latency:percentile(50) / 1000))
end
"""
HEALTH_SCRIPT = DONE_SCRIPT


def run_wrk(port: int, path: str, script: str, seconds: int, connections: int, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                              "-s", lua.name, f"http://127.0.0.1:{port}{path}"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(lua.name)
    figures = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    figures["rate"] = figures["requests"] / seconds
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    print(benchlib.machine())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, args.database_url) as instance:
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households)
        port = instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; wrk: {args.threads} threads, "
              f"{args.connections} connections, {args.seconds} s per round, {args.rounds} rounds")
        sale = SALE_SCRIPT % {"token": shop.clerk_tokens[0],
                              "households": "{" + ", ".join(f'"{h[1]}"' for h in shop.households) + "}",
                              "items": "{" + ", ".join(str(i) for i in shop.item_ids) + "}"} + DONE_SCRIPT
        run_wrk(port, "/healthz", HEALTH_SCRIPT, 2, args.connections, args.threads)  # warm up
        run_wrk(port, "/api/v1/redemptions", sale, 2, args.connections, args.threads)
        health, sales = [], []
        for n in range(args.rounds):
            order = [("health", "/healthz", HEALTH_SCRIPT, health), ("sales", "/api/v1/redemptions", sale, sales)]
            for _kind, path, script, into in (order if n % 2 == 0 else order[::-1]):
                into.append(run_wrk(port, path, script, args.seconds, args.connections, args.threads))
        for label, rounds in (("GET /healthz", health), ("POST /api/v1/redemptions", sales)):
            rate = sum(r["rate"] for r in rounds) / len(rounds)
            print(f"{label}: {rate:.0f}/s, p50 {max(r['p50_ms'] for r in rounds):.1f} ms, "
                  f"p99 {max(r['p99_ms'] for r in rounds):.1f} ms (worst round), "
                  f"errors {sum(r['errors'] for r in rounds)}")
        if any(r["errors"] for r in sales):
            sys.exit("some sales failed: the figures above do not count")
        ratio = (sum(r["rate"] for r in sales) / len(sales)) / (sum(r["rate"] for r in health) / len(health))
        print(f"sales/healthz = {ratio:.3f}")


if __name__ == "__main__":
    main()
