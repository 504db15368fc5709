"""SQL for the driver's own cursor, written once per dialect.

The hot paths (posting, and the application's sale at the till) skip SQLAlchemy's statement
building: compiling and executing a Core statement costs more than the database work itself. Each
keeps its SQL as templates with ``{name}`` placeholders, turned here into the DB-API paramstyle of
each supported driver: ``:name`` for sqlite3 and ``%(name)s`` for psycopg.
"""

from __future__ import annotations

PARAMSTYLES = {"sqlite": "named", "postgresql": "pyformat"}


class _Placeholders(dict):
    def __init__(self, style: str):
        super().__init__()
        self.style = style

    def __missing__(self, key):
        return f":{key}" if self.style == "named" else f"%({key})s"


def per_dialect(templates: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{dialect: {name: sql}}`` for every supported dialect."""
    return {dialect: {name: sql.format_map(_Placeholders(style)) for name, sql in templates.items()}
            for dialect, style in PARAMSTYLES.items()}


def mark(dialect: str, name: str) -> str:
    """One placeholder, for SQL assembled at run time (``IN`` lists)."""
    return f":{name}" if PARAMSTYLES[dialect] == "named" else f"%({name})s"


def connection(session_or_connection):
    """The Core connection of a Session (its current transaction's), or the Connection itself."""
    if hasattr(session_or_connection, "connection") and not hasattr(session_or_connection, "exec_driver_sql"):
        return session_or_connection.connection()
    return session_or_connection


def cursor(session_or_connection):
    """``(driver cursor, dialect name)`` inside the current transaction of a Session or Connection."""
    conn = connection(session_or_connection)
    return conn.connection.dbapi_connection.cursor(), conn.dialect.name


def timestamp(dialect: str, moment):
    """A naive UTC datetime as a parameter: SQLite stores text, written exactly as SQLAlchemy's
    ``DateTime`` writes it so that comparisons agree; other drivers take the datetime."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else moment


def integrity_error(session_or_connection):
    """The driver's IntegrityError class (raised by statements run on its cursor)."""
    return connection(session_or_connection).dialect.dbapi.IntegrityError
