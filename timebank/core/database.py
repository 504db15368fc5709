"""Database connection settings.

SQLite: WAL so readers never block the writer, every committed write flushed to disk before it is
acknowledged (so it survives a power cut: see :meth:`QueuedConnection.commit`), foreign keys on, a
busy timeout so writers queue instead of failing, and
``BEGIN IMMEDIATE`` for every transaction so the write lock is taken up front (a deferred
transaction that later writes can fail at once with "database is locked", whatever the timeout).

Writers queue on a lock file next to the database (``<database>.writers``, an ``flock``) before
``BEGIN IMMEDIATE``. SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, so with
several gunicorn workers a waiting writer slept through most of the time the lock was free; the
lock file hands the turn over within about 0.1 ms. It only orders writers: SQLite's
lock still guards the data, and a writer that does not use the lock file (the ``sqlite3`` shell, a
backup) is waited for as before, up to the busy timeout.

A request may opt in to a *deferred* write lock (:func:`defer_write_lock`, used by the till's sale):
its reads run outside a transaction until :func:`take_write_lock` is called, and any write statement
takes the lock first, so nothing is ever written outside a transaction. The reads before the lock
see the latest committed data but are not isolated from writers; code that opts in re-reads under
the lock whatever its decisions depend on.

The ledger serialises its writers with :func:`ledger_writer_lock`, which the application hands it
(:func:`timebank.core.ledgering.configure`): on SQLite the write lock taken as above, through the
queue; elsewhere the ledger's own default (an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import contextvars
import fcntl
import os
import sqlite3
import time

from flask import request
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

import ledger

_installed = False

#: True while the current request's SQLite reads run outside a transaction (see module docs).
_deferred = contextvars.ContextVar("timebank_deferred_write_lock", default=False)

# Statements that only read (a ``WITH`` may carry an INSERT, so it counts as a write).
_READ_STATEMENTS = ("SELECT", "PRAGMA")


class QueuedConnection(sqlite3.Connection):
    """A ``sqlite3`` connection whose write transactions queue on ``<database>.writers``."""

    # Seconds between tries while another writer holds the turn: short at first (a sale holds it
    # for a millisecond or two, and bench/http_redemption_bench.py gains a quarter going from 1 ms
    # to 0.05 ms), then longer, so a long wait does not keep waking the CPU.
    _POLL_FAST, _POLL_SLOW, _FAST_FOR = 0.00005, 0.001, 0.005
    #: WAL pages before SQLite copies them back into the database (its default is 1,000). A sale
    #: writes about 45 pages, mostly the same hot pages each time, and a checkpoint writes each page
    #: once however often it changed: fewer, larger checkpoints write less (about 16 MiB of WAL
    #: between them; +5 % sales per second in paired runs, docs/performance.md).
    AUTOCHECKPOINT_PAGES = 4000

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self._timeout = float(kwargs.get("timeout", args[0] if args else 5.0))
        name = os.fspath(database) if isinstance(database, (str, os.PathLike)) else ""
        memory = not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name
        self._queue_path: str | None = None if memory else name + ".writers"
        self._wal_path: str | None = None if memory else name + "-wal"
        self._queue_fd: int | None = None
        self._holding = False
        self._changes_at_begin = 0
        self._wrote = False

    def begin_immediate(self) -> None:
        """Wait for this process's turn among writers, then ``BEGIN IMMEDIATE``."""
        self._take_turn()
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._give_turn()
            raise
        self._changes_at_begin = self.total_changes
        self._wrote = False

    def mark_written(self) -> None:
        """Note a write that changes no row (DDL): the commit must still reach the disk."""
        self._wrote = True

    def _take_turn(self) -> None:
        if self._queue_path is None or self._holding:
            return
        if self._queue_fd is None:
            self._queue_fd = os.open(self._queue_path, os.O_RDWR | os.O_CREAT, 0o600)
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(self._queue_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._holding = True
                return
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= self._timeout:
                    raise sqlite3.OperationalError("database is locked (waited for another writer)") from None
                time.sleep(self._POLL_FAST if waited < self._FAST_FOR else self._POLL_SLOW)

    def _give_turn(self) -> None:
        if self._holding:
            self._holding = False
            assert self._queue_fd is not None  # a turn is only ever taken on the open queue file
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        """Commit, hand the turn to the next writer, then flush the WAL to disk before returning.

        SQLite runs with ``synchronous=NORMAL`` on these connections, so its COMMIT writes the WAL
        but does not wait for the disk; the flush (``fdatasync`` of the WAL) happens here, after the
        next writer has been let in, and before the caller can answer anyone. A write is thus on
        disk before it is acknowledged, as with ``synchronous=FULL``, while the disk wait no longer
        holds up the next writer. Other connections may see the transaction for that moment before
        it is on disk; if the power fails then, it is lost with every later transaction (the WAL
        is replayed in order and stops at the first frame that did not reach the disk), and none of
        them was acknowledged."""
        wrote = self.in_transaction and (self._wrote or self.total_changes != self._changes_at_begin)
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._give_turn()
        if wrote:
            self._flush_wal()

    def _flush_wal(self) -> None:
        if self._wal_path is None:  # in memory: nothing on disk to flush
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:  # checkpointed into the database file (which SQLite syncs) and removed
            return
        try:
            os.fdatasync(fd)
        except OSError as exc:  # reported as SQLite reports its own I/O errors (503, see http_errors)
            raise sqlite3.OperationalError(f"disk I/O error: {exc}") from exc
        finally:
            os.close(fd)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if not self.in_transaction:
                self._give_turn()

    def close(self) -> None:
        self._give_turn()
        if self._queue_fd is not None:
            os.close(self._queue_fd)
            self._queue_fd = None
        super().close()


def _begin_immediate(dbapi_connection) -> None:
    if isinstance(dbapi_connection, QueuedConnection):
        dbapi_connection.begin_immediate()
    else:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def install_sqlite_settings(busy_timeout_ms: int = 30_000) -> None:
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
        # Queued connections flush the WAL themselves at commit, after handing over the write lock
        # (QueuedConnection.commit); the others let SQLite do it inside COMMIT.
        queued = isinstance(dbapi_connection, QueuedConnection) and dbapi_connection._wal_path is not None
        cursor.execute("PRAGMA synchronous = NORMAL" if queued else "PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        if isinstance(dbapi_connection, QueuedConnection):
            cursor.execute(f"PRAGMA wal_autocheckpoint = {QueuedConnection.AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(conn):
        if conn.dialect.name == "sqlite" and not _deferred.get():
            _begin_immediate(conn.connection.dbapi_connection)

    @event.listens_for(Engine, "before_cursor_execute")
    def _before_execute(conn, cursor, statement, _parameters, _context, _executemany):
        if conn.dialect.name != "sqlite":
            return
        dbapi_connection = cursor.connection
        if statement.lstrip()[:6].upper().startswith(_READ_STATEMENTS):
            return
        # Deferred requests: the first statement that is not a read takes the write lock first.
        if _deferred.get() and not dbapi_connection.in_transaction:
            _begin_immediate(dbapi_connection)
        if isinstance(dbapi_connection, QueuedConnection):
            dbapi_connection.mark_written()  # DDL changes no row but must reach the disk too


def defer_write_lock() -> contextvars.Token:
    """Let this context's SQLite reads run outside a transaction until the first write or
    :func:`take_write_lock`. Returns the token for :func:`end_deferred_write_lock`."""
    return _deferred.set(True)


def end_deferred_write_lock(token: contextvars.Token) -> None:
    _deferred.reset(token)


def _hold_sqlite_write_lock(conn: Connection) -> None:
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a checked-out connection always has one
    if not dbapi_connection.in_transaction:
        _begin_immediate(dbapi_connection)


def take_write_lock(session) -> None:
    """Make sure the session's SQLite transaction holds the write lock (a no-op elsewhere, and when
    it already does). What is read after this is isolated from other writers until commit."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        _hold_sqlite_write_lock(conn)


def ledger_writer_lock(connection: Connection) -> None:
    """The ledger's writer lock on the application's connections (a :data:`ledger.WriterLock`): on
    SQLite the write lock as :func:`take_write_lock` takes it (the writer queue, then
    ``BEGIN IMMEDIATE``; nothing when the transaction holds it already), elsewhere the ledger's
    default (``pg_advisory_xact_lock`` on PostgreSQL)."""
    if connection.dialect.name == "sqlite":
        _hold_sqlite_write_lock(connection)
    else:
        ledger.default_writer_lock(connection)


def engine_options(uri: str, busy_timeout_ms: int) -> dict:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": busy_timeout_ms / 1000, "check_same_thread": False,
                                 "factory": QueuedConnection}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


def defers_write_lock(view):
    """Mark a view whose SQLite reads may run before the write lock (see the module docs). The view
    must call :func:`take_write_lock` before reading what its writes depend on."""
    view.defers_write_lock = True
    return view


def _marked(app) -> bool:
    view = app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return False
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, request.method.lower(), None)
    return bool(getattr(view, "defers_write_lock", False))


def init_app(app) -> None:
    """Defer the write lock for marked views. Registered before any hook that reads the database
    (the token lookup of the supervisor check), so those reads are deferred too."""

    @app.before_request
    def _defer_marked_views():
        if _marked(app):
            _deferred.set(True)

    @app.teardown_request
    def _end_deferral(_exc=None):
        _deferred.set(False)
