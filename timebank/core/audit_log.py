"""The append-only audit log of staff actions: who, what, when, from which address.

Every staff action that changes something (approvals, rule changes, redemptions, voids, stock
changes, logins) calls :func:`record` inside the same database transaction as the action, so the
log and the action stand or fall together. The database refuses UPDATE and DELETE on it.

Exports (the ledger, the monthly report) are read with GET, and a GET never writes (it may run as a
read-only transaction), so they are not rows here: :func:`record_export` writes each one as a JSON
line on the ``timebank.audit.exports`` logger (docs/audit.md).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

from flask import has_request_context, request
from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger import driver
from timebank.core.clock import to_local, utc_naive
from timebank.core.database import take_write_lock
from timebank.core.extensions import Model, db


class AuditEntry(Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    #: The user who acted (null for the scheduler and the command line).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: Username or ``scheduler`` / ``cli``, kept as text so the entry reads on its own.
    actor: Mapped[str] = mapped_column(String(128))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    #: What was done, dotted: ``claim.approve``, ``redemption.void``, ``rule.change``, ``auth.login``.
    action: Mapped[str] = mapped_column(String(64), index=True)
    #: What it was done to: ``claim:12``.
    target: Mapped[str | None] = mapped_column(String(128))
    #: JSON with the particulars (reason, amounts).
    details: Mapped[str] = mapped_column(Text, default="{}")
    #: Client address, as seen by the app (behind a proxy: configure ProxyFix).
    address: Mapped[str | None] = mapped_column(String(64))


# On the driver's cursor: every sale at the till writes one (see timebank.shop.sale).
_SQL = driver.per_dialect({"insert": (
    "INSERT INTO audit_log (created_at, user_id, actor, community_id, action, target, details, address)"
    " VALUES ({created_at}, {user_id}, {actor}, {community_id}, {action}, {target}, {details}, {address})"
    " RETURNING id")})


def record(action: str, *, user=None, target: str | None = None, community_id: int | None = None,
           actor: str | None = None, **details) -> int:
    """Append an entry in the current transaction and return its id.

    Written at once, in order with the action's other statements: the session's pending changes
    are flushed first, the write lock is taken (a request may have deferred it,
    :mod:`timebank.core.database`), and the row goes in on the driver's cursor."""
    address = request.remote_addr if has_request_context() else None
    if community_id is None and user is not None:
        community_id = getattr(user, "community_id", None)
    db.session.flush()
    take_write_lock(db.session)
    cursor, dialect = driver.cursor(db.session)
    cursor.execute(_SQL[dialect]["insert"], {
        "created_at": driver.timestamp(dialect, utc_naive()),
        "user_id": getattr(user, "id", None),
        "actor": actor or (user.username if user is not None else "system"),
        "community_id": community_id,
        "action": action,
        "target": target,
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True, default=str),
        "address": address,
    })
    row = cursor.fetchone()
    assert row is not None  # INSERT ... RETURNING gives one row
    return int(row[0])


#: Where exports are logged: one JSON object per line (see :func:`record_export`).
EXPORT_LOGGER = "timebank.audit.exports"
export_log = logging.getLogger(EXPORT_LOGGER)


def configure_export_log() -> None:
    """Make sure export lines are written: the logger passes INFO, and when nothing in the process
    handles it (no handler here or on the root logger), its lines go to standard error, which the
    service manager keeps (``journalctl -u timebank-web``). A deployment's own logging configuration of
    ``timebank.audit.exports`` (a file, syslog) takes over when present."""
    export_log.setLevel(logging.INFO)
    if not export_log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
        export_log.addHandler(handler)


def record_export(action: str, *, user, fmt: str, target: str | None = None, filters: dict | None = None,
                  rows: int | None = None, community_id: int | None = None) -> dict:
    """Log one export (``ledger.export``, ``report.export``) as a JSON line and return what was logged.

    Nothing is written to the database: exports are GET requests, which never write. The line holds
    who (user id, username, role, community), what (target, format, filters, rows), when (the
    deployment's local time with its offset) and from where (client address, the request path)."""
    if community_id is None and user is not None:
        community_id = getattr(user, "community_id", None)
    entry = {
        "action": action,
        "at": to_local(utc_naive()).isoformat(),
        "user_id": getattr(user, "id", None),
        "username": getattr(user, "username", None),
        "role": getattr(user, "role", None),
        "community_id": community_id,
        "target": target,
        "format": fmt,
        "filters": filters or {},
        "rows": rows,
        "address": request.remote_addr if has_request_context() else None,
        "path": request.full_path.rstrip("?") if has_request_context() else None,
    }
    export_log.info(json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str))
    return entry
