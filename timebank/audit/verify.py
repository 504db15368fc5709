"""Verifying the whole ledger: the chain, the balances and (when present) the checkpoints; and, for
``timebank verify``, the SQLite database file itself (SQLite's own integrity check)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

import ledger
from timebank.core import in_use
from timebank.core.extensions import db


def verify_everything() -> dict:
    report = ledger.verify(db.session)
    result = {
        "ok": report.ok,
        "size": report.size,
        "head_hash": report.head_hash,
        "problems": list(report.problems),
        "first_bad_transaction": report.first_bad_transaction,
        "notes": [],
    }
    # Further checks (checkpoint roots and signatures) register themselves here.
    for check in current_app.extensions.get("timebank.verify_hooks", []):
        check(result)
    result["ok"] = not result["problems"]
    return result


def sqlite_file() -> Path | None:
    """The file of the app's SQLite database (``sqlite:///PATH`` or ``sqlite:///file:PATH?...&uri=true``);
    None for PostgreSQL and for a database in memory."""
    url = db.engine.url
    return in_use.sqlite_file(url) if url.get_backend_name() == "sqlite" else None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def database_file_problem() -> str | None:
    """None when the database file passes SQLite's ``PRAGMA integrity_check``, else one line naming the
    damage: a page that is not what its b-tree expects, a file cut short, a file that is no database.

    The check reads every page of the file, so it is for ``timebank verify``, not for requests. It
    opens the file read-write without creating it (a missing file stays missing) and writes nothing.
    PostgreSQL keeps no file of the application's: there it returns None (the server checks its
    own pages; see docs/verify.md)."""
    path = sqlite_file()
    if path is None:
        return None
    if not path.is_file():
        return f"no database at {path}"
    busy_ms = int(current_app.config.get("TIMEBANK_SQLITE_BUSY_TIMEOUT_MS", 30_000))
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=busy_ms / 1000)
        try:
            rows = [row[0] for row in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith("SQLITE_CORRUPT"):  # "database disk image is malformed": a page cut off or overwritten
            return f"the database file {path} is damaged: {_one_line(exc)}"
        if name.startswith("SQLITE_NOTADB"):  # "file is not a database": not even SQLite's header
            return f"the file {path} is not a database ({_one_line(exc)})"
        return f"the database file {path} cannot be read: {_one_line(exc)}"
    if rows == ["ok"]:
        return None
    more = f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else ""
    return f"the database file {path} is damaged: {_one_line(rows[0])}{more}"


def database_errors() -> tuple[type[BaseException], ...]:
    """What a database that cannot be read raises: SQLAlchemy's errors and the drivers' own (the
    ledger reads through driver cursors)."""
    errors: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        pass
    return tuple(errors)


def database_error_line(exc: BaseException) -> str:
    """The driver's message of a database error, on one line (without SQLAlchemy's background link)."""
    return _one_line(getattr(exc, "orig", None) or exc)
