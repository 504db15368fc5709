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


def _register_cli(app):
    app.cli.add_command(rotate_signing_key_command)


def init_app(app) -> None:
    from timebank.audit import checkpoints  # noqa: F401  (registers the nightly job)
    from timebank.audit import month_close_pages as month_close
    from timebank.audit.checkpoints import ensure_signing_key, verify_checkpoints
    from timebank.audit.month_close import month_closed_guard

    app.extensions.setdefault("timebank.init_db_hooks", []).append(ensure_signing_key)
    app.extensions.setdefault("timebank.verify_hooks", []).append(verify_checkpoints)
    app.extensions.setdefault("timebank.cli_hooks", []).append(_register_cli)
    # POST_GUARDS is process-wide, and create_app may run more than once in a process.
    if month_closed_guard not in ledgering.POST_GUARDS:
        ledgering.POST_GUARDS.append(month_closed_guard)
    app.before_request(refuse_supervisor_writes)
    month_close.init_app(app)
