"""Partitioning the ledger tables by month on PostgreSQL: measured against the plain tables at 10M
transactions (issue: "partition the ledger tables by month on PostgreSQL if your measurements at 10M
rows say it helps").

Two copies of the ledger's shape are built in one database, each in its own schema, with server-side
``INSERT ... SELECT generate_series(...)`` (no Python loop, no ``ledger.post``): ``--transactions``
transactions (default 10,000,000), two postings each, spread evenly over 36 months from 2024-01, on
6,007 accounts (4,000 household wallets, 2,000 residents' minutes, the issuance, supermarket and pool
accounts) of one community, with their ``account_owners`` rows. Half the transactions are claims,
three in ten purchases (these carry an idempotency key, as the API's sales do), one in ten returns
and one in ten time-bank minutes.

- ``plain``: the application's tables, columns, keys, indexes and constraints (migration 0001).
- ``part``: the same tables partitioned by month, ``PARTITION BY RANGE (created_at)``, 36 monthly
  partitions plus 3 created ahead. PostgreSQL requires every primary key and unique constraint of a
  partitioned table to include the partition key, so the transactions' key is ``(id, created_at)``
  and ``hash``, ``idempotency_key`` and ``reverses_id`` are unique per month only; the
  self-reference ``reverses_id -> id`` cannot be declared at all. Postings get a ``created_at``
  column (their transaction's, which ``ledger.post`` knows before it writes them) and are
  partitioned on it by the same months; their foreign key becomes ``(transaction_id, created_at) ->
  transactions (id, created_at)``. Partitioning the postings by ``transaction_id`` ranges aligned to
  months was rejected: a month's first id is known only when its first transaction is written, so
  each month's partition would have to be created by the writer, and no query filters postings by
  an id range anyway.

Keys, indexes and foreign keys are added after the load (for both copies, with
``maintenance_work_mem = 1GB`` in that session), then ``VACUUM (ANALYZE)``. The application's
triggers (``ledger/schema.py``) are not there during the load; they are installed afterwards and
are active while the inserts below are timed. Wallet balances start at 10^12 so that the balance
check never refuses a timed insert (the bench does not run ``verify``).

Then, alternating the sides in every round (``--rounds``, default 5; warm caches), it measures and
prints medians:

1. one month's flows as the monthly report and the ``month_totals`` job read them (the month's
   transactions through the index on ``created_at`` as a materialized CTE, joined to their postings
   and the accounts' owners, summed per account and kind), for the newest month and a middle one;
2. a household statement (``timebank/audit/statements.py``): a wallet's opening balance (the sum of
   its postings before the month) and its month's transactions, for 10 wallets;
3. the ledger export's reads (``timebank/audit/ledger_browser.py``): the community's transactions in
   id order filtered with ``EXISTS``, in batches of 2,000, and each batch's postings, for the first
   ``--export-transactions`` transactions (default 500,000, i.e. 1,000,000 CSV rows); the time of the
   whole ledger is extrapolated linearly from it;
4. ``ledger.post``'s statements, one transaction per database transaction with the triggers active:
   the writer's advisory lock, the idempotency-key lookup, the accounts and the head of the chain,
   two postings, the transaction row, COMMIT (``synchronous_commit`` as the server has it);
   ``--inserts`` per side (default 1,000) into the newest full month; median and p99, without and
   with the COMMIT;
5. the size on disk of each copy (``pg_total_relation_size``, partitions summed) and the build time.

The partitioned copy is measured twice: ``part`` with the application's queries and triggers as
they are, and ``part+`` with them rewritten to name ``created_at`` on the postings too (so that
PostgreSQL can skip the other months' partitions); the plain copy has only the application's.
Every read is checked to give the same answer on every side.

At 10M on the two-core machine of docs/performance.md the two builds alone took 985 s; the run
recorded there used ``--rounds 3 --export-transactions 250000`` and took 28.6 minutes in all.

Usage: python bench/partition_bench.py [--transactions N] [--rounds R] [--inserts N]
       [--export-transactions N] [--database-url URL] [--reuse] [--drop]
The database is ``TIMEBANK_DATABASE_URL`` or ``--database-url``, default
postgresql+psycopg://postgres@127.0.0.1:5432/tb_bench_part (created when missing); its name must
contain "bench". ``--reuse`` keeps copies of the same size built by an earlier run; ``--drop`` drops
the database at the end. Prints, last, whether partitioning helps, with the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import time
from datetime import datetime, timedelta

import benchlib
import psycopg
from sqlalchemy.engine import make_url

from ledger.schema import POSTGRES_DDL

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/tb_bench_part"
FIRST = datetime(2024, 1, 1)
MONTHS = 36
AHEAD = 3
CATEGORIES = ("volunteer", "red", "moral", "neighbour_help")
HOUSEHOLDS = 4000
RESIDENTS = 2000
#: Account ids: 1-4 the issuance accounts of the categories, 5 the supermarket, 6 minutes' issuance,
#: 7 the pool, then the households' wallets, then the residents' minutes.
SHOP, MINUTES_ISSUANCE, POOL, FIRST_WALLET = 5, 6, 7, 8
FIRST_RESIDENT = FIRST_WALLET + HOUSEHOLDS
EXPORT_BATCH = 2000
WRITER_LOCK = 0x7469_6D65
#: The sides as measured: (label, schema, form of the SQL). "app": the application's SQL as it is;
#: "bounded" (plain tables, the month's flows only): the postings also limited to the id range of the
#: month's transactions; "pruned" (partitioned tables): the postings' created_at named as well.
SIDES = (("plain", "plain", "app"), ("plain+", "plain", "bounded"), ("part", "part", "app"),
         ("part+", "part", "pruned"))
#: plain+ differs from plain only in the month's flows; the other measures skip it.
OTHER_SIDES = tuple(side for side in SIDES if side[0] != "plain+")


def month_start(n: int) -> datetime:
    """The first moment of month ``n`` counted from FIRST (0 = 2024-01)."""
    return datetime(FIRST.year + (FIRST.month - 1 + n) // 12, (FIRST.month - 1 + n) % 12 + 1, 1)


# --- the two copies -------------------------------------------------------------------------------

def accounts_ddl(schema: str) -> list[str]:
    """The accounts and their owners (small; the same in both copies)."""
    wallet_rows = (f"SELECT {FIRST_WALLET} + h, 'household:' || (h + 1) || ':points', 'points', false "
                   f"FROM generate_series(0, {HOUSEHOLDS - 1}) AS h")
    resident_rows = (f"SELECT {FIRST_RESIDENT} + r, 'resident:' || (r + 1) || ':minutes', 'minutes', false "
                     f"FROM generate_series(0, {RESIDENTS - 1}) AS r")
    fixed = ", ".join(
        [f"({n + 1}, 'community:1:issuance:{c}', 'points', true)" for n, c in enumerate(CATEGORIES)]
        + [f"({SHOP}, 'community:1:supermarket:points', 'points', true)",
           f"({MINUTES_ISSUANCE}, 'community:1:issuance:minutes', 'minutes', true)",
           f"({POOL}, 'community:1:pool:minutes', 'minutes', true)"])
    return [
        f"""CREATE TABLE {schema}.ledger_accounts (
            id integer NOT NULL, code varchar(128) NOT NULL, unit varchar(16) NOT NULL,
            allow_negative boolean NOT NULL, balance bigint NOT NULL, created_at timestamp NOT NULL,
            CONSTRAINT ck_ledger_accounts_unit CHECK (unit IN ('points', 'minutes')),
            CONSTRAINT ck_ledger_accounts_wallet_not_negative CHECK (allow_negative OR balance >= 0),
            CONSTRAINT pk_ledger_accounts PRIMARY KEY (id),
            CONSTRAINT uq_ledger_accounts_code UNIQUE (code))""",
        f"""INSERT INTO {schema}.ledger_accounts (id, code, unit, allow_negative, balance, created_at)
            SELECT id, code, unit, negative, CASE WHEN negative THEN 0 ELSE 1000000000000 END,
                   timestamp '{FIRST:%Y-%m-%d}'
            FROM (SELECT * FROM (VALUES {fixed}) AS f (id, code, unit, negative)
                  UNION ALL {wallet_rows} UNION ALL {resident_rows}) AS a""",
        f"""CREATE TABLE {schema}.account_owners (
            account_id integer NOT NULL REFERENCES {schema}.ledger_accounts (id),
            community_id integer NOT NULL, household_id integer, resident_id integer,
            CONSTRAINT pk_account_owners PRIMARY KEY (account_id))""",
        f"""INSERT INTO {schema}.account_owners
            SELECT id, 1,
                   CASE WHEN id >= {FIRST_WALLET} AND id < {FIRST_RESIDENT} THEN id - {FIRST_WALLET} + 1 END,
                   CASE WHEN id >= {FIRST_RESIDENT} THEN id - {FIRST_RESIDENT} + 1 END
            FROM {schema}.ledger_accounts""",
        f"CREATE INDEX ix_account_owners_community_id ON {schema}.account_owners (community_id)",
        f"CREATE INDEX ix_account_owners_household_id ON {schema}.account_owners (household_id)",
        f"CREATE INDEX ix_account_owners_resident_id ON {schema}.account_owners (resident_id)",
    ]


def tables_ddl(schema: str, partitioned: bool) -> list[str]:
    """The two big tables, without keys and indexes (added after the load)."""
    by_month = " PARTITION BY RANGE (created_at)" if partitioned else ""
    statements = [
        f"""CREATE TABLE {schema}.ledger_transactions (
            id bigint NOT NULL, kind varchar(32) NOT NULL, category varchar(32), memo text NOT NULL,
            actor varchar(128), reference varchar(128), reverses_id bigint, idempotency_key varchar(255),
            request_hash varchar(64), created_at timestamp NOT NULL, leaf_hash varchar(64) NOT NULL,
            prev_hash varchar(64) NOT NULL, hash varchar(64) NOT NULL){by_month}""",
        f"""CREATE TABLE {schema}.ledger_postings (
            id bigserial NOT NULL, transaction_id bigint NOT NULL, account_id integer NOT NULL,
            amount bigint NOT NULL, unit varchar(16) NOT NULL,
            {'created_at timestamp NOT NULL,' if partitioned else ''}
            CONSTRAINT ck_ledger_postings_unit CHECK (unit IN ('points', 'minutes')),
            CONSTRAINT ck_ledger_postings_amount_not_zero CHECK (amount <> 0)){by_month}""",
    ]
    if partitioned:
        for n in range(MONTHS + AHEAD):
            lo, hi = month_start(n), month_start(n + 1)
            for table in ("ledger_transactions", "ledger_postings"):
                statements.append(f"CREATE TABLE {schema}.{table}_{lo:%Y_%m} PARTITION OF {schema}.{table} "
                                  f"FOR VALUES FROM ('{lo:%Y-%m-%d}') TO ('{hi:%Y-%m-%d}')")
    return statements


def keys_ddl(schema: str, partitioned: bool) -> list[str]:
    """Keys, indexes and foreign keys: the application's (migration 0001), or what PostgreSQL allows
    on tables partitioned by created_at."""
    t, p = f"{schema}.ledger_transactions", f"{schema}.ledger_postings"
    with_month = ", created_at" if partitioned else ""
    statements = [
        f"ALTER TABLE {t} ADD CONSTRAINT pk_ledger_transactions PRIMARY KEY (id{with_month})",
        f"ALTER TABLE {t} ADD CONSTRAINT uq_ledger_transactions_hash UNIQUE (hash{with_month})",
        f"ALTER TABLE {t} ADD CONSTRAINT uq_ledger_transactions_idempotency_key UNIQUE (idempotency_key{with_month})",
        f"ALTER TABLE {t} ADD CONSTRAINT uq_ledger_transactions_reverses_id UNIQUE (reverses_id{with_month})",
        f"CREATE INDEX ix_ledger_transactions_category ON {t} (category)",
        f"CREATE INDEX ix_ledger_transactions_created_at ON {t} (created_at)",
        f"CREATE INDEX ix_ledger_transactions_reference ON {t} (reference)",
        f"ALTER TABLE {p} ADD CONSTRAINT pk_ledger_postings PRIMARY KEY (id{with_month})",
        f"CREATE INDEX ix_ledger_postings_account_tx ON {p} (account_id, transaction_id)",
        f"CREATE INDEX ix_ledger_postings_transaction_id ON {p} (transaction_id)",
        f"ALTER TABLE {p} ADD CONSTRAINT fk_ledger_postings_transaction_id_ledger_transactions "
        f"FOREIGN KEY (transaction_id{with_month}) REFERENCES {t} (id{with_month}) DEFERRABLE INITIALLY DEFERRED",
        f"ALTER TABLE {p} ADD CONSTRAINT fk_ledger_postings_account_id_ledger_accounts "
        f"FOREIGN KEY (account_id) REFERENCES {schema}.ledger_accounts (id)",
    ]
    if not partitioned:  # reverses_id alone is not unique on the partitioned table: no foreign key
        statements.append(f"ALTER TABLE {t} ADD CONSTRAINT fk_ledger_transactions_reverses_id_ledger_transactions "
                          f"FOREIGN KEY (reverses_id) REFERENCES {t} (id)")
    return statements


def step_microseconds(total: int) -> int:
    return int((month_start(MONTHS) - FIRST).total_seconds() * 1_000_000) // total


def load_sql(schema: str, partitioned: bool, lo: int, hi: int, total: int) -> list[str]:
    """Transactions ``lo..hi`` and their postings, generated by the server.

    ``hash`` is a SHA-256 (random to the unique index, as the real ones are) and ``prev_hash`` the
    previous transaction's; ``leaf_hash``, which nothing indexes or reads here, is ``hash`` reversed
    (64 hex characters, as wide as the real one). Each posting row is computed from its own id (2i - 1
    and 2i for transaction i), so that a transaction's two postings are written next to each other as
    ``ledger.post`` writes them."""
    moment = f"(timestamp '{FIRST:%Y-%m-%d}' + (i - 1) * interval '{step_microseconds(total)} microseconds')"
    kind = ("CASE WHEN i % 10 < 5 THEN 'claim' WHEN i % 10 < 8 THEN 'redemption' "
            "WHEN i % 10 = 8 THEN 'return' ELSE 'help' END")
    categories = "ARRAY[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "]"
    sale = "i % 10 BETWEEN 5 AND 7"
    transactions = f"""
        INSERT INTO {schema}.ledger_transactions (id, kind, category, memo, actor, reference, reverses_id,
            idempotency_key, request_hash, created_at, leaf_hash, prev_hash, hash)
        SELECT i, {kind},
               CASE WHEN i % 10 < 5 THEN ({categories})[i % 10 % 4 + 1] END,
               {kind} || ' ' || i, 'user:' || (i % 50),
               CASE WHEN i % 10 < 5 THEN 'claim:' || i WHEN {sale} THEN 'redemption:' || i END,
               NULL,
               CASE WHEN {sale} THEN 'sale-' || i END,
               CASE WHEN {sale} THEN encode(sha256(int8send(-i)), 'hex') END,
               {moment},
               reverse(h),
               CASE WHEN i = 1 THEN repeat('0', 64) ELSE encode(sha256(int8send(i - 1)), 'hex') END,
               h
        FROM (SELECT i, encode(sha256(int8send(i)), 'hex') AS h
              FROM generate_series({lo}::bigint, {hi}::bigint) AS i OFFSET 0) AS generated"""
    wallet = f"{FIRST_WALLET} + (i / 10) % {HOUSEHOLDS}"
    resident = f"{FIRST_RESIDENT} + (i / 10) % {RESIDENTS}"
    debit = (f"CASE WHEN i % 10 < 5 THEN i % 10 % 4 + 1 WHEN {sale} THEN {wallet} WHEN i % 10 = 8 THEN {SHOP} "
             f"ELSE {MINUTES_ISSUANCE} END")
    credit = (f"CASE WHEN i % 10 < 5 THEN {wallet} WHEN {sale} THEN {SHOP} WHEN i % 10 = 8 THEN {wallet} "
              f"ELSE {resident} END")
    amount = "CASE WHEN i % 10 < 5 THEN 20 WHEN i % 10 < 8 THEN 15 WHEN i % 10 = 8 THEN 5 ELSE 60 END"
    unit = "CASE WHEN i % 10 = 9 THEN 'minutes' ELSE 'points' END"
    postings = f"""
        INSERT INTO {schema}.ledger_postings (id, transaction_id, account_id, amount, unit
            {', created_at' if partitioned else ''})
        SELECT j, i, CASE WHEN j % 2 = 1 THEN {debit} ELSE {credit} END,
               CASE WHEN j % 2 = 1 THEN -({amount}) ELSE {amount} END, {unit}
               {', ' + moment if partitioned else ''}
        FROM (SELECT j, (j + 1) / 2 AS i FROM generate_series({2 * lo - 1}::bigint, {2 * hi}::bigint) AS j
              OFFSET 0) AS generated"""
    return [transactions, postings]


def build(conn: psycopg.Connection, schema: str, partitioned: bool, total: int) -> dict:
    """One copy: tables, the load (in 36 statements per table), keys and indexes, VACUUM (ANALYZE)."""
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.execute(f"CREATE SCHEMA {schema}")
    for statement in accounts_ddl(schema) + tables_ddl(schema, partitioned):
        conn.execute(statement)
    figures = {}
    began = time.perf_counter()
    chunk = -(-total // MONTHS)
    for lo in range(1, total + 1, chunk):
        with conn.transaction():
            for statement in load_sql(schema, partitioned, lo, min(total, lo + chunk - 1), total):
                conn.execute(statement)
    conn.execute(f"SELECT setval('{schema}.ledger_postings_id_seq', {2 * total})")
    figures["load"] = time.perf_counter() - began
    began = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    for statement in keys_ddl(schema, partitioned):
        conn.execute(statement)
    conn.execute("RESET maintenance_work_mem")
    figures["keys"] = time.perf_counter() - began
    began = time.perf_counter()
    for table in ("ledger_accounts", "account_owners", "ledger_transactions", "ledger_postings"):
        conn.execute(f"VACUUM (ANALYZE) {schema}.{table}")
    figures["vacuum"] = time.perf_counter() - began
    conn.execute(f"SET search_path = {schema}")
    for statement in POSTGRES_DDL:  # the application's triggers, as the migrations install them
        conn.execute(statement)
    conn.execute("RESET search_path")
    conn.execute(f"CREATE TABLE {schema}.bench_built (transactions bigint, load float8, keys float8, vacuum float8)")
    conn.execute(f"INSERT INTO {schema}.bench_built VALUES (%s, %s, %s, %s)",
                 (total, figures["load"], figures["keys"], figures["vacuum"]))
    return figures


def built(conn: psycopg.Connection, schema: str, total: int) -> dict | None:
    """The build figures of a copy of ``total`` transactions kept by an earlier run, if there is one."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.bench_built",)).fetchone()
    if not row[0]:
        return None
    row = conn.execute(f"SELECT transactions, load, keys, vacuum FROM {schema}.bench_built").fetchone()
    if row is None or row[0] != total:
        return None
    return {"load": row[1], "keys": row[2], "vacuum": row[3]}


def size_of(conn: psycopg.Connection, schema: str, table: str) -> int:
    """Bytes on disk of a table with its indexes and TOAST (every partition's, when partitioned)."""
    return conn.execute("SELECT CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(relid))"
                        " FROM pg_partition_tree(c.oid)) ELSE pg_total_relation_size(c.oid) END"
                        " FROM pg_class c WHERE c.oid = %s::regclass", (f"{schema}.{table}",)).fetchone()[0]


# --- the triggers of the partitioned copy ----------------------------------------------------------

def _trigger_functions(pruned: bool) -> list[str]:
    """The application's two insert-trigger functions; with ``pruned``, their look-ups of the
    transaction's postings and of the posting's transaction also name created_at (the composite
    foreign key makes that the same check: a posting whose created_at differs from its transaction's
    is refused at commit)."""
    functions = [s for s in POSTGRES_DDL if "CREATE OR REPLACE FUNCTION ledger_posting_insert()" in s
                 or "CREATE OR REPLACE FUNCTION ledger_transaction_insert()" in s]
    assert len(functions) == 2
    if not pruned:
        return functions
    out = []
    for text in functions:
        changed = (text.replace("WHERE id = NEW.transaction_id)",
                                "WHERE id = NEW.transaction_id AND created_at = NEW.created_at)")
                   .replace("WHERE transaction_id = NEW.id",
                            "WHERE transaction_id = NEW.id AND created_at = NEW.created_at"))
        assert changed != text, "the application's trigger functions changed: update the bench"
        out.append(changed)
    return out


def use_triggers(conn: psycopg.Connection, pruned: bool) -> None:
    with conn.transaction():
        conn.execute("SET LOCAL search_path = part")
        for statement in _trigger_functions(pruned):
            conn.execute(statement)


# --- the reads --------------------------------------------------------------------------------------

def month_flows_sql(form: str) -> str:
    """One month's flows per account and kind (``_month_flows`` and ``_group_totals`` in
    timebank/reports/operations.py: the period as a materialized CTE, then its postings and their
    accounts' owners, the community filtered through ``community_id + 0``).

    On PostgreSQL the application's form lets the planner start from the owners (it cannot estimate
    ``community_id + 0``) and read every posting of the ledger; ``bounded`` gives the plain tables
    the same help that ``pruned`` gives the partitioned ones: only the postings of the month's
    transactions' id range can match, which the join to the period keeps exact whatever the order of
    ids and times."""
    if form in ("app", "bounded"):
        bounded = ("\n          AND p.transaction_id BETWEEN (SELECT min(id) FROM period)"
                   " AND (SELECT max(id) FROM period)" if form == "bounded" else "")
        return f"""
        WITH period AS MATERIALIZED (
            SELECT id, kind FROM ledger_transactions WHERE created_at >= %(lo)s AND created_at < %(hi)s)
        SELECT p.account_id, period.kind,
               coalesce(sum(CASE WHEN p.amount > 0 THEN p.amount ELSE 0 END), 0),
               coalesce(sum(CASE WHEN p.amount < 0 THEN -p.amount ELSE 0 END), 0)
        FROM period JOIN ledger_postings p ON p.transaction_id = period.id
        JOIN account_owners o ON o.account_id = p.account_id
        WHERE o.community_id + 0 IN (1){bounded}
        GROUP BY p.account_id, period.kind"""
    return """
        WITH period AS MATERIALIZED (
            SELECT id, kind, created_at FROM ledger_transactions WHERE created_at >= %(lo)s AND created_at < %(hi)s)
        SELECT p.account_id, period.kind,
               coalesce(sum(CASE WHEN p.amount > 0 THEN p.amount ELSE 0 END), 0),
               coalesce(sum(CASE WHEN p.amount < 0 THEN -p.amount ELSE 0 END), 0)
        FROM period JOIN ledger_postings p ON p.transaction_id = period.id AND p.created_at = period.created_at
        JOIN account_owners o ON o.account_id = p.account_id
        WHERE o.community_id + 0 IN (1) AND p.created_at >= %(lo)s AND p.created_at < %(hi)s
        GROUP BY p.account_id, period.kind"""


def statement_sql(form: str, partitioned: bool) -> tuple[str, str]:
    """The household statement's two reads (timebank/audit/statements.py): the opening balance and
    the month's transactions with the wallet's net in each. On the partitioned table the primary key
    is (id, created_at), so ``GROUP BY t.id`` alone no longer covers t's other columns: the
    application's query must group by both there."""
    group = "t.id, t.created_at" if partitioned else "t.id"
    columns = "t.id, t.kind, t.category, t.memo, t.actor, t.reference, t.reverses_id, t.created_at, t.leaf_hash"
    if form == "app":
        return ("""SELECT coalesce(sum(p.amount), 0) FROM ledger_postings p
                   JOIN ledger_transactions t ON t.id = p.transaction_id
                   WHERE p.account_id = %(a)s AND t.created_at < %(lo)s""",
                f"""SELECT {columns}, sum(p.amount) FROM ledger_transactions t
                    JOIN ledger_postings p ON p.transaction_id = t.id
                    WHERE p.account_id = %(a)s AND t.created_at >= %(lo)s AND t.created_at < %(hi)s
                    GROUP BY {group} ORDER BY t.id""")
    return ("""SELECT coalesce(sum(amount), 0) FROM ledger_postings WHERE account_id = %(a)s AND created_at < %(lo)s""",
            f"""SELECT {columns}, sum(p.amount) FROM ledger_transactions t
                JOIN ledger_postings p ON p.transaction_id = t.id AND p.created_at = t.created_at
                WHERE p.account_id = %(a)s AND p.created_at >= %(lo)s AND p.created_at < %(hi)s
                  AND t.created_at >= %(lo)s AND t.created_at < %(hi)s
                GROUP BY {group} ORDER BY t.id""")


def export_sql(form: str) -> tuple[str, str]:
    """The export's two reads per batch (``_export_rows`` in timebank/audit/ledger_browser.py)."""
    same_month = " AND p.created_at = t.created_at" if form == "pruned" else ""
    transactions = f"""
        SELECT t.id, t.created_at, t.kind, t.category, t.reference, t.memo, t.actor, t.reverses_id, t.hash
        FROM ledger_transactions t
        WHERE EXISTS (SELECT p.id FROM ledger_postings p JOIN account_owners o ON o.account_id = p.account_id
                      WHERE p.transaction_id = t.id{same_month} AND o.community_id = 1)
          AND t.id > %(after)s
        ORDER BY t.id LIMIT {EXPORT_BATCH}"""
    in_months = " AND p.created_at >= %(first)s AND p.created_at <= %(last)s" if form == "pruned" else ""
    postings = f"""
        SELECT p.transaction_id, a.code, p.amount, p.unit FROM ledger_postings p
        JOIN ledger_accounts a ON a.id = p.account_id
        WHERE p.transaction_id = ANY(%(ids)s){in_months}
        ORDER BY p.transaction_id, p.id"""
    return transactions, postings


def timed(conn: psycopg.Connection, sql: str, params: dict) -> tuple[float, list]:
    began = time.perf_counter()
    rows = conn.execute(sql, params).fetchall()
    seconds = time.perf_counter() - began
    conn.rollback()
    return seconds, rows


def read_statement(conn: psycopg.Connection, form: str, partitioned: bool, account: int,
                   lo: datetime, hi: datetime) -> tuple[float, tuple]:
    opening_sql, month_sql = statement_sql(form, partitioned)
    params = {"a": account, "lo": lo, "hi": hi}
    began = time.perf_counter()
    opening = conn.execute(opening_sql, params).fetchone()[0]
    rows = conn.execute(month_sql, params).fetchall()
    seconds = time.perf_counter() - began
    conn.rollback()
    return seconds, (int(opening), [(r[0], int(r[-1])) for r in rows])


def read_export(conn: psycopg.Connection, form: str, transactions: int) -> tuple[float, int, int]:
    """The export's reads for the first ``transactions`` transactions: seconds, transactions, postings."""
    tx_sql, postings_sql = export_sql(form)
    after, seen, legs = 0, 0, 0
    began = time.perf_counter()
    while seen < transactions:
        batch = conn.execute(tx_sql, {"after": after}).fetchall()
        if not batch:
            break
        ids = [r[0] for r in batch]
        params = {"ids": ids, "first": min(r[1] for r in batch), "last": max(r[1] for r in batch)}
        legs += len(conn.execute(postings_sql, params).fetchall())
        seen += len(batch)
        after = ids[-1]
    seconds = time.perf_counter() - began
    conn.rollback()
    return seconds, seen, legs


# --- the write path ----------------------------------------------------------------------------------

HEAD_SQL = ("SELECT a.code, a.id, a.unit, a.allow_negative, a.balance, h.id, h.hash FROM ledger_accounts a"
            " LEFT JOIN (SELECT id, hash FROM ledger_transactions ORDER BY id DESC LIMIT 1) h ON 1 = 1"
            " WHERE a.code IN (%(c0)s, %(c1)s)")
TRANSACTION_SQL = (
    "INSERT INTO ledger_transactions (id, kind, category, memo, actor, reference, reverses_id, idempotency_key,"
    " request_hash, created_at, leaf_hash, prev_hash, hash) VALUES (%(id)s, 'redemption', NULL, %(memo)s,"
    " 'user:1', %(reference)s, NULL, %(key)s, %(request_hash)s, %(created_at)s, %(leaf_hash)s, %(prev_hash)s,"
    " %(hash)s)")


def insert_one(conn: psycopg.Connection, partitioned: bool, n: int, wallet: int,
               moment: datetime) -> tuple[float, float]:
    """One purchase through ``ledger.post``'s statements: (seconds before COMMIT, seconds with it)."""
    key = f"bench-sale-{n}"
    codes = {"c0": f"household:{wallet - FIRST_WALLET + 1}:points", "c1": "community:1:supermarket:points"}
    began = time.perf_counter()
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
    if conn.execute("SELECT id, request_hash FROM ledger_transactions WHERE idempotency_key = %(k)s",
                    {"k": key}).fetchone() is not None:
        raise SystemExit(f"idempotency key {key} was used before: rebuild the copies (run without --reuse)")
    rows = conn.execute(HEAD_SQL, codes).fetchall()
    by_code = {r[0]: r for r in rows}
    head_id, head_hash = rows[0][5], rows[0][6]
    new_id = head_id + 1
    leaf = hashlib.sha256(f"{new_id}|{moment.isoformat()}|{key}".encode()).hexdigest()
    digest = hashlib.sha256((head_hash + leaf).encode()).hexdigest()
    legs = [(by_code[codes["c0"]][1], -15), (by_code[codes["c1"]][1], 15)]
    with conn.cursor() as cursor:
        if partitioned:
            cursor.executemany("INSERT INTO ledger_postings (transaction_id, account_id, amount, unit, created_at)"
                               " VALUES (%s, %s, %s, 'points', %s)",
                               [(new_id, account, amount, moment) for account, amount in legs])
        else:
            cursor.executemany("INSERT INTO ledger_postings (transaction_id, account_id, amount, unit)"
                               " VALUES (%s, %s, %s, 'points')",
                               [(new_id, account, amount) for account, amount in legs])
    conn.execute(TRANSACTION_SQL, {"id": new_id, "memo": f"receipt {n}", "reference": f"redemption:bench-{n}",
                                   "key": key, "request_hash": hashlib.sha256(key.encode()).hexdigest(),
                                   "created_at": moment, "leaf_hash": leaf, "prev_hash": head_hash,
                                   "hash": digest})
    statements = time.perf_counter() - began
    conn.commit()
    return statements, time.perf_counter() - began


# --- the run -------------------------------------------------------------------------------------------

def connect(url: str, dbname: str | None = None, **kwargs) -> psycopg.Connection:
    parsed = make_url(url).set(drivername="postgresql")
    if dbname is not None:
        parsed = parsed.set(database=dbname)
    return psycopg.connect(parsed.render_as_string(hide_password=False), **kwargs)


def ensure_database(url: str) -> str:
    name = make_url(url).database or ""
    if "bench" not in name:
        raise SystemExit(f"refusing database {name!r}: a benchmark database's name contains 'bench'")
    with connect(url, "postgres", autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inserts", type=int, default=1000, help="timed inserts per side (split over the rounds)")
    parser.add_argument("--export-transactions", type=int, default=500_000,
                        help="transactions read by the export's queries per side and round")
    parser.add_argument("--statements", type=int, default=10, help="wallets whose statement is read per round")
    parser.add_argument("--database-url", default=os.environ.get("TIMEBANK_DATABASE_URL") or DEFAULT_URL)
    parser.add_argument("--reuse", action="store_true", help="keep copies of the same size from an earlier run")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    total = args.transactions
    if total < 10 * MONTHS:
        raise SystemExit("--transactions must be at least 360")
    rng = random.Random(args.seed)

    started = time.perf_counter()
    print(benchlib.machine())
    print(benchlib.load_average() + " (start)")
    name = ensure_database(args.database_url)
    conn = connect(args.database_url, autocommit=True)
    settings = dict(conn.execute(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem',"
        " 'synchronous_commit', 'max_parallel_workers_per_gather', 'jit', 'server_version')").fetchall())
    print(f"database {name}: PostgreSQL {settings['server_version']}; shared_buffers {settings['shared_buffers']}, "
          f"work_mem {settings['work_mem']}, synchronous_commit {settings['synchronous_commit']}, "
          f"max_parallel_workers_per_gather {settings['max_parallel_workers_per_gather']}, jit {settings['jit']}")
    print(f"{total:,} transactions ({2 * total:,} postings) over {MONTHS} months from {FIRST:%Y-%m}, "
          f"{FIRST_RESIDENT + RESIDENTS - 1:,} accounts; {args.rounds} rounds alternating plain "
          f"(the plain copy, the application's SQL), plain+ (the plain copy, the month's flows bounded by the "
          f"period's ids), part (the partitioned copy, the application's SQL) and part+ (the partitioned copy, "
          f"the SQL naming the postings' created_at)")

    builds = {}
    for schema, partitioned in (("plain", False), ("part", True)):
        kept = built(conn, schema, total) if args.reuse else None
        if kept is None:
            figures = build(conn, schema, partitioned, total)
            print(f"built {schema}: load {figures['load']:.1f} s, keys and indexes {figures['keys']:.1f} s, "
                  f"VACUUM (ANALYZE) {figures['vacuum']:.1f} s")
        else:
            figures = kept
            print(f"kept {schema} from an earlier run (its build: load {figures['load']:.1f} s, keys and "
                  f"indexes {figures['keys']:.1f} s, VACUUM (ANALYZE) {figures['vacuum']:.1f} s)")
        figures["transactions"] = size_of(conn, schema, "ledger_transactions")
        figures["postings"] = size_of(conn, schema, "ledger_postings")
        builds[schema] = figures
    conn.close()

    sides = {}
    for label, schema, _form in SIDES:
        sides[label] = connect(args.database_url, options=f"-c search_path={schema}")
    newest, middle = MONTHS - 1, MONTHS // 2
    months = {"newest": (month_start(newest), month_start(newest + 1)),
              "middle": (month_start(middle), month_start(middle + 1))}
    statement_month = months["newest"]
    export_n = min(args.export_transactions, total)
    per_round = max(1, args.inserts // args.rounds)
    moment0 = month_start(newest) + timedelta(days=30, hours=12)

    flows = {(label, m): [] for label, _, _ in SIDES for m in months}
    statements = {label: [] for label, _, _ in OTHER_SIDES}
    exports = {label: [] for label, _, _ in OTHER_SIDES}
    inserts = {label: ([], []) for label, _, _ in OTHER_SIDES}
    answers: dict = {}
    exported: dict = {}
    n = 0

    def check(what, label, answer):
        first = answers.setdefault(what, (label, answer))
        if first[1] != answer:
            raise SystemExit(f"{what}: {label} answered differently from {first[0]}")

    # Warm each side once (the first read of a copy after the build is not what a server does daily).
    for label, _schema, form in SIDES:
        for lo, hi in months.values():
            timed(sides[label], month_flows_sql(form), {"lo": lo, "hi": hi})
    for r in range(args.rounds):
        wallets = [FIRST_WALLET + rng.randrange(HOUSEHOLDS) for _ in range(args.statements)]
        # Every side gets the same purchases (the same wallets, in the same order), so the reads of the
        # next round still have one answer.
        buyers = [FIRST_WALLET + rng.randrange(HOUSEHOLDS) for _ in range(per_round)]
        forward = r % 2 == 0
        # Before the first inserts every side holds the same ledger; after them the partitioned copy
        # holds the inserts of both of its sides, so answers are compared within a copy.
        for label, schema, form in SIDES if forward else reversed(SIDES):
            state = "all" if r == 0 else schema
            for m, (lo, hi) in months.items():
                seconds, rows = timed(sides[label], month_flows_sql(form), {"lo": lo, "hi": hi})
                flows[(label, m)].append(seconds)
                check(("flows", m, r, state), label, sorted((a, k, int(c), int(d)) for a, k, c, d in rows))
        for label, schema, form in OTHER_SIDES if forward else reversed(OTHER_SIDES):
            state = "all" if r == 0 else schema
            for account in wallets:
                seconds, answer = read_statement(sides[label], form, schema == "part", account, *statement_month)
                statements[label].append(seconds)
                check(("statement", account, r, state), label, answer)
        # The export's reads: long, so each side once per round, in the same alternating order.
        for label, _schema, form in OTHER_SIDES if forward else reversed(OTHER_SIDES):
            seconds, seen, legs = read_export(sides[label], form, export_n)
            exports[label].append(seconds)
            exported[label] = (seen, legs)
        # The write path: the partitioned copy's trigger functions are swapped to the side's form.
        for label, schema, form in OTHER_SIDES if forward else reversed(OTHER_SIDES):
            conn = sides[label]
            if schema == "part":
                use_triggers(conn, pruned=form == "pruned")
            for k, wallet in enumerate(buyers):
                n += 1
                moment = moment0 + timedelta(milliseconds=r * per_round + k)
                before, whole = insert_one(conn, schema == "part", n, wallet, moment)
                inserts[label][0].append(before)
                inserts[label][1].append(whole)
        print(f"round {r + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s since the start)")
    use_triggers(sides["part"], pruned=False)  # leave the application's triggers in place
    if len(set(exported.values())) != 1:
        raise SystemExit(f"the export read different rows: {exported}")

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print()
    print(f"medians of {args.rounds} rounds (xR: plain's time / the side's; above 1 the side is faster)")
    for m, (lo, _hi) in months.items():
        base = ms(flows[("plain", m)])
        print(f"1. month's flows, {m} month ({lo:%Y-%m}, {total // MONTHS:,} transactions): "
              + "; ".join(f"{label} {ms(flows[(label, m)]):,.1f} ms (x{base / ms(flows[(label, m)]):.2f})"
                          for label, _, _ in SIDES))
    base = ms(statements["plain"])
    print(f"2. household statement ({statement_month[0]:%Y-%m}, opening balance + the month's rows, "
          f"{args.statements} wallets a round, median of {args.statements * args.rounds}): "
          + "; ".join(f"{label} {ms(statements[label]):,.2f} ms (x{base / ms(statements[label]):.2f})"
                      for label, _, _ in OTHER_SIDES))
    seen, legs = exported["plain"]
    base = ms(exports["plain"])
    print(f"3. export reads, first {seen:,} transactions ({legs:,} CSV rows) in batches of {EXPORT_BATCH:,}: "
          + "; ".join(f"{label} {ms(exports[label]) / 1000:,.2f} s (x{base / ms(exports[label]):.2f}; "
                      f"the whole ledger at that rate {ms(exports[label]) / 1000 * total / seen:,.0f} s)"
                      for label, _, _ in OTHER_SIDES))
    count = len(inserts["plain"][1])
    for which, what in ((0, "statements before COMMIT"), (1, "with COMMIT")):
        base = ms(inserts["plain"][which])
        print(f"4. insert of one transaction ({count:,} a side, {what}): "
              + "; ".join(f"{label} p50 {ms(inserts[label][which]):.2f} ms (x{base / ms(inserts[label][which]):.2f}),"
                          f" p99 {benchlib.percentile(inserts[label][which], 99) * 1000:.2f} ms"
                          for label, _, _ in OTHER_SIDES))
    for schema in ("plain", "part"):
        b = builds[schema]
        gib = 2**30
        print(f"5. {schema}: transactions {b['transactions'] / gib:.2f} GiB, postings {b['postings'] / gib:.2f} GiB,"
              f" total {(b['transactions'] + b['postings']) / gib:.2f} GiB (tables, indexes, TOAST); build"
              f" {b['load'] + b['keys'] + b['vacuum']:.0f} s (load {b['load']:.0f} s, keys and indexes"
              f" {b['keys']:.0f} s, VACUUM (ANALYZE) {b['vacuum']:.0f} s)")

    for conn in sides.values():
        conn.close()
    print(benchlib.load_average() + " (end)")
    print(f"whole run: {time.perf_counter() - started:.0f} s")
    if args.drop:
        with connect(args.database_url, "postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}"')
        print(f"dropped database {name}")

    # The verdict: the partitioned copy with its rewritten SQL (part+) against the plain copy with the
    # best SQL it has for each read (plain+ for the month's flows). Partitioning helps when that makes
    # a measured path clearly faster (x1.5 or more) and none clearly slower (below x0.83, 1.2 times as
    # long).
    best_flows = {m: min(ms(flows[("plain", m)]), ms(flows[("plain+", m)])) for m in months}
    ratios = {
        "report newest": best_flows["newest"] / ms(flows[("part+", "newest")]),
        "report middle": best_flows["middle"] / ms(flows[("part+", "middle")]),
        "statement": ms(statements["plain"]) / ms(statements["part+"]),
        "export": ms(exports["plain"]) / ms(exports["part+"]),
        "insert": ms(inserts["plain"][1]) / ms(inserts["part+"][1]),
    }
    as_is = {
        "report newest": ms(flows[("plain", "newest")]) / ms(flows[("part", "newest")]),
        "report middle": ms(flows[("plain", "middle")]) / ms(flows[("part", "middle")]),
        "statement": ms(statements["plain"]) / ms(statements["part"]),
        "export": ms(exports["plain"]) / ms(exports["part"]),
        "insert": ms(inserts["plain"][1]) / ms(inserts["part"][1]),
    }
    faster = [k for k, v in ratios.items() if v >= 1.5]
    slower = [k for k, v in ratios.items() if v < 1 / 1.2]
    if faster and not slower:
        verdict = f"partitioning by month HELPS (faster: {', '.join(faster)})"
    elif faster:
        verdict = f"partitioning by month is MIXED (faster: {', '.join(faster)}; slower: {', '.join(slower)})"
    else:
        verdict = "partitioning by month does NOT help (no measured path 1.5 times as fast" + (
            f"; slower: {', '.join(slower)})" if slower else ")")
    print(f"verdict at {total:,} transactions: {verdict}; best plain SQL / part+: "
          + ", ".join(f"{k} x{v:.2f}" for k, v in ratios.items())
          + "; the application's SQL unchanged, plain / part: "
          + ", ".join(f"{k} x{v:.2f}" for k, v in as_is.items()))

if __name__ == "__main__":
    main()
