"""A throw-away prototype of one SQLite writing process fed by the HTTP workers, measured (issue 15).

Not part of the application, and not the design it would be: it is kept so that the figure it gave
can be run again (docs/performance.md, "Issue 15, 2026-12-04 (night)"). ``group_commit_probe.py``
projected that such a writer, committing the sales that wait at the same moment together, could
bring the SQLite sale to about 0.3 of ``/healthz``. This measures it:

- **The writer** (``--writer``, started by the run): one process with the application, listening on
  a Unix socket. Each time it wakes, it takes every sale that has arrived, takes the write lock,
  runs each in a ``SAVEPOINT`` of its own (``sell``, the answer's dump, its idempotency record),
  commits them together, and answers each.
- **The HTTP workers** (gunicorn, 2 workers, ``--threads`` threads each, the ``gthread`` worker
  when more than one): the application as it is, the token, the body, the rate limits and the
  stored answers included, except that the sale is handed to the writer
  (``timebank.shop.api.sell`` replaced), and the answer's record is not written again.
- **The load**: wrk, ``GET /healthz`` and ``POST /api/v1/redemptions`` in alternating rounds, as
  ``http_redemption_bench.py`` does, on the same server.

It prints the rates and their ratio, the CPU per request of the HTTP workers and of the writer,
and how many sales the writer committed at once. ``--plain`` runs the same server without the
writer (the application as it is), with the same threads, for comparison.

Left out, since it measures and is not the design: a refused sale comes back as 500; a writer that
is down or dies is not handled; the audit entry has no client address; links in the answer name
127.0.0.1.

Usage: python bench/writer_prototype.py [--threads T] [--rounds R] [--seconds S] [--households N] [--plain]
SQLite only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

SOCKET_ENV = "BENCH_WRITER_SOCKET"
STATS_ENV = "BENCH_WRITER_STATS"


# --- the HTTP workers' side: gunicorn loads "writer_prototype:wsgi_app()" ---------------------------

def wsgi_app():
    """The application as ``timebank.wsgi`` serves it, with the sale handed to the writer."""
    from flask import g, request

    import timebank.core.http as http
    import timebank.shop.api as api
    import timebank.wsgi
    from timebank.shop.sale import Sale, SaleLine

    local = threading.local()

    def connection():
        if getattr(local, "socket", None) is None:
            local.socket = socket.socket(socket.AF_UNIX)
            local.socket.connect(os.environ[SOCKET_ENV])
            local.reader = local.socket.makefile("rb")
        return local.socket, local.reader

    def handed_sell(user, *, lines, member_code=None, pay_code=None):
        sock, reader = connection()
        asked = {"user_id": user.id, "lines": lines, "member_code": member_code, "pay_code": pay_code,
                 "key": request.headers.get("Idempotency-Key"), "hash": http._request_fingerprint()}
        sock.sendall(json.dumps(asked).encode() + b"\n")
        answer = json.loads(reader.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        sale = answer["sale"]
        g.bench_written = True  # the writer stored the answer with the sale
        return Sale(sale["id"], sale["receipt_no"], sale["community_id"], sale["community_code"],
                    sale["household_id"], sale["resident_id"], sale["identified_by"], sale["total"],
                    sale["balance_after"], sale["transaction_id"], datetime.fromisoformat(sale["at"]),
                    [SaleLine(*line) for line in sale["lines"]], partner_id=sale["partner_id"])

    record_and_commit = http._record_and_commit

    def record_unless_written(sql, values):
        return True if g.pop("bench_written", False) else record_and_commit(sql, values)

    api.sell = handed_sell
    http._record_and_commit = record_unless_written
    return timebank.wsgi.app


# --- the writer ------------------------------------------------------------------------------------

def _sale_json(sale) -> dict:
    return {"id": sale.id, "receipt_no": sale.receipt_no, "community_id": sale.community_id,
            "community_code": sale.community_code, "household_id": sale.household_id,
            "resident_id": sale.resident_id, "identified_by": sale.identified_by, "total": sale.total_points,
            "balance_after": sale.balance_after, "transaction_id": sale.transaction_id,
            "at": sale.created_at.isoformat(),
            "lines": [[line.id, line.item_id, line.name, line.quantity, line.unit_points] for line in sale.lines],
            "partner_id": sale.partner_id}


def writer() -> None:
    from group_commit_probe import RECORD

    from ledger import driver
    from timebank import create_app
    from timebank.core.clock import utc_naive
    from timebank.core.database import take_write_lock, writing
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.shop.api import RedemptionOut
    from timebank.shop.sale import sell

    app = create_app()
    schema = RedemptionOut()
    path = os.environ[SOCKET_ENV]
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}
    batches: dict[int, int] = {}
    users: dict[int, User] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # A request context for the answer's links (url_for); the sale's own checks need none.
    with app.test_request_context("/api/v1/redemptions", base_url="http://127.0.0.1/"), writing():
        db.session().expire_on_commit = False  # the clerks stay loaded between batches
        try:
            while True:
                batch = []
                for key, _ in selector.select():
                    if key.fileobj is listener:
                        client, _ = listener.accept()
                        client.setblocking(False)
                        selector.register(client, selectors.EVENT_READ)
                        pending[client] = b""
                        continue
                    client = key.fileobj
                    data = client.recv(65536)
                    if not data:
                        selector.unregister(client)
                        client.close()
                        pending.pop(client, None)
                        continue
                    pending[client] += data
                    while b"\n" in pending[client]:
                        line, pending[client] = pending[client].split(b"\n", 1)
                        batch.append((client, json.loads(line)))
                if not batch:
                    continue
                batches[len(batch)] = batches.get(len(batch), 0) + 1
                take_write_lock(db.session)
                cursor = db.session.connection().connection.cursor()
                answers = []
                for client, asked in batch:
                    cursor.execute("SAVEPOINT sale")
                    try:
                        user = users.get(asked["user_id"]) or users.setdefault(
                            asked["user_id"], db.session.get(User, asked["user_id"]))
                        sale = sell(user, lines=asked["lines"], member_code=asked["member_code"],
                                    pay_code=asked["pay_code"])
                        cursor.execute(RECORD, (f"user:{user.id}", asked["key"], asked["hash"],
                                                app.json.dumps(schema.dump(sale)),
                                                driver.timestamp("sqlite", utc_naive())))
                        cursor.execute("RELEASE sale")
                        answers.append((client, {"sale": _sale_json(sale)}))
                    except Exception as exc:  # noqa: BLE001 - a prototype: every refusal is a 500
                        cursor.execute("ROLLBACK TO sale")
                        cursor.execute("RELEASE sale")
                        answers.append((client, {"error": repr(exc)}))
                db.session.commit()
                for client, answer in answers:
                    client.setblocking(True)
                    client.sendall(json.dumps(answer).encode() + b"\n")
                    client.setblocking(False)
        finally:
            Path(os.environ[STATS_ENV]).write_text(json.dumps(batches))


# --- the run ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=4, help="threads of each of the 2 HTTP workers")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--plain", action="store_true", help="the same server without the writer")
    args = parser.parse_args()
    if args.writer:
        writer()
        return

    import benchlib
    import http_redemption_bench as sales_bench

    benchlib.need_wrk()
    print(benchlib.machine())
    print(benchlib.load_average())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder, None) as instance:
        instance.init_db()
        shop = benchlib.prepare_shop(instance, args.households)
        env = instance.env()
        env.update({SOCKET_ENV: str(Path(folder) / "writer.sock"), STATS_ENV: str(Path(folder) / "batches.json"),
                    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")])})
        handed = None
        if not args.plain:
            handed = subprocess.Popen([sys.executable, __file__, "--writer"], env=env,
                                      stdout=open(Path(folder) / "writer.log", "wb"), stderr=subprocess.STDOUT)
            while not Path(env[SOCKET_ENV]).exists():
                if handed.poll() is not None:
                    raise SystemExit("the writer exited:\n" + (Path(folder) / "writer.log").read_text())
                time.sleep(0.1)
        instance.port = benchlib.free_port()
        threads = ["--worker-class", "gthread", "--threads", str(args.threads)] if args.threads > 1 else []
        instance.process = subprocess.Popen(
            [str(benchlib.BIN / "gunicorn"), "--config", "python:timebank.ops.gunicorn_conf", "--bind",
             f"{benchlib.HOST}:{instance.port}", "--workers", "2", *threads,
             "timebank.wsgi:app" if args.plain else "writer_prototype:wsgi_app()"],
            env=env, stdout=open(Path(folder) / "serve.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not benchlib._healthy(instance.port):
            if time.monotonic() > deadline or instance.process.poll() is not None:
                raise SystemExit("the server did not start:\n" + (Path(folder) / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        for _ in range(40):
            benchlib.request_once(instance.port, "GET", "/healthz")
        run_id = secrets.token_hex(4)

        def sales_lua(tag: str) -> str:
            return sales_bench.sales_script(shop, f"proto-{run_id}-{tag}-")

        writer_pids = [handed.pid] if handed is not None else []

        def run(label: str, lua: str):
            before = benchlib.process_ticks(writer_pids)
            result = benchlib.run_wrk(instance, label, lua, seconds=args.seconds)
            return result, benchlib.cpu_delta(before, benchlib.process_ticks(writer_pids))

        run("warm-up /healthz", sales_bench.HEALTH_LUA)
        warm, _ = run("warm-up sales", sales_lua("warm"))
        if warm.failures:
            raise SystemExit(f"warm-up sales failed: {warm.line()}\n"
                             + (Path(folder) / "serve.log").read_text()[-3000:])
        health_rounds, sale_rounds, writer_cpu = [], [], 0.0
        for n in range(args.rounds):
            for kind in (("health", "sales") if n % 2 == 0 else ("sales", "health")):
                if kind == "health":
                    result, _ = run(f"round {n + 1} GET /healthz", sales_bench.HEALTH_LUA)
                    health_rounds.append(result)
                else:
                    result, cpu = run(f"round {n + 1} POST /api/v1/redemptions", sales_lua(str(n)))
                    sale_rounds.append(result)
                    writer_cpu += cpu
                print("  " + result.line())
        if handed is not None:
            handed.terminate()
            handed.wait(30)
        trivial = benchlib.combine("GET /healthz", health_rounds)
        sales = benchlib.combine("POST /api/v1/redemptions", sale_rounds)
        print(benchlib.load_average())
        print(trivial.line())
        print(sales.line())
        if trivial.failures or sales.failures:
            raise SystemExit("some requests were not answered 2xx: the figures do not count")
        kind = "the application as it is" if args.plain else "the sale handed to one writing process"
        print(f"{kind}; 2 HTTP workers, {args.threads} thread(s) each:")
        print(f"  redemptions/trivial = {sales.rate / trivial.rate:.3f} (rate under wrk)")
        if handed is not None:
            per_sale = writer_cpu / max(1, sales.requests) * 1000
            total = sales.cpu_per_request() + per_sale
            batches = {int(k): v for k, v in json.loads((Path(folder) / "batches.json").read_text()).items()}
            committed = sum(size * count for size, count in batches.items())
            print(f"  CPU a sale: HTTP workers {sales.cpu_per_request():.2f} ms + writer {per_sale:.2f} ms = "
                  f"{total:.2f} ms, against {trivial.cpu_per_request():.2f} ms a GET /healthz: CPU ratio "
                  f"{trivial.cpu_per_request() / total:.3f}")
            counts = ", ".join(f"{size}: {count:,}" for size, count in sorted(batches.items()))
            print(f"  sales committed at once: {counts} commits "
                  f"(on average {committed / max(1, sum(batches.values())):.2f} sales a commit)")
        else:
            print(f"  CPU a sale {sales.cpu_per_request():.2f} ms against {trivial.cpu_per_request():.2f} ms a "
                  f"GET /healthz: CPU ratio {trivial.cpu_per_request() / sales.cpu_per_request():.3f}")


if __name__ == "__main__":
    main()
