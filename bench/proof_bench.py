"""Inclusion proofs, balance reads and ``verify`` as the ledger grows (10k, 100k and, with --full, 1M).

The ledger is built through ``ledger.post`` on a Core connection (the full hot path: balance checks,
hash chain, triggers), many transactions per database transaction so building is quick: grants to
1,000 wallets and transfers between them. At each size it measures, on the same database:

- the first fill of the Merkle cache for the leaves added since the last size (one ``sync``);
- inclusion proofs as ``GET .../inclusion-proof`` computes them (a fresh ``MerkleTree`` per proof:
  size, audit path, leaf hash, root) for random leaves with a warm cache: p50 and p99;
- balance reads (``ledger.balance``) of random wallets: p50 and p99;
- ``ledger.verify`` over the whole ledger: seconds, and seconds per 1,000 transactions.

Targets: proofs under 5 ms (p99) at every size; balance reads flat (p50 at the largest size within
2x of the smallest); verify passes and its time per 1,000 transactions stays about constant (linear).
Prints the figures and, last, whether the targets were met.
Usage: python bench/proof_bench.py [--full] [--sizes 10000,100000] [--proofs N]
SQLite by default; PostgreSQL via TIMEBANK_DATABASE_URL (a dedicated database whose name contains
"bench"; it is wiped).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import benchlib

PROOF_TARGET_MS = 5.0
WALLETS = 1000
BATCH = 5000


def grow(engine, start: int, end: int, rng: random.Random) -> float:
    """Post transactions ``start+1 .. end``; returns seconds."""
    import ledger
    from ledger import Leg

    began = time.perf_counter()
    with engine.connect() as conn:
        n = start
        while n < end:
            with conn.begin():
                for _ in range(min(BATCH, end - n)):
                    n += 1
                    a = rng.randrange(WALLETS)
                    if n % 4 == 1:  # a grant now and then keeps wallets stocked
                        ledger.post(conn, [Leg("issuer", -50), Leg(f"wallet:{a}", 50)], kind="grant",
                                    category="volunteer", memo=f"grant {n}", actor="bench")
                    else:
                        b = (a + 1 + rng.randrange(WALLETS - 1)) % WALLETS
                        try:
                            ledger.post(conn, [Leg(f"wallet:{a}", -1), Leg(f"wallet:{b}", 1)], kind="transfer",
                                        memo=f"transfer {n}", actor="bench")
                        except ledger.InsufficientFunds:
                            ledger.post(conn, [Leg("issuer", -50), Leg(f"wallet:{a}", 50)], kind="grant",
                                        category="volunteer", memo=f"grant {n}", actor="bench")
    return time.perf_counter() - began


def measure(app, size: int, proofs: int, reads: int, rng: random.Random) -> dict:
    import ledger
    from ledger import merkle
    from ledger.tree import MerkleTree
    from timebank.core.extensions import db

    s = db.session
    began = time.perf_counter()
    tree = MerkleTree(s)
    tree.sync()
    s.commit()
    fill = time.perf_counter() - began
    # Same steps as the inclusion-proof endpoint, one fresh tree (one request) per proof; the first
    # few hundred only warm the database's page cache and are not counted.
    times = []
    warm = min(300, proofs)
    for _ in range(warm + proofs):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        tree = MerkleTree(s)
        total = tree.size()
        path = tree.inclusion_proof(index, total)
        leaf = tree.leaf_hash(index)
        root = tree.root(total)
        s.rollback()
        times.append(time.perf_counter() - t0)
        if len(times) % 97 == 0:  # now and then, check the proof really proves
            assert merkle.verify_inclusion(leaf, index, total, path, root)
    times = times[warm:]
    balance_times = []
    for _ in range(warm + reads):
        code = f"wallet:{rng.randrange(WALLETS)}"
        t0 = time.perf_counter()
        ledger.balance(s, code)
        s.rollback()
        balance_times.append(time.perf_counter() - t0)
    balance_times = balance_times[warm:]
    t0 = time.perf_counter()
    report = ledger.verify(s)
    verify_seconds = time.perf_counter() - t0
    s.rollback()
    return {"size": size, "fill": fill, "proof_p50": benchlib.percentile(times, 50) * 1000,
            "proof_p99": benchlib.percentile(times, 99) * 1000,
            "balance_p50": benchlib.percentile(balance_times, 50) * 1e6,
            "balance_p99": benchlib.percentile(balance_times, 99) * 1e6, "verify": verify_seconds,
            "verify_ok": report.ok and report.size == size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also 1,000,000 transactions")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes (default 10000,100000)")
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL"))
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [10_000, 100_000]
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    sizes.sort()

    import ledger
    from timebank.cli import init_db
    from timebank.core.extensions import db

    print(benchlib.machine())
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        instance = benchlib.Instance(folder, args.database_url)
        app = instance.app()
        print(f"database: {instance.dialect}; sizes: {', '.join(f'{s:,}' for s in sizes)}; proofs per size: "
              f"{args.proofs}; balance reads per size: {args.reads}")
        with app.app_context():
            init_db()
            s = db.session
            ledger.open_account(s, "issuer", "points", allow_negative=True)
            for w in range(WALLETS):
                ledger.open_account(s, f"wallet:{w}", "points")
            s.commit()
            built = 0
            for size in sizes:
                seconds = grow(db.engine, built, size, rng)
                print(f"built {built:,} -> {size:,} transactions in {seconds:.1f} s "
                      f"({(size - built) / seconds:,.0f} per second)")
                built = size
                r = measure(app, size, args.proofs, args.reads, rng)
                results.append(r)
                print(f"{size:>9,} transactions: cache fill for the new leaves {r['fill'] * 1000:,.0f} ms; "
                      f"inclusion proof p50 {r['proof_p50']:.2f} ms, p99 {r['proof_p99']:.2f} ms; "
                      f"balance read p50 {r['balance_p50']:.0f} us, p99 {r['balance_p99']:.0f} us; "
                      f"verify {r['verify']:.2f} s = {r['verify'] / size * 1000 * 1000:.1f} ms per 1k transactions "
                      f"({'ok' if r['verify_ok'] else 'FAILED'})")
            s.remove()
            db.engine.dispose()
    proofs_ok = all(r["proof_p99"] < PROOF_TARGET_MS for r in results)
    flat = results[-1]["balance_p50"] <= 2 * results[0]["balance_p50"]
    per_k = [r["verify"] / r["size"] * 1000 for r in results]
    linear = max(per_k) <= 2 * min(per_k)
    verified = all(r["verify_ok"] for r in results)
    print(f"verify per 1k transactions across sizes: {', '.join(f'{x * 1000:.1f} ms' for x in per_k)} "
          f"({'about constant: linear' if linear else 'NOT constant'})")
    print(f"balance read p50 from smallest to largest: {results[0]['balance_p50']:.0f} us -> "
          f"{results[-1]['balance_p50']:.0f} us ({'flat' if flat else 'NOT flat'})")
    ok = proofs_ok and flat and linear and verified
    print(f"target: inclusion proofs p99 < {PROOF_TARGET_MS:.0f} ms at every size, balance reads flat, verify "
          f"linear and passing: {'met' if ok else 'NOT met'} (proof p99 at {results[-1]['size']:,}: "
          f"{results[-1]['proof_p99']:.2f} ms)")


if __name__ == "__main__":
    main()
