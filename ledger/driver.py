"""SQL for the driver's own cursor, written once per dialect.

The hot paths (posting, and the application's sale at the till) skip SQLAlchemy's statement
building: compiling and executing a Core statement costs more than the database work itself. Each
keeps its SQL as templates with ``{name}`` placeholders, turned here into the DB-API paramstyle of
each supported driver: ``:name`` for sqlite3 and ``%(name)s`` for psycopg.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.orm import Session, scoped_session

#: What the ledger's functions are given: a Core ``Connection``, or an ORM ``Session`` (plain or a
#: ``scoped_session``), in whose current transaction they then work.
Bind: TypeAlias = Connection | Session | scoped_session[Any]

PARAMSTYLES = {"sqlite": "named", "postgresql": "pyformat"}


class _Placeholders(dict[str, str]):
    def __init__(self, style: str):
        super().__init__()
        self.style = style

    def __missing__(self, key: str) -> str:
        return f":{key}" if self.style == "named" else f"%({key})s"


def per_dialect(templates: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{dialect: {name: sql}}`` for every supported dialect."""
    return {dialect: {name: sql.format_map(_Placeholders(style)) for name, sql in templates.items()}
            for dialect, style in PARAMSTYLES.items()}


def mark(dialect: str, name: str) -> str:
    """One placeholder, for SQL assembled at run time (``IN`` lists)."""
    return f":{name}" if PARAMSTYLES[dialect] == "named" else f"%({name})s"


def connection(bind: Bind) -> Connection:
    """The Core connection of a Session (its current transaction's), or the Connection itself."""
    if isinstance(bind, Connection):
        return bind
    if isinstance(bind, (Session, scoped_session)):
        return bind.connection()
    raise TypeError(f"expected a SQLAlchemy Connection or Session, not {type(bind).__name__}")


def dialect_name(bind: Bind) -> str:
    """The bind's dialect name, without beginning a transaction on a Session."""
    if isinstance(bind, Connection):
        return bind.dialect.name
    if isinstance(bind, (Session, scoped_session)):
        return bind.get_bind().dialect.name
    raise TypeError(f"expected a SQLAlchemy Connection or Session, not {type(bind).__name__}")


def cursor(bind: Bind) -> tuple[DBAPICursor, str]:
    """``(driver cursor, dialect name)`` inside the current transaction of a Session or Connection."""
    conn = connection(bind)
    return conn.connection.cursor(), conn.dialect.name


def timestamp(dialect: str, moment: datetime) -> str | datetime:
    """A naive UTC datetime as a parameter: SQLite stores text, written exactly as SQLAlchemy's
    ``DateTime`` writes it so that comparisons agree; other drivers take the datetime."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else moment


def integrity_error(bind: Bind) -> type[Exception]:
    """The driver's IntegrityError class (raised by statements run on its cursor)."""
    dbapi = connection(bind).dialect.dbapi
    assert dbapi is not None  # a dialect in use has its driver loaded
    error: type[Exception] = dbapi.IntegrityError
    return error
