"""The append-only audit log of staff actions: who, what, when, from which address.

Every staff action that changes something (approvals, rule changes, redemptions, voids, stock
changes, exports, logins) calls :func:`record` inside the same database transaction as the action,
so the log and the action stand or fall together. The database refuses UPDATE and DELETE on it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from flask import has_request_context, request
from sqlalchemy import DateTime, ForeignKey, Integer, String, Table, Text, insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from timebank.core.clock import utc_naive
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


_INSERT = insert(cast(Table, AuditEntry.__table__))


def record(action: str, *, user=None, target: str | None = None, community_id: int | None = None,
           actor: str | None = None, **details) -> int:
    """Append an entry in the current transaction and return its id.

    A Core insert rather than an ORM object: it is written at once, in order with the action's
    other statements, without a unit-of-work flush (every sale at the till writes one)."""
    address = request.remote_addr if has_request_context() else None
    if community_id is None and user is not None:
        community_id = getattr(user, "community_id", None)
    result = db.session.execute(_INSERT, {
        "created_at": utc_naive(),
        "user_id": getattr(user, "id", None),
        "actor": actor or (user.username if user is not None else "system"),
        "community_id": community_id,
        "action": action,
        "target": target,
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True, default=str),
        "address": address,
    })
    key = cast("CursorResult[Any]", result).inserted_primary_key  # an INSERT's result
    assert key is not None  # one row inserted, so one key
    return key[0]
