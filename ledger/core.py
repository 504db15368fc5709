"""Posting, reversing, reading balances and verifying the chain.

Every function takes a SQLAlchemy ``Connection`` or ``Session`` (:data:`ledger.driver.Bind`) and
works inside the caller's database transaction: the ledger flushes but never commits, so a caller
can move stock and points in one database transaction, or neither. The units and the writer lock
are the application's (:func:`ledger.configure`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import IntegrityError

from ledger import config, driver, encoding
from ledger.driver import Bind
from ledger.errors import (
    AlreadyReversed,
    IdempotencyKeyReused,
    InsufficientFunds,
    NotReversible,
    UnbalancedTransaction,
    UnknownAccount,
    UnknownUnit,
)
from ledger.models import Account, Posting, Transaction


@dataclass(frozen=True)
class Leg:
    """One requested posting: ``amount`` is signed, positive into the account."""

    account: str
    amount: int


@dataclass
class PostedTransaction:
    id: int
    kind: str
    category: str | None
    memo: str
    actor: str | None
    reference: str | None
    reverses_id: int | None
    created_at: datetime
    leaf_hash: str
    prev_hash: str
    hash: str
    postings: list[tuple[str, int, str]] = field(default_factory=list)  # (account, amount, unit)
    #: True when an idempotent retry returned an existing transaction.
    replayed: bool = False
    #: Each account's balance right after this transaction (filled by :func:`post`, not by a replay).
    balances: dict[str, int] = field(default_factory=dict)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


# The hot path talks to the driver's cursor with SQL written once per dialect: building SQLAlchemy
# statements per call cost more than the database work itself (see bench/ledger_bench.py).
_SQL = {
    "by_key": "SELECT id, request_hash FROM ledger_transactions WHERE idempotency_key = {k}",
    # The head of the chain on its own (post_many; post reads it with the accounts).
    "head": "SELECT id, hash FROM ledger_transactions ORDER BY id DESC LIMIT 1",
    "posting": "INSERT INTO ledger_postings (transaction_id, account_id, amount, unit) VALUES ({t}, {a}, {m}, {u})",
    "transaction": (
        "INSERT INTO ledger_transactions (id, kind, category, memo, actor, reference, reverses_id,"
        " idempotency_key, request_hash, created_at, leaf_hash, prev_hash, hash) VALUES ({id}, {kind},"
        " {category}, {memo}, {actor}, {reference}, {reverses_id}, {idempotency_key}, {request_hash},"
        " {created_at}, {leaf_hash}, {prev_hash}, {hash})"
    ),
}


_SQL_BY_DIALECT = driver.per_dialect(_SQL)


@lru_cache(maxsize=64)
def _accounts_and_head_sql(dialect: str, count: int, keyed: bool = False) -> str:
    """The named accounts, each row with the head of the chain and, when ``keyed``, the transaction
    already written with the idempotency key ``k`` (its id and request hash, or NULLs): one statement,
    one round trip, read after the writer lock (on PostgreSQL a statement sees what was committed
    when it started)."""
    codes = ", ".join(driver.mark(dialect, f"c{n}") for n in range(count))
    columns, joined = "", ""
    if keyed:
        columns = ", e.id, e.request_hash"
        joined = (" LEFT JOIN (SELECT id, request_hash FROM ledger_transactions"
                  f" WHERE idempotency_key = {driver.mark(dialect, 'k')}) e ON 1 = 1")
    return (f"SELECT a.code, a.id, a.unit, a.allow_negative, a.balance, h.id, h.hash{columns} FROM ledger_accounts a"
            " LEFT JOIN (SELECT id, hash FROM ledger_transactions ORDER BY id DESC LIMIT 1) h ON 1 = 1"
            f"{joined} WHERE a.code IN ({codes})")


def _cursor(conn: Connection) -> tuple[DBAPICursor, dict[str, str]]:
    """A driver cursor inside the connection's current transaction, and the SQL for its dialect."""
    return conn.connection.cursor(), _SQL_BY_DIALECT[conn.dialect.name]


_connection = driver.connection


def lock_writer(session: Bind) -> None:
    """Serialise ledger writers with the application's writer lock (:func:`ledger.configure`; by
    default an advisory lock on PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite) for the rest of the
    current transaction."""
    config.settings.writer_lock(_connection(session))


def open_account(session: Bind, code: str, unit: str, allow_negative: bool = False,
                 now: datetime | None = None) -> int:
    """Create the account if it does not exist; return its id. Safe under concurrent callers.

    Raises :class:`UnknownUnit` unless the application declared ``unit`` (:func:`ledger.configure`).
    """
    if unit not in config.settings.units:
        raise UnknownUnit(unit, config.settings.units)
    row = session.execute(
        select(Account.id, Account.unit, Account.allow_negative).where(Account.code == code)
    ).first()
    if row is None:
        dialect = _connection(session).dialect.name
        values = dict(
            code=code, unit=unit, allow_negative=allow_negative, balance=0,
            created_at=_naive_utc(now or _utcnow()),
        )
        insert = postgresql.insert(Account) if dialect == "postgresql" else sqlite.insert(Account)
        session.execute(insert.values(**values).on_conflict_do_nothing())
        row = session.execute(
            select(Account.id, Account.unit, Account.allow_negative).where(Account.code == code)
        ).one()
    if row.unit != unit or bool(row.allow_negative) != bool(allow_negative):
        raise ValueError(f"account {code!r} exists with another unit or negative flag")
    return row.id


def open_accounts(session: Bind, specs: Iterable[tuple[str, str, bool]], now: datetime | None = None,
                  batch: int = 500) -> dict[str, int]:
    """Open many accounts at once, ``(code, unit, allow_negative)`` each; return code -> id.

    The same as :func:`open_account` for each (an account that exists is kept, and must agree on
    unit and flag), in a few statements per ``batch`` accounts: a roster import opens tens of
    thousands."""
    specs = list(specs)
    for _code, unit, _negative in specs:
        if unit not in config.settings.units:
            raise UnknownUnit(unit, config.settings.units)
    conn = _connection(session)
    created_at = driver.timestamp(conn.dialect.name, _naive_utc(now or _utcnow()))
    ids: dict[str, int] = {}
    for start in range(0, len(specs), batch):
        chunk = specs[start:start + batch]
        driver.insert_rows(conn, "ledger_accounts", ("code", "unit", "allow_negative", "balance", "created_at"),
                           [(code, unit, bool(negative), 0, created_at) for code, unit, negative in chunk],
                           suffix="ON CONFLICT (code) DO NOTHING")
        wanted = {code: (unit, negative) for code, unit, negative in chunk}
        rows = conn.execute(select(Account.id, Account.code, Account.unit, Account.allow_negative)
                            .where(Account.code.in_(list(wanted))))
        for row in rows:
            unit, negative = wanted[row.code]
            if row.unit != unit or bool(row.allow_negative) != bool(negative):
                raise ValueError(f"account {row.code!r} exists with another unit or negative flag")
            ids[row.code] = row.id
    return ids


def _validate(legs: Sequence[Leg]) -> None:
    if len(legs) < 2:
        raise UnbalancedTransaction("a transaction needs at least two postings")
    for leg in legs:
        if type(leg.amount) is not int:  # bool and float are refused on purpose
            raise UnbalancedTransaction(f"amount {leg.amount!r} is not an integer")
        if leg.amount == 0:
            raise UnbalancedTransaction("amounts are never zero")
        if not isinstance(leg.account, str) or not leg.account:
            raise UnbalancedTransaction("account code missing")


def _request_fingerprint(legs: Sequence[Leg], kind: str, category: str | None, memo: str, actor: str | None,
                         reference: str | None, reverses_id: int | None) -> str:
    return encoding.request_hash(
        {
            "legs": sorted([leg.account, leg.amount] for leg in legs),
            "kind": kind,
            "category": category,
            "memo": memo,
            "actor": actor,
            "reference": reference,
            "reverses_id": reverses_id,
        }
    )


def load(session: Bind, transaction_id: int, replayed: bool = False) -> PostedTransaction | None:
    tx = _connection(session).execute(select(Transaction).where(Transaction.id == transaction_id)).first()
    if tx is None:
        return None
    return _to_posted(session, tx, replayed)


def _to_posted(session: Bind, tx: Row[Any], replayed: bool = False) -> PostedTransaction:
    rows = _connection(session).execute(
        select(Account.code, Posting.amount, Posting.unit)
        .join(Account, Account.id == Posting.account_id)
        .where(Posting.transaction_id == tx.id)
        .order_by(Posting.id)
    ).all()
    return PostedTransaction(
        id=tx.id, kind=tx.kind, category=tx.category, memo=tx.memo, actor=tx.actor,
        reference=tx.reference, reverses_id=tx.reverses_id, created_at=tx.created_at,
        leaf_hash=tx.leaf_hash, prev_hash=tx.prev_hash, hash=tx.hash,
        postings=[(r.code, r.amount, r.unit) for r in rows], replayed=replayed,
    )


def _net_changes(legs: Sequence[Leg], accounts: dict[str, Sequence[Any]]) -> dict[str, int]:
    """Each account's net change in ``legs``; UnbalancedTransaction unless they sum to zero per unit.
    ``accounts``: code -> (id, unit, allow_negative, balance)."""
    net_by_unit: dict[str, int] = {}
    net_by_account: dict[str, int] = {}
    for leg in legs:
        unit = accounts[leg.account][1]
        net_by_unit[unit] = net_by_unit.get(unit, 0) + leg.amount
        net_by_account[leg.account] = net_by_account.get(leg.account, 0) + leg.amount
    if any(total != 0 for total in net_by_unit.values()):
        raise UnbalancedTransaction(f"postings do not sum to zero per unit: {net_by_unit}")
    return net_by_account


def _refuse_overdraft(net_by_account: dict[str, int], accounts: dict[str, Sequence[Any]],
                      current: dict[str, int]) -> None:
    """InsufficientFunds when a change would take an account that may not go negative below zero
    (the database's CHECK refuses it too; this names the account and the amounts)."""
    for code, change in net_by_account.items():
        _id, unit, allow_negative = accounts[code][:3]
        if not allow_negative and current[code] + change < 0:
            raise InsufficientFunds(code, current[code], change, unit)


def post(
    session: Bind,
    legs: Iterable[Leg],
    *,
    kind: str,
    category: str | None = None,
    memo: str = "",
    actor: str | None = None,
    reference: str | None = None,
    reverses_id: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> PostedTransaction:
    """Write one balanced transaction and return it.

    With an ``idempotency_key`` that was used before: the earlier transaction is returned (with
    ``replayed=True``) when the request is the same, and :class:`IdempotencyKeyReused` is raised
    when it differs. Raises :class:`InsufficientFunds` before writing anything when a wallet would
    go below zero.
    """
    legs = list(legs)
    _validate(legs)
    memo = memo or ""
    conn = _connection(session)
    lock_writer(conn)
    cursor, sql = _cursor(conn)

    fingerprint = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255:
            raise UnbalancedTransaction("idempotency key must be 1..255 characters")
        fingerprint = _request_fingerprint(legs, kind, category, memo, actor, reference, reverses_id)

    # The accounts, the head of the chain and the key's earlier transaction, in one statement.
    codes = list(dict.fromkeys(leg.account for leg in legs))
    params: dict[str, str | None] = {f"c{n}": code for n, code in enumerate(codes)}
    keyed = idempotency_key is not None
    if keyed:
        params["k"] = idempotency_key
    cursor.execute(_accounts_and_head_sql(conn.dialect.name, len(codes), keyed), params)
    rows = cursor.fetchall()
    if keyed:
        if rows:
            existing = rows[0][7:9] if rows[0][7] is not None else None
        else:  # no account found: the key may still name an earlier transaction (a reused key is said first)
            cursor.execute(sql["by_key"], {"k": idempotency_key})
            existing = cursor.fetchone()
        if existing is not None:
            if existing[1] != fingerprint:
                raise IdempotencyKeyReused(f"idempotency key {idempotency_key!r} was used for another request")
            replay = load(session, existing[0], replayed=True)
            assert replay is not None  # its row was read just now, under the writer lock
            return replay
    accounts: dict[str, Sequence[Any]] = {row[0]: row[1:5] for row in rows}  # code -> (id, unit, negative, balance)
    for code in codes:
        if code not in accounts:
            raise UnknownAccount(code)
    head = None if rows[0][5] is None else (rows[0][5], rows[0][6])

    net_by_account = _net_changes(legs, accounts)
    _refuse_overdraft(net_by_account, accounts, {code: row[3] for code, row in accounts.items()})

    new_id = 1 if head is None else head[0] + 1
    prev_hash = encoding.GENESIS_HASH if head is None else head[1]
    created_at = _naive_utc(now or _utcnow())

    leaf = encoding.leaf_bytes(
        id=new_id, created_at=created_at, kind=kind, category=category, memo=memo, actor=actor,
        reference=reference, reverses_id=reverses_id,
        postings=[(leg.account, accounts[leg.account][1], leg.amount) for leg in legs],
    )
    leaf_hash = encoding.leaf_hash(leaf)
    tx_hash = encoding.chain_hash(prev_hash, leaf_hash)

    try:
        cursor.executemany(
            sql["posting"],
            [{"t": new_id, "a": accounts[leg.account][0], "m": leg.amount, "u": accounts[leg.account][1]}
             for leg in legs],
        )
        cursor.execute(sql["transaction"], {
            "id": new_id, "kind": kind, "category": category, "memo": memo, "actor": actor,
            "reference": reference, "reverses_id": reverses_id, "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
            "created_at": driver.timestamp(conn.dialect.name, created_at),
            "leaf_hash": leaf_hash, "prev_hash": prev_hash, "hash": tx_hash,
        })
    except driver.integrity_error(conn) as exc:  # the database's guards; the checks above come first
        message = str(exc)
        if "wallet_not_negative" in message:
            code = next(iter(net_by_account))
            raise InsufficientFunds(code, accounts[code][3], net_by_account[code], accounts[code][1]) from exc
        if reverses_id is not None and "reverses_id" in message:
            raise AlreadyReversed(f"transaction {reverses_id} is already reversed") from exc
        raise IntegrityError(sql["transaction"], None, exc) from exc

    return PostedTransaction(
        id=new_id, kind=kind, category=category, memo=memo, actor=actor, reference=reference,
        reverses_id=reverses_id, created_at=created_at, leaf_hash=leaf_hash, prev_hash=prev_hash,
        hash=tx_hash, postings=[(leg.account, leg.amount, accounts[leg.account][1]) for leg in legs],
        balances={code: accounts[code][3] + change for code, change in net_by_account.items()},
    )


@dataclass(frozen=True)
class Request:
    """One transaction of :func:`post_many`: what :func:`post` takes, but the session and the time."""

    legs: Sequence[Leg]
    kind: str
    category: str | None = None
    memo: str = ""
    actor: str | None = None
    reference: str | None = None
    idempotency_key: str | None = None


def post_many(session: Bind, requests: Iterable[Request], *, now: datetime | None = None,
              batch: int = 500) -> list[PostedTransaction]:
    """Write many transactions, in order, as :func:`post` would one after another; return them.

    Each is its own transaction: balanced, checked against the wallets' balances as they stand after
    the ones before it, with its own link in the hash chain and its own idempotency key (a key used
    before returns the earlier transaction with ``replayed=True``, or raises
    :class:`IdempotencyKeyReused`; the same key twice in one call raises ``ValueError``). Nothing is
    written unless every one passes the checks. The accounts, the keys and the head of the chain are
    read once, and the postings and the transactions written in a few statements: a roster import
    posts thousands of opening balances, and one statement per round trip is what :func:`post`
    costs."""
    requests = list(requests)
    for request in requests:
        _validate(request.legs)
    keys = [r.idempotency_key for r in requests if r.idempotency_key is not None]
    if len(keys) != len(set(keys)):
        raise ValueError("the same idempotency key twice in one post_many")
    if any(not 1 <= len(key) <= 255 for key in keys):
        raise UnbalancedTransaction("idempotency key must be 1..255 characters")
    conn = _connection(session)
    lock_writer(conn)
    cursor, sql = _cursor(conn)
    used: dict[str | None, tuple[int, str | None]] = {}
    for start in range(0, len(keys), batch):
        for tx_id, key, request_hash in conn.execute(
                select(Transaction.id, Transaction.idempotency_key, Transaction.request_hash)
                .where(Transaction.idempotency_key.in_(keys[start:start + batch]))):
            used[key] = (tx_id, request_hash)
    codes = sorted({leg.account for r in requests for leg in r.legs})
    accounts: dict[str, Sequence[Any]] = {}  # code -> (id, unit, allow_negative, balance)
    for start in range(0, len(codes), batch):
        for row in conn.execute(select(Account.code, Account.id, Account.unit, Account.allow_negative,
                                       Account.balance).where(Account.code.in_(codes[start:start + batch]))):
            accounts[row.code] = (row.id, row.unit, row.allow_negative, row.balance)
    for code in codes:
        if code not in accounts:
            raise UnknownAccount(code)

    cursor.execute(sql["head"])
    head = cursor.fetchone()
    last_id, prev_hash = (0, encoding.GENESIS_HASH) if head is None else (head[0], head[1])
    created_at = _naive_utc(now or _utcnow())
    stamp = driver.timestamp(conn.dialect.name, created_at)
    current = {code: row[3] for code, row in accounts.items()}
    results: list[PostedTransaction] = []
    postings: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    for r in requests:
        memo = r.memo or ""
        fingerprint = None
        if r.idempotency_key is not None:
            fingerprint = _request_fingerprint(r.legs, r.kind, r.category, memo, r.actor, r.reference, None)
            if r.idempotency_key in used:
                tx_id, request_hash = used[r.idempotency_key]
                if request_hash != fingerprint:
                    raise IdempotencyKeyReused(f"idempotency key {r.idempotency_key!r} was used for another request")
                replay = load(session, tx_id, replayed=True)
                assert replay is not None  # its row was read just now, under the writer lock
                results.append(replay)
                continue
        net_by_account = _net_changes(r.legs, accounts)
        _refuse_overdraft(net_by_account, accounts, current)
        new_id = last_id + 1
        leaf = encoding.leaf_bytes(
            id=new_id, created_at=created_at, kind=r.kind, category=r.category, memo=memo, actor=r.actor,
            reference=r.reference, reverses_id=None,
            postings=[(leg.account, accounts[leg.account][1], leg.amount) for leg in r.legs],
        )
        leaf_hash = encoding.leaf_hash(leaf)
        tx_hash = encoding.chain_hash(prev_hash, leaf_hash)
        postings += [{"t": new_id, "a": accounts[leg.account][0], "m": leg.amount, "u": accounts[leg.account][1]}
                     for leg in r.legs]
        transactions.append({
            "id": new_id, "kind": r.kind, "category": r.category, "memo": memo, "actor": r.actor,
            "reference": r.reference, "reverses_id": None, "idempotency_key": r.idempotency_key,
            "request_hash": fingerprint, "created_at": stamp, "leaf_hash": leaf_hash, "prev_hash": prev_hash,
            "hash": tx_hash,
        })
        for code, change in net_by_account.items():
            current[code] += change
        results.append(PostedTransaction(
            id=new_id, kind=r.kind, category=r.category, memo=memo, actor=r.actor, reference=r.reference,
            reverses_id=None, created_at=created_at, leaf_hash=leaf_hash, prev_hash=prev_hash, hash=tx_hash,
            postings=[(leg.account, leg.amount, accounts[leg.account][1]) for leg in r.legs],
            balances={code: current[code] for code in net_by_account},
        ))
        last_id, prev_hash = new_id, tx_hash

    # As in post(): every posting first, then the transaction rows, whose insert trigger checks that
    # each one's postings exist and balance (the postings' foreign key to them is deferred).
    try:
        for start in range(0, len(postings), batch * 4):
            cursor.executemany(sql["posting"], postings[start:start + batch * 4])
        for start in range(0, len(transactions), batch):
            cursor.executemany(sql["transaction"], transactions[start:start + batch])
    except driver.integrity_error(conn) as exc:  # the database's guards; the checks above come first
        if "wallet_not_negative" in str(exc):
            raise InsufficientFunds("(one of the wallets)", 0, 0, "") from exc
        raise IntegrityError(sql["transaction"], None, exc) from exc
    return results


def reverse(
    session: Bind,
    transaction_id: int,
    *,
    kind: str = "reversal",
    memo: str = "",
    actor: str | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> PostedTransaction:
    """Write the compensating transaction of ``transaction_id``: every posting negated."""
    lock_writer(session)
    original = load(session, transaction_id)
    if original is None:
        raise NotReversible(f"no transaction {transaction_id}")
    if original.reverses_id is not None:
        raise NotReversible(f"transaction {transaction_id} is itself a reversal")
    prior = _connection(session).execute(
        select(Transaction.id, Transaction.idempotency_key).where(Transaction.reverses_id == transaction_id)
    ).first()
    if prior is not None and not (idempotency_key and prior.idempotency_key == idempotency_key):
        raise AlreadyReversed(f"transaction {transaction_id} was reversed by {prior.id}")
    return post(
        session,
        [Leg(code, -amount) for code, amount, _unit in original.postings],
        kind=kind, category=original.category, memo=memo, actor=actor,
        reference=reference if reference is not None else original.reference,
        reverses_id=transaction_id, idempotency_key=idempotency_key, now=now,
    )


def balance(session: Bind, account_code: str) -> int:
    value = session.execute(select(Account.balance).where(Account.code == account_code)).scalar_one_or_none()
    if value is None:
        raise UnknownAccount(account_code)
    return value


def balances(session: Bind, account_codes: Iterable[str]) -> dict[str, int]:
    codes = list(account_codes)
    found = dict(session.execute(select(Account.code, Account.balance).where(Account.code.in_(codes))).all())
    return {code: found.get(code, 0) for code in codes}


def replay_balances(session: Bind) -> dict[str, int]:
    """Balances recomputed from the postings alone (the cache must equal this)."""
    rows = session.execute(
        select(Account.code, func.coalesce(func.sum(Posting.amount), 0))
        .select_from(Account)
        .outerjoin(Posting, Posting.account_id == Account.id)
        .group_by(Account.code)
    ).all()
    return {code: int(total) for code, total in rows}


def rebuild_balances(session: Bind) -> dict[str, tuple[int, int]]:
    """Reset every cached balance to the replay of its postings; return what changed (code: (old, new)).

    The cache is only ever wrong if someone wrote to it behind the ledger's back; ``verify`` says so,
    and this repairs it from the entries, which are the truth. It takes the writer lock first.
    """
    lock_writer(session)
    replayed = replay_balances(session)
    changed: dict[str, tuple[int, int]] = {}
    for code, cached in session.execute(select(Account.code, Account.balance)).all():
        if cached != replayed.get(code, 0):
            changed[code] = (cached, replayed.get(code, 0))
            session.execute(update(Account).where(Account.code == code).values(balance=replayed.get(code, 0)))
    return changed


@dataclass
class VerifyReport:
    ok: bool
    size: int
    head_hash: str
    problems: list[dict[str, Any]]
    first_bad_transaction: int | None = None


def verify(session: Bind, batch: int = 5000) -> VerifyReport:
    """Re-derive every transaction's leaf and chain hash, its balance, and every cached balance.

    Streams the ledger in id order, so memory stays flat as it grows; time grows linearly.
    """
    problems: list[dict[str, Any]] = []
    first_bad: int | None = None

    def problem(tx_id: int | None, what: str) -> None:
        nonlocal first_bad
        if tx_id is not None and (first_bad is None or tx_id < first_bad):
            first_bad = tx_id
        problems.append({"transaction_id": tx_id, "problem": what})

    code_of = dict(session.execute(select(Account.id, Account.code)).all())
    unit_of = dict(session.execute(select(Account.id, Account.unit)).all())
    replayed: dict[int, int] = {}
    prev_hash = encoding.GENESIS_HASH
    expected_id = 1
    size = 0
    last_id = 0
    while True:
        txs = _connection(session).execute(
            select(Transaction.__table__).where(Transaction.id > last_id).order_by(Transaction.id).limit(batch)
        ).all()
        if not txs:
            break
        ids = [t.id for t in txs]
        legs_by_tx: dict[int, list[Row[int, int, int, str]]] = {i: [] for i in ids}
        for p in session.execute(
            select(Posting.transaction_id, Posting.account_id, Posting.amount, Posting.unit)
            .where(Posting.transaction_id >= ids[0], Posting.transaction_id <= ids[-1])
        ):
            legs_by_tx.setdefault(p.transaction_id, []).append(p)
        for tx in txs:
            size += 1
            if tx.id != expected_id:
                problem(tx.id, f"gap in ids: expected {expected_id}")
            expected_id = tx.id + 1
            legs = legs_by_tx.get(tx.id, [])
            sums: dict[str, int] = {}
            for p in legs:
                sums[p.unit] = sums.get(p.unit, 0) + p.amount
                replayed[p.account_id] = replayed.get(p.account_id, 0) + p.amount
                if p.unit != unit_of.get(p.account_id):
                    problem(tx.id, "posting unit differs from its account")
                if p.amount == 0:
                    problem(tx.id, "zero amount")
            if len(legs) < 2 or any(v != 0 for v in sums.values()):
                problem(tx.id, f"postings do not balance: {sums}")
            leaf = encoding.leaf_bytes(
                id=tx.id, created_at=tx.created_at, kind=tx.kind, category=tx.category,
                memo=tx.memo, actor=tx.actor, reference=tx.reference, reverses_id=tx.reverses_id,
                postings=[(code_of.get(p.account_id, f"#{p.account_id}"), p.unit, p.amount) for p in legs],
            )
            leaf_hash = encoding.leaf_hash(leaf)
            if leaf_hash != tx.leaf_hash:
                problem(tx.id, "content does not match its leaf hash")
            if tx.prev_hash != prev_hash:
                problem(tx.id, "prev_hash does not match the previous transaction's hash")
            expected = encoding.chain_hash(prev_hash, leaf_hash)
            if tx.hash != expected:
                problem(tx.id, "hash does not match the chain")
            prev_hash = tx.hash
        last_id = ids[-1]

    for acct_id, cached in session.execute(select(Account.id, Account.balance)).all():
        if cached != replayed.get(acct_id, 0):
            problems.append(
                {"transaction_id": None,
                 "problem": f"balance of {code_of[acct_id]} is {cached}, replay gives {replayed.get(acct_id, 0)}"}
            )
    # Postings whose transaction row is missing would have been refused at commit, but a file
    # edited by hand can contain them.
    orphans = session.execute(
        select(func.count()).select_from(Posting).where(
            ~select(Transaction.id).where(Transaction.id == Posting.transaction_id).exists()
        )
    ).scalar_one()
    if orphans:
        problems.append({"transaction_id": None, "problem": f"{orphans} postings without a transaction"})

    return VerifyReport(ok=not problems, size=size, head_hash=prev_hash, problems=problems,
                        first_bad_transaction=first_bad)


