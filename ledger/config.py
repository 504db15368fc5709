"""What the application tells the ledger: the units of its accounts, and how writers take turns.

The ledger hard-codes neither. The application calls :func:`configure` once per process, before it
opens an account or posts:

* ``units``: the units accounts may be kept in, e.g. ``("points", "minutes")``.
  :func:`ledger.open_account` refuses any other with :class:`ledger.UnknownUnit`, and the accounts
  and postings tables get ``CHECK (unit IN (...))`` built from them, in the order given
  (:func:`ledger.models.declare_units`), so the metadata equals a schema migrated with the same
  units. The units are fixed for the process, as the tables are.
* ``writer_lock``: how to serialise ledger writers (see :data:`WriterLock`); by default
  :func:`default_writer_lock`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias, cast

from sqlalchemy.engine import Connection

from ledger import driver, models

WriterLock: TypeAlias = Callable[[Connection], None]
"""``writer_lock(connection)`` must return holding, for the rest of the connection's current
transaction, a lock that every ledger writer takes: each transaction links to the previous one's
hash, so two writers must never read the head of the chain at once. It is called at the start of
every write (and of :func:`ledger.core.rebuild_balances`), so it must be cheap when the transaction
already holds the lock."""

#: Arbitrary constant naming the PostgreSQL advisory lock that serialises ledger writers.
PG_WRITER_LOCK = 0x7469_6D65
_PG_LOCK_SQL = f"SELECT pg_advisory_xact_lock({driver.mark('postgresql', 'k')})"

# Units are written into DDL as they are, and the unit columns are String(16).
_UNIT = re.compile(r"[a-z][a-z0-9_]{0,15}")


def default_writer_lock(connection: Connection) -> None:
    """A transaction-scoped advisory lock (``pg_advisory_xact_lock``) on PostgreSQL; on SQLite the
    database's write lock, ``BEGIN IMMEDIATE``, unless the connection is already in a transaction
    (which holds the write lock when, as the application does, every transaction begins with it)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.connection.cursor().execute(_PG_LOCK_SQL, {"k": PG_WRITER_LOCK})
    elif dialect == "sqlite":
        sqlite = cast(sqlite3.Connection, connection.connection.dbapi_connection)
        if not sqlite.in_transaction:
            sqlite.execute("BEGIN IMMEDIATE")


@dataclass
class Settings:
    #: The units accounts may be kept in; none until the application declares them.
    units: tuple[str, ...] = ()
    #: Serialises ledger writers (see :data:`WriterLock`).
    writer_lock: WriterLock = default_writer_lock


#: This process's settings, as :func:`configure` left them.
settings = Settings()


def configure(*, units: Iterable[str], writer_lock: WriterLock | None = None) -> None:
    """Tell the ledger its units and, optionally, how to take the writer lock (see module docs).

    Calling it again is fine (every app the process creates may call it) as long as the units are
    the same; ``writer_lock`` is replaced each time (``None``: :func:`default_writer_lock`).
    """
    declared = tuple(units)
    if not declared:
        raise ValueError("the ledger needs at least one unit")
    for unit in declared:
        if not isinstance(unit, str) or not _UNIT.fullmatch(unit):
            raise ValueError(f"unit {unit!r} must be 1 to 16 of a-z, 0-9 and _, starting with a letter")
    if len(set(declared)) != len(declared):
        raise ValueError(f"units {declared} repeat one")
    if settings.units and settings.units != declared:
        raise ValueError(f"the ledger's units are {settings.units} in this process, not {declared}")
    models.declare_units(declared)
    settings.units = declared
    settings.writer_lock = writer_lock if writer_lock is not None else default_writer_lock
