"""Audit and transparency, plugged into the app: signed checkpoints, month close, the read-only
supervisor role.

``init_app`` (called by the app factory, as a plugin) registers:

* an ``init-db`` hook that creates the checkpoint signing key in the instance folder;
* a ``timebank verify`` hook that re-derives every checkpoint's root and signature;
* the month-close posting guard (409 ``month_closed``) in :data:`timebank.core.ledgering.POST_GUARDS`;
* the nightly ``checkpoint`` job (by importing :mod:`timebank.audit.checkpoints`);
* the printable month statement page;
* the ``timebank rotate-signing-key`` command;
* the supervisor guard: a supervisor (监督小组) may read everything in its community and change
  nothing, so any request under ``/api/`` other than GET, HEAD or OPTIONS made with a supervisor's
  token or page session is refused with 403 ``read_only_role`` before any view runs (logging in
  under ``/api/v1/auth/`` and choosing one's own password, ``/api/v1/me/password``, excepted).
"""

from __future__ import annotations

import json

import click
from flask import request
from flask.cli import with_appcontext

from timebank.core import boundary, ledgering
from timebank.core.errors import DomainError, Forbidden
from timebank.core.http import current_user

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _requesting_user():
    """The user behind the request's bearer token or page session, or None (never raises: an
    invalid token is the view's 401)."""
    try:
        user = current_user()
    except DomainError:
        return None
    return user


def refuse_supervisor_writes():
    if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
        return None
    if request.path.startswith(("/api/v1/auth/", "/api/v1/me/password")):
        return None  # logging in and out, and choosing one's own password
    if request.path == "/api/v1/ledger/transactions/exports":
        return None  # asking for an export of what they may read (timebank.audit.export_runs)
    user = _requesting_user()
    if user is not None and user.role == "supervisor":
        raise Forbidden("Supervisors can see everything in their community and change nothing.",
                        code="read_only_role")
    return None


@click.command("rotate-signing-key")
@with_appcontext
@boundary.command
def rotate_signing_key_command():
    """Start signing checkpoints with a new Ed25519 key; the old public key stays for verification."""
    from timebank.audit.checkpoints import rotate_signing_key

    row = rotate_signing_key()
    click.echo(f"now signing with key {row.key_id} ({row.public_key})")


def _witness_files(key_file, state_file):
    from pathlib import Path

    from flask import current_app

    from timebank.audit import cosigner

    folder = Path(current_app.instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    return (Path(key_file) if key_file else folder / cosigner.DEFAULT_KEY_FILE,
            Path(state_file) if state_file else folder / cosigner.DEFAULT_STATE_FILE)


def _witness_name(name):
    from flask import current_app

    from ledger import checkpoint as notes

    name = name or current_app.config.get("TIMEBANK_WITNESS_NAME")
    if not name:
        raise click.UsageError("give the witness's key name with --name (or set TIMEBANK_WITNESS_NAME)")
    try:
        return notes.check_key_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None


_NAME = click.option("--name", default=None, help="this witness's key name, e.g. witness.example.org/w1 "
                                                  "(default: TIMEBANK_WITNESS_NAME)")
_KEY = click.option("--key-file", default=None, help="the witness's private key (default: instance/witness_key.pem)")
_STATE = click.option("--state-file", default=None,
                      help="what the witness has seen (default: instance/witness_state.json)")


@click.command("witness-key")
@_NAME
@_KEY
@with_appcontext
def witness_key_command(name, key_file):
    """Show this witness's name, public key and key ID (made on first use), to register at the log."""
    from ledger import checkpoint as notes
    from timebank.audit import cosigner

    name = _witness_name(name)
    key_path, _ = _witness_files(key_file, None)
    private = cosigner.load_or_create_key(key_path)
    raw = notes.raw_public_key(private)
    click.echo(f"name: {name}")
    click.echo(f"public_key: {cosigner.public_key_b64(private)}")
    click.echo(f"key_id: {notes.cosignature_key_id(name, raw)}")
    click.echo("register it at the log: POST /api/v1/ledger/witnesses "
               + json.dumps({"name": name, "public_key": cosigner.public_key_b64(private)}))


@click.command("witness")
@click.argument("url")
@_NAME
@_KEY
@_STATE
@click.option("--log-key", "log_keys", multiple=True,
              help="a public key (base64) of the log to trust; pinned in the state file. Without one, the "
                   "first run pins the key the log shows (compare it out of band)")
@with_appcontext
def witness_command(url, name, key_file, state_file, log_keys):
    """Witness another deployment's ledger at URL: check its latest checkpoint against the last one seen
    (consistency proof), cosign it (C2SP tlog-cosignature) and post the cosignature back. Exit 1 if a
    check fails: then nothing is signed and the state is unchanged."""
    import sys

    from timebank.audit import cosigner
    from timebank.core.clock import now

    name = _witness_name(name)
    key_path, state_path = _witness_files(key_file, state_file)
    try:
        private = cosigner.load_or_create_key(key_path)
        state = cosigner.read_state(state_path)
        outcome = cosigner.witness_once(
            cosigner.HttpLog(url), name, private, state, list(log_keys),
            clock=lambda: int(now().timestamp()), save=lambda s: cosigner.write_state(state_path, s))
    except cosigner.WitnessError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    if outcome.key_pinned:
        click.echo(f"pinned the log's public key {outcome.key_pinned}: compare it with the one the log's "
                   "operators publish")
    since = "first contact" if outcome.previous_size is None else f"consistent with {outcome.previous_size}"
    done = "cosigned" if outcome.posted_status == 201 else "already cosigned"
    click.echo(f"OK {outcome.origin} tree_size={outcome.tree_size} root_hash={outcome.root_hash} ({since}); {done}")


def _register_cli(app):
    from timebank.audit.export_runs import export_run_command

    app.cli.add_command(export_run_command)
    app.cli.add_command(rotate_signing_key_command)
    app.cli.add_command(witness_command)
    app.cli.add_command(witness_key_command)


def init_app(app) -> None:
    from timebank.audit import (
        checkpoints,  # noqa: F401  (registers the nightly job)
        export_runs,  # noqa: F401  (registers the exports' cleanup job)
    )
    from timebank.audit import month_close_pages as month_close
    from timebank.audit.checkpoints import ensure_signing_key, verify_checkpoints
    from timebank.audit.month_close import month_closed_guard
    from timebank.audit.witnesses import verify_cosignatures

    app.extensions.setdefault("timebank.init_db_hooks", []).append(ensure_signing_key)
    app.extensions.setdefault("timebank.verify_hooks", []).append(verify_checkpoints)
    app.extensions.setdefault("timebank.verify_hooks", []).append(verify_cosignatures)
    app.extensions.setdefault("timebank.cli_hooks", []).append(_register_cli)
    # POST_GUARDS is process-wide, and create_app may run more than once in a process.
    if month_closed_guard not in ledgering.POST_GUARDS:
        ledgering.POST_GUARDS.append(month_closed_guard)
    app.before_request(refuse_supervisor_writes)
    month_close.init_app(app)
