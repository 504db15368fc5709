"""Ledger write throughput against raw SQLite, measured in one run.

Both sides use WAL, BEGIN IMMEDIATE and one commit per transaction, and each commit waits for the
disk: the raw side with synchronous=FULL, the application's connections by flushing the WAL
themselves right after COMMIT (timebank/core/database.py). The ledger side writes one transfer of two postings
per database transaction through the full stack (SQLAlchemy session, balance checks, hash chain,
database triggers). The raw side inserts one row per transaction with the sqlite3 module.

Prints the figures and, last, ``ledger/raw_sqlite = R`` (target: at least 0.35).
Usage: python bench/ledger_bench.py [N]
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
TARGET = 0.35


def raw_sqlite(path: str, n: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, account TEXT, amount INTEGER, memo TEXT)")
    start = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (account, amount, memo) VALUES (?, ?, ?)", ("a", i + 1, "bench"))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return n / elapsed


def ledger_stack(folder: str, n: int) -> float:
    import ledger
    from ledger import Leg
    from timebank import create_app
    from timebank.cli import init_db
    from timebank.core.extensions import db

    app = create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "bench",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{os.path.join(folder, 'bench.sqlite')}"})
    with app.app_context():
        init_db()
        s = db.session
        ledger.open_account(s, "issuer", "points", allow_negative=True)
        ledger.open_account(s, "a", "points")
        ledger.open_account(s, "b", "points")
        ledger.post(s, [Leg("issuer", -1_000_000), Leg("a", 1_000_000)], kind="grant")
        s.commit()
        s.remove()
        # The ledger core on a Core connection of the application's engine (same settings).
        with db.engine.connect() as conn:
            start = time.perf_counter()
            for i in range(n):
                src, dst = ("a", "b") if i % 2 == 0 else ("b", "a")
                amount = (i // 2) % 7 + 1
                with conn.begin():
                    ledger.post(conn, [Leg(src, -amount), Leg(dst, amount)], kind="transfer", memo="bench")
            elapsed_core = time.perf_counter() - start
        # The same through the ORM session, as a request handler does it.
        start = time.perf_counter()
        for i in range(n):
            src, dst = ("a", "b") if i % 2 == 0 else ("b", "a")
            amount = (i // 2) % 7 + 1
            ledger.post(s, [Leg(src, -amount), Leg(dst, amount)], kind="transfer", memo="bench")
            s.commit()
        elapsed_session = time.perf_counter() - start
        assert ledger.verify(s).ok
    print(f"ledger transfers per second through the ORM session: {n / elapsed_session:,.0f}")
    return n / elapsed_core


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        # Warm up the file system and Python, then measure both sides in this one run.
        raw_sqlite(os.path.join(folder, "warm.sqlite"), 200)
        raw = raw_sqlite(os.path.join(folder, "raw.sqlite"), N)
        led = ledger_stack(folder, N)
    print(f"transactions per side: {N}")
    print(f"raw sqlite inserts per second (1 row per transaction): {raw:,.0f}")
    print(f"ledger transfers per second on a connection (2 postings per transaction): {led:,.0f}")
    ratio = led / raw
    print(f"target: ledger/raw_sqlite >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'}")
    print(f"ledger/raw_sqlite = {ratio:.2f}")


if __name__ == "__main__":
    main()
