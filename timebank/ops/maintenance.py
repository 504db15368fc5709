"""Running a deployment: online backup and restore, the reverse-proxy switch, and the input guard.

- ``timebank backup FILE``: SQLite through the online backup API (a consistent snapshot, taken while
  the app keeps writing); PostgreSQL through ``pg_dump -Fc`` (one repeatable-read snapshot).
- ``timebank restore FILE [--force]``: SQLite by an atomic file swap; PostgreSQL through
  ``pg_restore --clean --if-exists --single-transaction``. Then the ledger is verified. Refused, with
  nothing changed, while a server or the scheduler uses the database (``timebank.core.in_use``).
- ``TIMEBANK_PROXY_FIX=1``: trust one reverse proxy's ``X-Forwarded-*`` headers (off by default: without
  a proxy in front, a client could claim any address and dodge the per-address login limit).
- The input guard refuses, for every request, text the database cannot store the same way on SQLite
  and PostgreSQL (NUL characters), JSON integers beyond 64 bits, and fractional or non-finite JSON
  numbers (no field takes fractions; marshmallow would quietly turn 1.5 into 1), with 422
  ``validation_error``; and JSON nested deeper than ``MAX_JSON_DEPTH`` levels, with 422
  ``too_deeply_nested``, measured on the raw body before any parser recurses into it.

See docs/operations.md and docs/deploy.md.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import click
from flask import current_app, request
from flask.cli import with_appcontext
from sqlalchemy.engine import make_url

from timebank.core import in_use
from timebank.core.errors import NotFound, ValidationFailed

#: Largest integer either database stores (64-bit signed).
MAX_INTEGER = 2**63 - 1
#: Deepest JSON nesting any endpoint takes (the deepest body of the API has three levels).
MAX_JSON_DEPTH = 64


# --------------------------------------------------------------------------------------------
# Plugging in
# --------------------------------------------------------------------------------------------


def init_app(app) -> None:
    app.extensions.setdefault("timebank.cli_hooks", []).append(register)
    app.before_request(_guard_input)
    hops = _proxy_hops(app.config.get("TIMEBANK_PROXY_FIX", os.environ.get("TIMEBANK_PROXY_FIX")))
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)


def _proxy_hops(value) -> int:
    """``TIMEBANK_PROXY_FIX``: unset/0 = off, 1 (or true/yes) = one proxy, N = N proxies in a chain."""
    if value in (None, "", False):
        return 0
    if isinstance(value, str):
        if value.strip().lower() in ("true", "yes", "on"):
            return 1
        if value.strip().lower() in ("false", "no", "off"):
            return 0
        return max(0, int(value))
    return int(value)


def register(app) -> None:
    for command in (backup_command, restore_command):
        app.cli.add_command(command)


# --------------------------------------------------------------------------------------------
# Input guard: one check for every endpoint, present and future
# --------------------------------------------------------------------------------------------


def _bad_values(value, path="body"):
    """Yield (field, message) for NUL characters and integers no database column can hold."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "NUL characters (\\u0000) are not allowed in text."
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
            yield path, "Integer out of range."
    elif isinstance(value, float):
        # Points and minutes are integers, and no field takes fractions: 1.5 must not become 1.
        if not math.isfinite(value) or not value.is_integer():
            yield path, "Whole numbers only."
        elif not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
            yield path, "Integer out of range."
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield path, "NUL characters (\\u0000) are not allowed in field names."
            yield from _bad_values(item, key if path == "body" else f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_values(item, f"{path}.{index}")


_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\]')


def _too_deep(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` opens more than ``limit`` arrays or objects inside one another
    (brackets inside strings do not count). A plain scan: no recursion, however deep the text."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth, in_string, skip = 0, False, -1
    for match in _JSON_SPECIAL.finditer(data):
        at = match.start()
        if at == skip:  # the character after a backslash in a string
            continue
        char = data[at]
        if in_string:
            if char == 0x5C:  # backslash
                skip = at + 1
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _refuse_deep_json() -> NoReturn:
    raise ValidationFailed(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                           code="too_deeply_nested")


def _guard_input():
    """PostgreSQL cannot store NUL in text, SQLite can: refuse it everywhere so both behave alike."""
    errors: dict[str, list[str]] = {}

    def collect(found):
        for field, message in found:
            errors.setdefault(field, []).append(message)

    for name, values in request.args.lists():
        collect(_bad_values(name + "".join(values), name))
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
            raise NotFound()  # no row has such an id
        collect(_bad_values(value, name))
    if request.mimetype and request.mimetype.endswith("json") and request.content_length != 0:
        # Before parsing: Python's parsers and every walk over the parsed body recurse per level.
        if _too_deep(request.get_data(cache=True), MAX_JSON_DEPTH):
            _refuse_deep_json()
        try:
            # silent: malformed JSON is left for the view to refuse with 400 bad_request.
            body = request.get_json(silent=True)
        except RecursionError:  # not reached after the scan above; kept as the last line of defence
            _refuse_deep_json()
        collect(_bad_values(body))
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, values in request.form.lists():
            collect(_bad_values(name + "".join(values), name))
    if errors:
        raise ValidationFailed("The request has invalid fields.", errors=errors)


# --------------------------------------------------------------------------------------------
# Backup and restore
# --------------------------------------------------------------------------------------------


def _database_url():
    return make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])


def sqlite_path(url=None) -> Path:
    """The file of a ``sqlite:///PATH`` or ``sqlite:///file:PATH?...&uri=true`` URL."""
    path = in_use.sqlite_file(url or _database_url())
    if path is None:
        raise click.ClickException("an in-memory SQLite database cannot be backed up")
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ledger_head(connection: sqlite3.Connection) -> tuple[int, str | None]:
    row = connection.execute("SELECT count(*), (SELECT hash FROM ledger_transactions ORDER BY id DESC LIMIT 1)"
                             " FROM ledger_transactions").fetchone()
    return row[0], row[1]


def backup_sqlite(source: Path, target: Path, busy_timeout_s: float = 30.0) -> tuple[int, str | None]:
    """Copy a live SQLite database to ``target`` atomically; return (transactions, head hash).

    The backup API copies every page in one step under a read transaction: in WAL mode that
    snapshot does not stop writers, and what is copied is exactly the database as of one commit.
    The copy is written next to the target and renamed into place, so ``target`` is either the
    previous file or a complete backup, never half of one.
    """
    if not source.exists():
        raise click.ClickException(f"no database at {source}")
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    os.chmod(temporary, 0o600)  # a backup holds everything: people, phones, password hashes
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=busy_timeout_s)
        dst = sqlite3.connect(temporary)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise click.ClickException(f"the copy failed its integrity check: {check}")
            head = _ledger_head(dst)
        finally:
            dst.close()
            src.close()
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_dir(target.parent)
        return head
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _check_sqlite_backup(path: Path) -> tuple[int, str | None]:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise click.ClickException(f"{path} is not a SQLite database: {exc}") from exc
    try:
        try:
            check = con.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"{path} is not a SQLite database: {exc}") from exc
        if check != "ok":
            raise click.ClickException(f"{path} fails its integrity check: {check}")
        if not {"ledger_transactions", "alembic_version"} <= tables:
            raise click.ClickException(f"{path} is not a timebank database (no ledger or schema version)")
        return _ledger_head(con)
    finally:
        con.close()


def restore_sqlite(backup: Path, target: Path, force: bool) -> Path | None:
    """Put ``backup`` in place of ``target`` atomically. With ``force``, the database that was there is
    kept beside it as ``NAME.before-restore-TIMESTAMP`` (after folding its WAL into it). Returns that path."""
    target = target.resolve()
    kept = None
    if target.exists() and target.stat().st_size > 0 and not force:  # empty: made by a server before init-db
        raise click.ClickException(f"a database already exists at {target}; stop the service and pass --force "
                                   "to replace it (the current file is kept beside it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".restore", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(backup, temporary)
        os.chmod(temporary, 0o600)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if target.exists() and target.stat().st_size > 0:
            old = sqlite3.connect(target)
            try:
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                old.close()
            kept = target.with_name(f"{target.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(target, kept)
        # A -wal or -shm left from the old file would be replayed into the new one: remove them.
        for suffix in ("-wal", "-shm", "-journal"):
            leftover = target.with_name(target.name + suffix)
            if leftover.exists():
                leftover.unlink()
        os.replace(temporary, target)
        _fsync_dir(target.parent)
        return kept
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _libpq(url):
    """A libpq connection string and environment for the pg_* tools (the password never on argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise click.ClickException(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def backup_postgres(url, target: Path) -> None:
    dsn, env = _libpq(url)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part")
    done = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(temporary), dsn],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        temporary.unlink(missing_ok=True)
        raise click.ClickException(f"pg_dump failed: {done.stderr.strip()}")
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)


def _postgres_has_ledger(url) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass('public.ledger_transactions')")).scalar() is None:
                return False
            return conn.execute(text("SELECT EXISTS (SELECT 1 FROM ledger_transactions)")).scalar()
    finally:
        engine.dispose()


def restore_postgres(url, backup: Path, force: bool) -> None:
    if _postgres_has_ledger(url) and not force:
        raise click.ClickException("the database already holds a ledger; stop the service and pass --force "
                                   "to replace its contents")
    dsn, env = _libpq(url)
    done = subprocess.run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                           "--exit-on-error", "--dbname", dsn, str(backup)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"pg_restore failed (nothing was changed): {done.stderr.strip()}")


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(file: Path):
    """Take a consistent online backup of the database into FILE (safe while the app runs).

    SQLite: the online backup API, written atomically. PostgreSQL: pg_dump -Fc (custom format).
    The checkpoint signing key in the instance folder is not included: keep it separately.
    """
    url = _database_url()
    if url.get_backend_name() == "sqlite":
        busy = int(current_app.config.get("TIMEBANK_SQLITE_BUSY_TIMEOUT_MS", 30_000)) / 1000
        size, head = backup_sqlite(sqlite_path(url), file, busy)
        click.echo(f"backup written to {file}: {size} ledger transactions, head {head}")
    elif url.get_backend_name() == "postgresql":
        backup_postgres(url, file)
        click.echo(f"backup written to {file} (pg_dump custom format)")
    else:
        raise click.ClickException(f"no backup method for {url.get_backend_name()}")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace an existing database (stop the service first)")
@with_appcontext
def restore_command(file: Path, force: bool):
    """Bring back a backup made by `timebank backup`, then verify the ledger.

    Stop `timebank serve` and `timebank scheduler` first: while they run (they mark the database in
    use, timebank.core.in_use), restore refuses and changes nothing. SQLite: refuses when the database file
    exists unless --force (the old file is kept beside it); the swap is atomic. PostgreSQL:
    pg_restore --clean --single-transaction (all or nothing). Run `timebank init-db` afterwards if
    the backup comes from an older version.
    """
    from timebank.core import in_use
    from timebank.core.extensions import db

    url = _database_url()
    if url.get_backend_name() == "sqlite":
        _check_sqlite_backup(file)
    try:
        # Refuse at once while a server or the scheduler uses the database (they hold it shared for
        # their whole life), and keep it exclusively until the swap is done and this process's
        # connections to the old file are gone (see timebank.core.in_use on closing descriptors).
        with in_use.exclusive(current_app.config):
            if url.get_backend_name() == "sqlite":
                kept = restore_sqlite(file, sqlite_path(url), force)
                if kept:
                    click.echo(f"the replaced database is kept at {kept}")
            elif url.get_backend_name() == "postgresql":
                restore_postgres(url, file, force)
            else:
                raise click.ClickException(f"no restore method for {url.get_backend_name()}")
            db.session.remove()
            db.engine.dispose()  # connections opened before the swap point at the old file
    except in_use.InUse as exc:
        raise click.ClickException(f"nothing was restored: {exc}") from None
    from timebank.audit.verify import verify_everything

    report = verify_everything()
    db.session.remove()
    if not report["ok"]:
        first = report.get("first_bad_transaction")
        raise click.ClickException(f"restored, but the ledger does not verify (first bad transaction {first})")
    click.echo(f"restored from {file}: {report['size']} ledger transactions verify, head {report['head_hash']}")
