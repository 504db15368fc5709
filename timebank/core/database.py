"""Database connection settings and the two kinds of transaction.

**SQLite** runs in WAL mode with ``synchronous=FULL``, foreign keys on, and a busy timeout
(``TIMEBANK_SQLITE_BUSY_TIMEOUT_MS``). The locks are SQLite's own; only the wait for the write lock
is ours (:func:`_begin_immediate`): ``BEGIN IMMEDIATE`` is tried again every 50 µs at first, where
SQLite's busy handler sleeps 1, 2, 5, 10... ms and so leaves the lock free for most of the time a
writer waits (docs/performance.md: 400 sales per second against 500).

* With ``synchronous=FULL``, SQLite's COMMIT writes the transaction's pages to the WAL, calls
  ``fsync`` on the WAL, and only then publishes the transaction in the WAL index, where other
  connections find it. So no connection, of this process or another, can see, and answer for, a
  write before it is on disk, and COMMIT does not return before then either. SQLite resolves a
  symbolic link to the database file before it names the WAL, so this holds for a linked file or
  folder too (docs/operations.md, "What is durable when", has the system calls in order).
* **Reading** transactions (every ``GET``, ``HEAD`` and ``OPTIONS`` request, and code run under
  :func:`reading`) begin with a plain ``BEGIN``: in WAL mode a reader works on the last committed
  snapshot and never waits for a writer. They may not write: a write statement raises
  :class:`WriteWhileReading` before it reaches the database, and the connection is also set
  ``PRAGMA query_only`` (SQLite) or ``READ ONLY`` (PostgreSQL), so a write by the driver's own cursor
  is refused by the database too.
* **Writing** transactions (everything else: ``POST``/``PUT``/``PATCH``/``DELETE``, jobs and
  commands) begin ``BEGIN IMMEDIATE``: the write lock is taken up front, waiting up to the busy
  timeout, so a transaction that reads and then writes cannot fail half-way with "database is
  locked" (a deferred transaction that read an older snapshot cannot be upgraded).
* A view may opt in to a *deferred* write lock (:func:`defers_write_lock`, the till's sale): its
  reads run outside any transaction, each statement seeing the latest committed data, until
  :func:`take_write_lock` (or the first write statement) begins ``BEGIN IMMEDIATE``. Code that opts
  in re-reads under the lock whatever its decisions depend on.

**PostgreSQL**: reading transactions are ``READ ONLY``; writers of the ledger serialise on an
advisory lock (the ledger's default :data:`ledger.WriterLock`). A view that defers its write lock
(the sale) runs its reads in autocommit, each its own snapshot, with no ``BEGIN`` sent for them; its
transaction begins with its first write: :func:`execute_first_write` sends ``BEGIN READ WRITE`` and
that write as one message, and :func:`write_and_commit` the last write and ``COMMIT`` as one (so a
sale on PostgreSQL waits for the database three times: the token and stored answer, the sale, the
answer's record with the commit; docs/performance.md). Any other write statement or
:func:`take_write_lock` in such a request sends ``BEGIN READ WRITE`` first, so nothing is ever
written outside the transaction.
"""

from __future__ import annotations

import contextvars
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import request
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

import ledger
from timebank.core.replica import REPLICA, use_replica  # noqa: F401  (REPLICA: for the app factory)

_installed = False

#: "read": reading transactions; "deferred": reads outside a transaction until the write lock.
_mode = contextvars.ContextVar("timebank_transaction_mode", default="write")

# Statements that write nothing (a ``WITH`` may carry an INSERT, so it counts as a write).
_READ_STATEMENTS = ("SELECT", "PRAGMA", "SHOW", "EXPLAIN", "VALUES", "SAVEPOINT", "RELEASE", "ROLLBACK", "SET ")
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
#: WAL pages before SQLite copies them back into the database (its default is 1,000).
AUTOCHECKPOINT_PAGES = 4000
#: Key in the pool's per-connection ``info``: whether ``PRAGMA query_only`` is on.
_QUERY_ONLY = "timebank_query_only"


class WriteWhileReading(RuntimeError):
    """A write statement in a reading transaction (a GET request, or :func:`reading`): a bug."""


#: A ``WITH`` statement is a read unless it holds a write (``WITH ... INSERT``, a CTE that deletes).
_WRITE_WORDS = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


#: Statements that lock (rows, or an advisory lock): in a PostgreSQL request that defers its BEGIN
#: they begin the transaction, since in autocommit the lock would end with the statement.
_LOCKS = re.compile(r"\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE)\b|pg_advisory", re.IGNORECASE)


def _is_read(statement: str) -> bool:
    head = statement.lstrip()[:10].upper()
    if head.startswith("WITH"):
        return not _WRITE_WORDS.search(statement)
    return head.startswith(_READ_STATEMENTS)


# Seconds between tries of BEGIN IMMEDIATE while another connection holds the write lock: short at
# first (a sale holds it for a millisecond or two), then longer, so a long wait does not spin.
_POLL_FAST, _POLL_SLOW, _FAST_FOR = 0.00005, 0.001, 0.005
_BUSY_TIMEOUT_MS = "timebank_busy_timeout_ms"


def _begin_immediate(dbapi_connection, info: dict) -> None:
    """``BEGIN IMMEDIATE``, retried every 50 µs at first while the lock is taken, up to the busy
    timeout. SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, so a waiting worker
    slept through most of the time the lock was free (docs/performance.md)."""
    timeout_ms = info.get(_BUSY_TIMEOUT_MS)
    if timeout_ms is None:
        timeout_ms = info[_BUSY_TIMEOUT_MS] = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0]
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        start = time.monotonic()
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - start
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or waited * 1000 >= timeout_ms:
                    raise
            time.sleep(_POLL_FAST if waited < _FAST_FOR else _POLL_SLOW)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")


def _set_query_only(dbapi_connection, info: dict, on: bool) -> None:
    if bool(info.get(_QUERY_ONLY)) != on:
        dbapi_connection.execute(f"PRAGMA query_only = {int(on)}")
        info[_QUERY_ONLY] = on


def install_sqlite_settings(busy_timeout_ms: int = 30_000) -> None:
    """Install the engine events (once per process; they apply to every engine)."""
    global _installed
    if _installed:
        return
    _installed = True

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection, _record):
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        # Let SQLAlchemy's "begin" event below issue BEGIN instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout itself comes from the driver's ``timeout`` (see engine_options), which is
        # per engine: this listener is process-wide, so a value set here would be the first app's.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Fewer, larger checkpoints: a checkpoint writes each page once however often it changed, and
        # a sale rewrites mostly the same hot pages (docs/performance.md: +5 % sales per second).
        cursor.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(conn):
        mode = _mode.get()
        dbapi_connection = conn.connection.dbapi_connection
        if conn.dialect.name == "sqlite":
            _set_query_only(dbapi_connection, conn.connection.info, mode == "read")
            if mode == "read":
                dbapi_connection.execute("BEGIN")
            elif mode == "write":
                _begin_immediate(dbapi_connection, conn.connection.info)
            # deferred: no transaction until the first write or take_write_lock
        elif conn.dialect.name == "postgresql":
            read_only = mode == "read"
            if dbapi_connection.read_only != read_only:
                dbapi_connection.read_only = read_only

    for ending in ("commit", "rollback", "rollback_savepoint"):
        event.listen(Engine, ending, _transaction_ended)
    event.listen(Pool, "reset", _connection_reset)

    @event.listens_for(Engine, "before_cursor_execute")
    def _before_execute(conn, cursor, statement, _parameters, _context, _executemany):
        mode = _mode.get()
        if mode == "deferred" and conn.dialect.name == "postgresql" and _LOCKS.search(statement):
            _begin_if_deferred(conn.connection.dbapi_connection)  # a lock taken in autocommit would not hold
        if mode == "write" or _is_read(statement):
            return
        if mode == "read":
            raise WriteWhileReading(f"a write in a reading transaction: {statement[:60]!r}")
        # Deferred: the first statement that is not a read takes the write lock first.
        if conn.dialect.name == "sqlite" and not cursor.connection.in_transaction:
            _begin_immediate(cursor.connection, conn.connection.info)
        elif conn.dialect.name == "postgresql":
            _begin_if_deferred(conn.connection.dbapi_connection)


@contextmanager
def reading(replica: bool = False) -> Iterator[None]:
    """Run the block's new transactions as reading ones (see the module docs): for commands that
    only read, such as ``verify``, so they never hold up the writers.

    ``replica=True``: the block's statements go to the read replica when the deployment has one
    (``TIMEBANK_READ_DATABASE_URL``, :mod:`timebank.core.replica`); reports and exports use it."""
    token = _mode.set("read")
    routed = use_replica.set(True) if replica else None
    try:
        yield
    finally:
        if routed is not None:
            use_replica.reset(routed)
        _mode.reset(token)


@contextmanager
def writing() -> Iterator[None]:
    """Run the block's new transactions as writing ones, inside a :func:`reading` block too: a
    background export records its progress on a connection of its own while it reads."""
    token = _mode.set("write")
    try:
        yield
    finally:
        _mode.reset(token)


def _hold_sqlite_write_lock(conn: Connection) -> None:
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a checked-out connection always has one
    if not dbapi_connection.in_transaction:
        _begin_immediate(dbapi_connection, conn.connection.info)


def take_write_lock(session) -> None:
    """Make sure the session's SQLite transaction holds the write lock (a no-op when it already
    does). What is read after this is isolated from other writers until commit. On PostgreSQL, a
    deferred request's transaction begins here if it has not yet."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        _hold_sqlite_write_lock(conn)
    elif conn.dialect.name == "postgresql":
        _begin_if_deferred(conn.connection.dbapi_connection)


def _deferred_and_idle(dbapi_connection) -> bool:
    """A PostgreSQL connection of a deferred request (autocommit) whose transaction has not begun."""
    from psycopg.pq import TransactionStatus

    return bool(dbapi_connection.autocommit) and dbapi_connection.info.transaction_status == TransactionStatus.IDLE


def _begin_if_deferred(dbapi_connection) -> None:
    if _deferred_and_idle(dbapi_connection):
        dbapi_connection.execute("BEGIN READ WRITE")


def execute_first_write(session, cursor, sql: str, params: dict):
    """Run a write (``sql`` with ``params``, psycopg's placeholders) on the session's connection and
    return the cursor holding its result. In a deferred PostgreSQL request whose transaction has not
    begun, ``BEGIN READ WRITE`` and the write go in one message (client-side binding, the simple
    query protocol); otherwise ``cursor`` runs it in the current transaction."""
    conn = session.connection()
    dbapi_connection = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql" and _deferred_and_idle(dbapi_connection):
        import psycopg

        together = psycopg.ClientCursor(dbapi_connection)
        together.execute("BEGIN READ WRITE; " + sql, params)
        together.nextset()  # past BEGIN's empty result
        return together
    cursor.execute(sql, params)
    return cursor


def write_and_commit(session, sql: str, params: dict) -> bool:
    """In a deferred PostgreSQL request whose transaction :func:`execute_first_write` began: run the
    last write and ``COMMIT`` in one message and return True (the request's own commit then finds
    nothing to do). Otherwise run nothing and return False: the caller writes as usual. If the write
    fails, ``COMMIT`` is not run and the transaction is left failed, to be rolled back."""
    if not commits_with_last_write(session):
        return False
    import psycopg

    psycopg.ClientCursor(session.connection().connection.dbapi_connection).execute(sql + "; COMMIT", params)
    return True


def commits_with_last_write(session) -> bool:
    """Whether the session's transaction is one :func:`execute_first_write` began (a deferred
    PostgreSQL request), whose ``COMMIT`` :func:`write_and_commit` sends with the last write."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return False
    from psycopg.pq import TransactionStatus

    dbapi_connection = conn.connection.dbapi_connection
    return bool(dbapi_connection.autocommit) and dbapi_connection.info.transaction_status == TransactionStatus.INTRANS


#: Key in the pool's per-connection ``info``: the current transaction holds the ledger's writer
#: lock (PostgreSQL). Cleared when the transaction ends (:func:`_transaction_ended`).
_WRITER_LOCKED = "timebank_writer_locked"


def ledger_writer_lock(connection: Connection) -> None:
    """The ledger's writer lock on the application's connections (a :data:`ledger.WriterLock`): on
    SQLite the write lock (``BEGIN IMMEDIATE``; nothing when the transaction holds it already),
    elsewhere the ledger's default (``pg_advisory_xact_lock`` on PostgreSQL), taken once per
    transaction: the month-close guard, the pool's check and the posting each ask for it, and
    asking again cost a round trip each time."""
    if connection.dialect.name == "sqlite":
        _hold_sqlite_write_lock(connection)
        return
    info = connection.connection.info
    if info.get(_WRITER_LOCKED):
        return
    _begin_if_deferred(connection.connection.dbapi_connection)  # the lock holds until the transaction ends
    ledger.default_writer_lock(connection)
    info[_WRITER_LOCKED] = True


def first_row_under_writer_lock(session, sql: str, params: dict):
    """Take the ledger's writer lock (:func:`ledger_writer_lock`) and run the read ``sql`` (the
    driver's placeholders) after it; return its first row or None. On PostgreSQL, when the
    transaction does not hold the lock yet, the lock and the read go in one message: two statements,
    the read's snapshot taken after the lock is granted (READ COMMITTED), one round trip instead of
    two. The month close's guard asks this before every posting."""
    conn = session.connection()
    dbapi_connection = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql" and not conn.connection.info.get(_WRITER_LOCKED) \
            and ledger.config.settings.writer_lock is ledger_writer_lock:
        import psycopg

        _begin_if_deferred(dbapi_connection)
        together = psycopg.ClientCursor(dbapi_connection)
        together.execute("SELECT pg_advisory_xact_lock(%(timebank_writer_lock)s); " + sql,
                         {**params, "timebank_writer_lock": ledger.config.PG_WRITER_LOCK})
        conn.connection.info[_WRITER_LOCKED] = True
        together.nextset()  # past the lock's row
        return together.fetchone()
    ledger.core.lock_writer(conn)
    cursor = conn.connection.cursor()
    cursor.execute(sql, params)
    return cursor.fetchone()


def _connection_reset(_dbapi_connection, record, _reset_state) -> None:
    """The pool rolled the connection back on its way in: no lock is held any more."""
    record.info.pop(_WRITER_LOCKED, None)


def _transaction_ended(conn, *_args) -> None:
    """The transaction (or the savepoint that may have taken the lock) is over: the lock is gone."""
    info = getattr(conn, "info", None)  # a Connection's, or the pool's entry on reset
    if info is not None:
        info.pop(_WRITER_LOCKED, None)


def engine_options(uri: str, busy_timeout_ms: int) -> dict:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}}
    # No pre-ping on every checkout: PostgreSQL's pooled connections are pinged only after sitting
    # idle (timebank.core.postgres, TIMEBANK_PG_PING_AFTER_IDLE_S).
    return {"pool_size": 10, "max_overflow": 20}


def defers_write_lock(view):
    """Mark a view whose SQLite reads may run before the write lock (see the module docs). The view
    must call :func:`take_write_lock` before reading what its writes depend on."""
    view.defers_write_lock = True
    return view


def begins_with_first_write(view):
    """Mark a deferred view (:func:`defers_write_lock`) whose transaction on PostgreSQL begins with its
    first write (see the module docs): its reads run in autocommit, so it may lock nothing before
    that write (a ``FOR UPDATE`` or an advisory lock sends ``BEGIN`` first, as any write does). The
    sale: its first write is the whole sale (:func:`execute_first_write`)."""
    view.begins_with_first_write = True
    return view


def _marked(app, mark: str = "defers_write_lock") -> bool:
    view = app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return False
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, request.method.lower(), None)
    return bool(getattr(view, mark, False))


def init_app(app) -> None:
    """Choose each request's kind of transaction. Registered before any hook that reads the
    database (the token lookup of the supervisor check), so those reads run in it too."""

    @app.before_request
    def _choose_transaction():
        # Set for every request: a streamed body read after an earlier request (which reads under
        # :func:`reading`) must not decide this one's.
        mode = "read" if request.method in SAFE_METHODS else "deferred" if _marked(app) else "write"
        _mode.set(mode)
        if mode == "deferred" and _marked(app, "begins_with_first_write") \
                and app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            # Reads in autocommit (no BEGIN sent for them); the first write begins the transaction.
            from timebank.core.extensions import db

            db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    @app.teardown_request
    def _end(_exc=None):
        _mode.set("write")
