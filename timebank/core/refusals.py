"""The record of refused insider attempts: who tried what the insider rules forbid, and when.

A refused request's transaction is rolled back, so the attempt would leave no trace in the audit
log. Yet an attempt refused again and again (a committee member approving their own household's
claims, a helper of the requester's own household, a second signature by the first signer) is what
the committee's anomaly report should see (``refused_self_dealing``, docs/reports.md). So:

* When a :class:`~timebank.core.errors.DomainError` whose code is in
  :data:`~timebank.core.errors.INSIDER_CODES` (``self_approval``, ``self_dealing``, ``same_signer``,
  ``person_required``) is made during a request that writes (not ``GET``/``HEAD``/``OPTIONS``, which
  never write), it is noted (:func:`note`, which ``DomainError`` calls through
  :data:`~timebank.core.errors.ON_INSIDER_REFUSAL`): every such refusal counts, whichever API view or
  page catches it and however it is shown.
* After the request has ended, whether its own transaction committed or rolled back, each note is
  written to ``refusals`` in a short transaction of its own (:func:`write_noted`, an ``after_request``
  hook). A failure there is logged and swallowed: the refusal is still answered as a refusal, never
  as a 500.
* An idempotent retry that replays a stored refusal raises nothing and so is not counted again.

The table is append-only: the database refuses UPDATE and DELETE (as for the audit log).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from flask import g, has_request_context, request
from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from timebank.core.clock import utc_naive
from timebank.core.database import SAFE_METHODS
from timebank.core.errors import INSIDER_CODES, ON_INSIDER_REFUSAL
from timebank.core.extensions import Model, db

if TYPE_CHECKING:
    from timebank.core.errors import DomainError

log = logging.getLogger(__name__)

_NOTED = "timebank_refusals"


class Refusal(Model):
    """One refused insider attempt (see the module docs)."""

    __tablename__ = "refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    #: The login that tried (null when the request had none).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: The login's community; for a resident's login, the community of their household.
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    #: The refusal's code: ``self_approval``, ``self_dealing``, ``same_signer``, ``person_required``.
    code: Mapped[str] = mapped_column(String(64), index=True)
    method: Mapped[str] = mapped_column(String(8))
    #: The request's path: ``/api/v1/claims/12/approve`` or the page's ``/committee/claims/12/approve``.
    path: Mapped[str] = mapped_column(String(200))
    #: The refusal's words (for the committee reading the record).
    detail: Mapped[str] = mapped_column(String(500))
    address: Mapped[str | None] = mapped_column(String(64))


def _community_of(user) -> int | None:
    if user is None:
        return None
    if getattr(user, "community_id", None) is not None:
        return user.community_id
    resident = getattr(user, "resident", None)
    household = getattr(resident, "household", None) if resident is not None else None
    return getattr(household, "community_id", None)


def note(exc: DomainError) -> None:
    """Keep an insider refusal of this write request, to be written once the request has ended."""
    if exc.code not in INSIDER_CODES or not has_request_context() or request.method in SAFE_METHODS:
        return
    user = g.get("_login_user")  # Flask-Login's user of this request, if it was loaded (never load it here)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    try:
        community_id = _community_of(user)
    except Exception:  # noqa: BLE001 - a detached or broken session: the community is not essential
        community_id = getattr(user, "community_id", None)
    noted = g.setdefault(_NOTED, [])
    noted.append({
        "user_id": getattr(user, "id", None), "community_id": community_id, "code": exc.code,
        "method": request.method[:8], "path": request.path[:200], "detail": str(exc.detail or "")[:500],
        "address": (request.remote_addr or "")[:64] or None,
    })


def write_noted(response):
    """``after_request``: write the noted refusals in a transaction of their own. The request's work has
    been committed or rolled back by now (:mod:`timebank.core.boundary`), so nothing of it goes with them."""
    noted = g.pop(_NOTED, None)
    if not noted:
        return response
    try:
        db.session.rollback()  # nothing is pending here; make sure of it
        moment = utc_naive()
        for entry in noted:
            db.session.add(Refusal(created_at=moment, **entry))
        db.session.commit()
    except Exception:  # noqa: BLE001 - the refusal stands; only its record is lost
        log.exception("could not record %d refused insider attempt(s)", len(noted))
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the connection may be gone
            pass
    return response


def init_app(app) -> None:
    if note not in ON_INSIDER_REFUSAL:
        ON_INSIDER_REFUSAL.append(note)
    app.after_request(write_noted)
