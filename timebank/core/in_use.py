"""The database's "in use" lock: servers and the scheduler hold it shared, ``timebank restore`` exclusively.

A restore that swaps the database under a running server loses every write the server acknowledges
afterwards (on SQLite they go into the file that was renamed away). So every serving process (each
gunicorn worker, through ``timebank/wsgi.py``; the ``timebank serve`` master; ``timebank scheduler``)
takes a *shared* lock for its whole life, and ``timebank restore`` tries to take it *exclusively*
without waiting: while anyone holds it shared, the restore refuses.

- **SQLite**: ``flock(LOCK_SH)`` on a descriptor of the database file itself, opened read-only and
  never closed while the process lives (the lock goes when the process ends, however it ends).
  ``flock`` locks and the POSIX record locks SQLite takes on the same file are independent on Linux,
  so this does not interfere with SQLite's locking. **Never close that descriptor**: closing *any*
  descriptor of a file drops all the POSIX record locks the process holds on it, that is, the locks
  of every SQLite connection of the process, which would let another process write under a reader's
  feet. The same goes for the restore's descriptor: it is closed only after the connections to the
  old file are gone. A process that starts while a restore runs waits for it, then checks that the
  file it locked is still the one at the database's path (the restore renames a new file into place)
  and locks that one instead.
- **PostgreSQL**: a dedicated connection holding ``pg_advisory_lock_shared(KEY)`` for the process's
  life (a session-level advisory lock, per database); the restore tries ``pg_try_advisory_lock(KEY)``
  on its own connection and keeps it for the length of the restore. If the connection is lost (the
  PostgreSQL server restarts), the lock is gone until the process is restarted.

The app factory does not take the lock: tests and commands build apps in-process (and then run a
restore); only the serving entry points do. See docs/operations.md, "Backup and restore".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

#: The advisory lock's key on PostgreSQL: "timebank" in ASCII, as a signed 64-bit integer.
KEY = int.from_bytes(b"timebank", "big")

#: What this process holds for its whole life: descriptors and connections that must never be closed.
_HELD: list[Any] = []


class InUse(Exception):
    """A server or the scheduler is using the database."""

    def __init__(self) -> None:
        super().__init__("a server or scheduler is using the database (timebank serve / gunicorn, "
                         "timebank scheduler); stop them, then restore")


def database_url(config: dict[str, Any]) -> URL:
    return make_url(config["SQLALCHEMY_DATABASE_URI"])


def sqlite_file(url: URL) -> Path | None:
    """The file of ``sqlite:///PATH`` or ``sqlite:///file:PATH?...&uri=true``; None in memory."""
    database = url.database or ""
    if database.startswith("file:"):
        database = database[len("file:"):].split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return Path(database).resolve()


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _hold_sqlite(path: Path, inheritable: bool, wait: bool) -> int | None:
    while True:
        try:
            # O_CREAT: a server started before `timebank init-db` makes the (empty) file SQLite would make.
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:  # e.g. a read-only folder without the file: nothing to restore over either
            log.warning("cannot open %s to mark it in use (%s); a restore would not see this process", path, exc)
            return None
        # Kept open for good, locked or not: this process may already have SQLite connections to the
        # file, and closing any descriptor of it would drop their record locks.
        _HELD.append(fd)
        os.set_inheritable(fd, inheritable)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                return None
            log.warning("a restore of %s is running; waiting for it to finish", path)
            fcntl.flock(fd, fcntl.LOCK_SH)
        if _same_file(fd, path):
            return fd
        # The restore renamed a new file into place while we waited: lock that one.


def _engine_for_lock(url: URL, engine_options: dict[str, Any] | None) -> Any:
    connect_args = dict((engine_options or {}).get("connect_args", {}))
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _hold_postgres(url: URL, engine_options: dict[str, Any] | None, wait: bool) -> bool:
    engine = _engine_for_lock(url, engine_options)
    connection = engine.connect()
    try:
        # Wait for a running restore however long it takes (instance settings may set lock_timeout).
        connection.execute(text("SET lock_timeout = 0"))
        connection.execute(text("SET statement_timeout = 0"))
        if not connection.execute(text("SELECT pg_try_advisory_lock_shared(:key)"), {"key": KEY}).scalar():
            if not wait:
                connection.close()
                engine.dispose()
                return False
            log.warning("a restore of the database is running; waiting for it to finish")
            connection.execute(text("SELECT pg_advisory_lock_shared(:key)"), {"key": KEY})
        connection.commit()  # a session-level advisory lock outlives the transaction
    except BaseException:
        connection.close()
        engine.dispose()
        raise
    _HELD.append((engine, connection))
    return True


def hold(config: dict[str, Any], inheritable: bool = False, wait: bool = True) -> bool:
    """Mark the database in use by this process until it ends; call it before the process's first
    database connection. ``inheritable``: for a process that is about to ``exec`` another program
    (``timebank serve`` -> the gunicorn master, whose workers inherit it too): on SQLite the locked
    descriptor passes on; a PostgreSQL connection cannot (libpq closes it on exec), so there it does
    nothing and the workers hold the lock. ``wait``: wait for a running restore to finish (else
    return False at once). Returns whether a lock is held; a database that cannot be reached raises."""
    url = database_url(config)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_file(url)
        return path is not None and _hold_sqlite(path, inheritable, wait) is not None
    if backend == "postgresql" and not inheritable:
        return _hold_postgres(url, config.get("SQLALCHEMY_ENGINE_OPTIONS"), wait)
    return False


class _Ensured:
    """Whether ``ensure`` holds the lock, and when it may try again."""

    held = False
    next_try = 0.0


RETRY_SECONDS = 5.0


def ensure(config: dict[str, Any]) -> bool:
    """Hold the lock, or try again (at most every few seconds) if an earlier try failed: for a server
    or scheduler that starts while its database cannot be reached, and must start all the same (it
    answers 503 meanwhile) and take the lock once the database is back. Never raises; cheap once held.
    The first try waits for a running restore; later ones (made during requests) do not."""
    if _Ensured.held:
        return True
    now = time.monotonic()
    if now < _Ensured.next_try:
        return False
    first = _Ensured.next_try == 0.0
    _Ensured.next_try = now + RETRY_SECONDS
    try:
        _Ensured.held = hold(config, wait=first)
    except Exception as exc:  # noqa: BLE001 - a database that cannot be reached: try again later
        log.warning("cannot mark the database in use yet (%s); trying again", exc)
    return _Ensured.held


@contextlib.contextmanager
def exclusive(config: dict[str, Any]) -> Iterator[None]:
    """Hold the database exclusively for a restore, or raise :class:`InUse` at once.

    On SQLite the descriptor is closed when the block ends: close the block only after this process's
    SQLite connections to the old file are gone (see the module's note on POSIX locks)."""
    url = database_url(config)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_file(url)
        if path is None or not path.exists():
            yield  # no file: nobody can be using it
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise InUse() from None
                raise
            yield
        finally:
            os.close(fd)
    elif backend == "postgresql":
        engine = _engine_for_lock(url, config.get("SQLALCHEMY_ENGINE_OPTIONS"))
        try:
            with engine.connect() as connection:
                taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": KEY}).scalar()
                connection.commit()
                if not taken:
                    raise InUse()
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": KEY})
                    connection.commit()
        finally:
            engine.dispose()
    else:
        yield
