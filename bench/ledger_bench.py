"""Ledger write throughput against raw SQLite, measured in one run, in alternating rounds.

Both sides use WAL, BEGIN IMMEDIATE and one commit per transaction, and each commit waits for the
disk: the raw side with synchronous=FULL, the application's connections by flushing the WAL
themselves right after COMMIT (timebank/core/database.py). The ledger side writes one transfer of two postings
per database transaction through the full stack (SQLAlchemy session, balance checks, hash chain,
database triggers). The raw side inserts one row per transaction with the sqlite3 module.

The two sides run in alternating rounds (raw, ledger, ledger, raw, raw, ledger...; ``--rounds``,
5 by default), so a machine or disk getting busier or quieter during the run weighs on both sides
alike. Besides the wall-clock ratio it prints the CPU-only ratio (``time.process_time``: this
process's CPU, without the time spent waiting for the disk), which depends neither on the disk
nor on what else runs on the machine.

Prints the figures and, last, ``ledger/raw_sqlite = R`` (target: at least 0.35, wall clock).
Usage: python bench/ledger_bench.py [N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time

TARGET = 0.35


class Raw:
    """One table, one row per transaction, the sqlite3 module."""

    def __init__(self, path: str):
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("PRAGMA synchronous = FULL")
        self.con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, account TEXT, amount INTEGER, memo TEXT)")

    def run(self, start: int, n: int) -> None:
        for i in range(start, start + n):
            self.con.execute("BEGIN IMMEDIATE")
            self.con.execute("INSERT INTO t (account, amount, memo) VALUES (?, ?, ?)", ("a", i + 1, "bench"))
            self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


class Ledger:
    """Transfers of two postings through ``ledger.post`` on a Core connection of the application's engine."""

    def __init__(self, folder: str):
        import ledger
        from ledger import Leg
        from timebank import create_app
        from timebank.cli import init_db
        from timebank.core.extensions import db

        self.app = create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "bench",
                               "SQLALCHEMY_DATABASE_URI": f"sqlite:///{os.path.join(folder, 'bench.sqlite')}"})
        self.context = self.app.app_context()
        self.context.push()
        init_db()
        s = db.session
        ledger.open_account(s, "issuer", "points", allow_negative=True)
        ledger.open_account(s, "a", "points")
        ledger.open_account(s, "b", "points")
        ledger.post(s, [Leg("issuer", -1_000_000), Leg("a", 1_000_000)], kind="grant")
        s.commit()
        s.remove()
        self.conn = db.engine.connect()

    @staticmethod
    def legs(i: int):
        from ledger import Leg

        src, dst = ("a", "b") if i % 2 == 0 else ("b", "a")
        amount = (i // 2) % 7 + 1
        return [Leg(src, -amount), Leg(dst, amount)]

    def run(self, start: int, n: int) -> None:
        import ledger

        for i in range(start, start + n):
            with self.conn.begin():
                ledger.post(self.conn, self.legs(i), kind="transfer", memo="bench")

    def session_rate(self, start: int, n: int) -> float:
        """The same through the ORM session, as a request handler does it (transfers per second)."""
        import ledger
        from timebank.core.extensions import db

        s = db.session
        began = time.perf_counter()
        for i in range(start, start + n):
            ledger.post(s, self.legs(i), kind="transfer", memo="bench")
            s.commit()
        elapsed = time.perf_counter() - began
        assert ledger.verify(s).ok
        s.remove()
        return n / elapsed

    def close(self) -> None:
        from timebank.core.extensions import db

        self.conn.close()
        db.engine.dispose()
        self.context.pop()


def timed(side, start: int, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for ``n`` transactions of ``side``."""
    wall, cpu = time.perf_counter(), time.process_time()
    side.run(start, n)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="transactions per side")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per_round = max(1, args.n // args.rounds)
    n = per_round * args.rounds
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as folder:
        # Warm up the file system and Python, then measure both sides in this one run.
        warm = Raw(os.path.join(folder, "warm.sqlite"))
        warm.run(0, 200)
        warm.close()
        raw, led = Raw(os.path.join(folder, "raw.sqlite")), Ledger(folder)
        led.run(0, 100)
        totals = {"raw": [0.0, 0.0], "ledger": [0.0, 0.0]}
        for r in range(args.rounds):
            order = [("raw", raw), ("ledger", led)]
            for name, side in (order if r % 2 == 0 else order[::-1]):
                wall, cpu = timed(side, 100 + r * per_round, per_round)
                totals[name][0] += wall
                totals[name][1] += cpu
        session = led.session_rate(100 + n, n)
        raw.close()
        led.close()
    raw_wall, raw_cpu = totals["raw"]
    led_wall, led_cpu = totals["ledger"]
    print(f"transactions per side: {n} in {args.rounds} alternating rounds")
    print(f"raw sqlite inserts per second (1 row per transaction): {n / raw_wall:,.0f} "
          f"(CPU {raw_cpu / n * 1e6:,.0f} us per transaction)")
    print(f"ledger transfers per second on a connection (2 postings per transaction): {n / led_wall:,.0f} "
          f"(CPU {led_cpu / n * 1e6:,.0f} us per transaction)")
    print(f"ledger transfers per second through the ORM session: {session:,.0f}")
    print(f"CPU only (time.process_time, no disk waits): ledger/raw_sqlite = {raw_cpu / led_cpu:.3f}")
    ratio = raw_wall / led_wall
    print(f"target: ledger/raw_sqlite >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'}")
    print(f"ledger/raw_sqlite = {ratio:.2f}")


if __name__ == "__main__":
    main()
