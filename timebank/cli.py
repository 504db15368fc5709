"""The ``timebank`` command: a Flask CLI group, so ``timebank routes`` and ``timebank shell`` work too."""

from __future__ import annotations

import os
import shutil
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from timebank.core import boundary


def _create_app():
    from timebank import create_app

    # A command's statements may run long (migrations, verify, month close): PostgreSQL gives them
    # TIMEBANK_PG_COMMAND_STATEMENT_TIMEOUT_MS instead of a request's (timebank/core/postgres.py).
    return create_app({"TIMEBANK_COMMAND_LINE": True})


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True, add_version_option=False)
def main():
    """timebank: community points and time bank."""


def init_db() -> None:
    """Create or upgrade the schema to the newest migration, and create the signing key."""
    from flask_migrate import upgrade

    upgrade(directory=current_app.extensions["migrate"].directory, revision="heads")
    with boundary.unit_of_work():
        for hook in current_app.extensions.get("timebank.init_db_hooks", []):
            hook()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the schema (Alembic migrations); safe to run twice."""
    init_db()
    click.echo("database is at the newest schema")


@click.command("create-user")
@click.argument("username")
@click.option("--role", required=True,
              type=click.Choice(["admin", "committee", "grid_worker", "clerk", "resident", "supervisor"]))
@click.option("--community", "community_code", default=None, help="community code (staff)")
@click.option("--resident-id", type=int, default=None, help="link the login to this resident")
@click.option("--phone", default=None,
              help="the person's phone (staff): a resident's phone links the login to that resident")
@click.option("--password-stdin", is_flag=True, required=True, help="read the password from standard input")
@with_appcontext
def create_user_command(username, role, community_code, resident_id, phone, password_stdin):
    """Create a login; the password is read from standard input.

    Staff are people: give staff logins the person's --phone (or --resident-id). Without one the login
    may read, but approves, signs and voids nothing until it is linked (PATCH /api/v1/users/{id})."""
    from timebank.core.audit_log import record
    from timebank.core.errors import DomainError
    from timebank.people.operations import community_by_code, create_user

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        community_id = community_by_code(community_code).id if community_code else None
        with boundary.unit_of_work():
            user = create_user(username, password, role, community_id=community_id, resident_id=resident_id,
                               phone=phone)
            record("user.create", actor="cli", target=f"user:{user.id}", community_id=community_id,
                   username=user.username, role=user.role, resident_id=user.resident_id, phone=user.phone,
                   person=user.person_key is not None)
    except DomainError as exc:
        detail = exc.detail
        if exc.errors:
            detail += " " + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.errors.items())
        raise click.ClickException(detail) from exc
    click.echo(f"created user {user.username} ({user.role}) id={user.id}")
    if user.role not in ("admin", "resident") and user.person_key is None:
        click.echo("note: this staff login belongs to no person (no --phone): it may read, but approves, signs "
                   "and voids nothing until it is linked (PATCH /api/v1/users/{id} with the phone)")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--timeout", default=60, show_default=True, type=int)
@with_appcontext
def serve_command(host, port, workers, timeout):
    """Serve with gunicorn (a production server, not the debug server).

    Settings and why: timebank/ops/gunicorn_conf.py. Each worker opens its own database connections
    (no preload). More gunicorn options can be passed in ``GUNICORN_CMD_ARGS``. The database is marked
    in use (timebank.core.in_use) while the server runs: `timebank restore` refuses until it stops.
    """
    from timebank.core import in_use

    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed")
    if workers < 1:
        raise click.BadParameter("at least one worker", param_hint="--workers")
    # On SQLite the gunicorn master keeps this lock (an inherited descriptor), so it is held even while
    # workers are being replaced; every worker takes its own as well (timebank/wsgi.py).
    in_use.hold(current_app.config, inheritable=True)
    args = [gunicorn, "--config", "python:timebank.ops.gunicorn_conf", "--bind", f"{host}:{port}",
            "--workers", str(workers), "--timeout", str(timeout), "timebank.wsgi:app"]
    os.execv(gunicorn, args)


@click.command("verify")
@with_appcontext
def verify_command():
    """Check the database file (SQLite's integrity check), then re-derive the hash chain, checkpoints and
    every balance; exit 1 with one line naming a damaged file, or naming the first bad transaction."""
    from timebank.audit.verify import database_error_line, database_errors, database_file_problem, verify_everything

    damage = database_file_problem()
    if damage is not None:
        click.echo(f"FAILED: {damage}", err=True)
        sys.exit(1)
    from timebank.core.database import reading

    try:
        with reading():  # a plain read transaction: the writers go on meanwhile
            report = verify_everything()
    except database_errors() as exc:
        click.echo(f"FAILED: the database cannot be read: {database_error_line(exc)}", err=True)
        sys.exit(1)
    if report["ok"]:
        click.echo(f"OK: {report['size']} transactions, head {report['head_hash']}")
        for line in report.get("notes", []):
            click.echo(line)
        return
    first = report.get("first_bad_transaction")
    if first is not None:
        click.echo(f"FAILED: first bad transaction id {first}", err=True)
    else:
        click.echo("FAILED", err=True)
    for item in report["problems"][:50]:
        click.echo(f"  transaction {item.get('transaction_id')}: {item['problem']}", err=True)
    sys.exit(1)


def init_app(app) -> None:
    """Register the commands (a plugin of the app factory: this module composes the features)."""
    register_commands(app)


def register_commands(app) -> None:
    from timebank import demo
    from timebank.core import scheduler

    for command in (init_db_command, create_user_command, serve_command, verify_command,
                    *scheduler.COMMANDS, demo.demo_command):
        app.cli.add_command(command)
    for register in app.extensions.get("timebank.cli_hooks", []):
        register(app)


if __name__ == "__main__":  # pragma: no cover
    main()
