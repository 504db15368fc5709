"""Database connection settings.

SQLite: WAL so readers never block the writer, ``synchronous=FULL`` so an acknowledged write
survives a power cut, foreign keys on, a busy timeout so writers queue instead of failing, and
``BEGIN IMMEDIATE`` for every transaction so the write lock is taken up front (a deferred
transaction that later writes can fail at once with "database is locked", whatever the timeout).
PostgreSQL needs nothing here: the ledger takes its own writer lock.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


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
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(conn):
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def engine_options(uri: str, busy_timeout_ms: int) -> dict:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}
