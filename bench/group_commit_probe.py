"""What one SQLite writing process that commits several sales at once would save (a probe for a design).

Not a benchmark of the application as it runs: it measures, in one process, the part of a sale that
such a writer would run, so that the design can be judged before it is built (docs/performance.md,
"Issue 15, 2026-12-04 (night)"):

1. The write of a sale as the HTTP request does it today, without HTTP: the write lock, ``sell``,
   the answer's idempotency record and ``COMMIT`` (with ``synchronous=FULL``, so one ``fsync`` of
   the WAL a commit), ``--sales`` times; the CPU time per sale (``time.process_time``) and the wall
   time.
2. The same, one a commit, with ``BEGIN IMMEDIATE`` and ``COMMIT`` sent on the driver's connection
   and the ORM session's transaction kept open throughout ("raw"): what the session's commit and
   the next checkout of the pooled connection add to a commit.
3. The same sales by ``k`` at a time (``--batches``, 2, 4 and 8 by default): each sale in a
   ``SAVEPOINT`` of its own (released when it succeeds, so that one refused sale would not undo the
   others), one ``COMMIT`` for the ``k``. A page that several sales of a batch change (the ledger's
   newest leaf, the counters, the newest index pages) goes to the WAL once, and the ``fsync`` is
   shared.
4. The cost of handing a sale to such a process and getting its answer back: a round trip of a
   sale's request and answer (their JSON, as long as the API's) over a Unix socket to a second
   process, CPU time of both sides per round trip.

The rounds alternate the kinds (1, raw, 2, 4, 8, then back), so a machine getting busier weighs on
all of them alike; each kind pools its rounds. It prints the figures and, for each batch size, what
they leave for a sale over HTTP, given the CPU per sale and per ``GET /healthz`` that
``http_redemption_bench.py`` printed (``--http-sale-ms``, ``--http-one-worker-sale-ms``,
``--healthz-ms``).

Usage: python bench/group_commit_probe.py [--households N] [--sales N] [--rounds R] [--batches 2,4,8]
[--http-sale-ms MS --http-one-worker-sale-ms MS --healthz-ms MS]
SQLite only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time

import benchlib

#: The answer's idempotency record as ``@idempotent`` writes it after a sale (positional, SQLite).
RECORD = ("INSERT INTO idempotency_records (scope, \"key\", request_hash, status_code, response_body, created_at)"
          " VALUES (?, ?, ?, 201, ?, ?)")


def sale_writes(app, shop, sales: int, batch: int, start: int, raw: bool = False) -> tuple[float, float]:
    """Sell ``sales`` times, ``batch`` sales per commit; return (CPU s, wall s). ``raw``: one a
    commit, but ``BEGIN IMMEDIATE`` and ``COMMIT`` sent on the driver's connection, the ORM session's
    transaction and pooled connection kept throughout (what a commit costs beyond SQLite's own work)."""
    from timebank.core.database import take_write_lock, writing
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.shop.sale import sell

    with app.app_context(), writing():
        # A request builds its user from the token's row; here the clerk is loaded once and kept
        # (not expired by each commit, which would load it again: a cost no request has).
        db.session().expire_on_commit = False
        clerk = db.session.query(User).filter_by(username="bench-clerk-0").one()
        households, items = shop.households, shop.item_ids
        cpu, wall = time.process_time(), time.perf_counter()
        n = start
        if raw:
            take_write_lock(db.session)
            cursor = db.session.connection().connection.cursor()
            cursor.execute("COMMIT")
        for first in range(0, sales, batch):
            if raw:
                cursor.execute("BEGIN IMMEDIATE")
            else:
                take_write_lock(db.session)
                cursor = db.session.connection().connection.cursor()
            for _ in range(min(batch, sales - first)):
                if batch > 1:
                    cursor.execute("SAVEPOINT sale")
                household = households[n % len(households)]
                done = sell(clerk, member_code=household[1 + (n % 2) * 2],
                            lines=[{"item_id": items[n % len(items)], "quantity": 1 + n % 2}])
                body = json.dumps({"id": done.id, "receipt_no": done.receipt_no, "total_points": done.total_points,
                                   "balance_after": done.balance_after}, ensure_ascii=False)
                cursor.execute(RECORD, (f"user:{clerk.id}", f"probe-{n}", "0" * 64, body,
                                        done.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")))
                if batch > 1:
                    cursor.execute("RELEASE sale")
                n += 1
            if raw:
                cursor.execute("COMMIT")
            else:
                db.session.commit()
        if raw:
            db.session.rollback()
        return time.process_time() - cpu, time.perf_counter() - wall


REQUEST = json.dumps({"user_id": 2, "key": "bench-0123456789-3-1234", "request_hash": "0" * 64,
                      "body": {"member_code": "H0123456789", "lines": [{"item_id": 3, "quantity": 2}]}})
ANSWER = json.dumps({"id": 123456, "receipt_no": 123456, "community_code": "bench", "household_id": 1234,
                     "resident_id": None, "identified_by": "member_code", "total_points": 6, "balance_after": 99994,
                     "transaction_id": 123456, "created_at": "2026-12-04T22:00:00+08:00", "status": "completed",
                     "returned_points": 0, "voided_at": None, "void_reason": None, "void_transaction_id": None,
                     "partner_id": None, "lines": [{"id": 123456, "item_id": 3, "name": "商品3", "quantity": 2,
                                                    "unit_points": 3, "returned_quantity": 0}], "returns": []},
                    ensure_ascii=False)


def handoff(trips: int) -> float:
    """CPU seconds (both processes) per round trip of a sale's request and answer over a Unix socket."""
    parent, child = socket.socketpair()
    before = os.times()
    pid = os.fork()
    if pid == 0:  # the writer's side: read a request, parse it, answer
        parent.close()
        reader = child.makefile("rb")
        for _ in range(trips):
            json.loads(reader.readline())
            child.sendall(ANSWER.encode() + b"\n")
        os._exit(0)
    child.close()
    reader = parent.makefile("rb")
    for _ in range(trips):
        parent.sendall(REQUEST.encode() + b"\n")
        json.loads(reader.readline())
    os.waitpid(pid, 0)
    after = os.times()
    used = (after.user + after.system + after.children_user + after.children_system
            - before.user - before.system - before.children_user - before.children_system)
    return used / trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--sales", type=int, default=1600, help="sales per round and batch size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default="2,4,8")
    parser.add_argument("--http-sale-ms", type=float, help="server CPU per sale, 2 workers (http_redemption_bench)")
    parser.add_argument("--http-one-worker-sale-ms", type=float, help="the same with --workers 1")
    parser.add_argument("--healthz-ms", type=float, help="server CPU per GET /healthz (http_redemption_bench)")
    args = parser.parse_args()
    sizes = [1, "raw", *(int(size) for size in args.batches.split(","))]

    print(benchlib.machine())
    print(benchlib.load_average())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, None) as instance:
        print(benchlib.disk_flush(folder))
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households)
        app = instance.app()
        sale_writes(app, shop, 200, 1, 0)  # warm up: imports, statements, the file
        used = {size: [0.0, 0.0, 0] for size in sizes}
        n = 200
        for round_no in range(args.rounds):
            for size in sizes if round_no % 2 == 0 else reversed(sizes):
                cpu, wall = sale_writes(app, shop, args.sales, 1 if size == "raw" else size, n, raw=size == "raw")
                n += args.sales
                used[size][0] += cpu
                used[size][1] += wall
                used[size][2] += args.sales
                print(f"  round {round_no + 1}, {size} a commit: {args.sales:,} sales, "
                      f"CPU {cpu / args.sales * 1e6:.0f} us a sale, wall {wall / args.sales * 1e6:.0f} us a sale")
    print(benchlib.load_average())
    one = used[1][0] / used[1][2]
    print("the write of a sale (write lock, sell, the answer's record, COMMIT), in one process:")
    for size in sizes:
        cpu, wall, count = used[size]
        print(f"  {size} a commit: CPU {cpu / count * 1e6:.0f} us a sale, wall {wall / count * 1e6:.0f} us a sale; "
              f"CPU saved against one a commit: {(one - cpu / count) * 1e6:.0f} us")
    trip = handoff(20_000)
    print(f"handing a sale to another process and its answer back (Unix socket, JSON): CPU {trip * 1e6:.0f} us")
    if args.http_sale_ms and args.http_one_worker_sale_ms and args.healthz_ms:
        # One writer: no second writer to empty the page cache or wait for the lock (one worker's
        # figure), the batch's saving, the hand-off added. A batch holds the sales waiting at once:
        # at most one per HTTP worker with gunicorn's sync workers, at most one per connection of the
        # load (http_redemption_bench: 4) with threads.
        print(f"a sale over HTTP with one writing process, projected from one worker's "
              f"{args.http_one_worker_sale_ms:.2f} ms of CPU (no lost cache, no wait for the lock), against "
              f"{args.healthz_ms:.2f} ms a GET /healthz (today, two workers: {args.http_sale_ms:.2f} ms, "
              f"CPU ratio {args.healthz_ms / args.http_sale_ms:.3f}):")
        for size in sizes:
            if size == "raw":
                continue
            saved = (one - used[size][0] / used[size][2]) * 1000
            projected = args.http_one_worker_sale_ms - saved + trip * 1000
            print(f"  {size} a commit: {args.http_one_worker_sale_ms:.2f} - {saved:.2f} (batch) + {trip * 1000:.2f} "
                  f"(hand-off) = {projected:.2f} ms; CPU ratio {args.healthz_ms / projected:.3f}")

if __name__ == "__main__":
    main()
