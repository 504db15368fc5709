"""How the application writes to the ledger: with the deployment's clock, an actor, and the
application's guards (for example: nothing is posted into a closed month). :func:`configure` tells
the ledger the application's units and writer lock.

Features call :func:`post` and :func:`reverse` here rather than the ledger directly, and map the
ledger's exceptions to their own error codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import ledger
from timebank.core import accounts, database
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict
from timebank.core.extensions import db

#: Functions ``guard(community_id, moment)`` that raise a DomainError to refuse a posting.
POST_GUARDS: list[Callable] = []


def configure() -> None:
    """Tell the ledger its units (:data:`timebank.core.accounts.UNITS`) and how writers take turns
    on the application's connections (:func:`timebank.core.database.ledger_writer_lock`). The app
    factory calls it; it is the same for every app of the process."""
    ledger.configure(units=accounts.UNITS, writer_lock=database.ledger_writer_lock)


def closed_month(month: str) -> Conflict:
    """The refusal of a posting dated in a closed month (``YYYY-MM``): the month close's guard
    raises it, and so does the sale's server function on PostgreSQL (timebank.shop.refusals)."""
    return Conflict(f"The month {month} of this community is closed; nothing dated in it can be posted.",
                    code="month_closed")


def _check(community_id: int | None, moment) -> None:
    for guard in POST_GUARDS:
        guard(community_id, moment)


def post(community_id: int | None, legs: Iterable[ledger.Leg], *, kind: str, category: str | None = None,
         memo: str = "", actor: str | None = None, reference: str | None = None,
         idempotency_key: str | None = None, now=None) -> ledger.PostedTransaction:
    moment = utc_naive(now) if now is not None else utc_naive()
    _check(community_id, moment)
    return ledger.post(db.session, legs, kind=kind, category=category, memo=memo, actor=actor,
                       reference=reference, idempotency_key=idempotency_key, now=moment)


def post_many(community_id: int | None, requests: Iterable[ledger.Request], now=None) -> list[ledger.PostedTransaction]:
    """Many transactions of one community at once (:func:`ledger.post_many`), the guards asked once:
    they are all dated the same moment."""
    moment = utc_naive(now) if now is not None else utc_naive()
    _check(community_id, moment)
    return ledger.post_many(db.session, requests, now=moment)


def reverse(community_id: int | None, transaction_id: int, *, kind: str = "reversal", memo: str = "",
            actor: str | None = None, reference: str | None = None, idempotency_key: str | None = None,
            now=None) -> ledger.PostedTransaction:
    moment = utc_naive(now) if now is not None else utc_naive()
    _check(community_id, moment)
    return ledger.reverse(db.session, transaction_id, kind=kind, memo=memo, actor=actor, reference=reference,
                          idempotency_key=idempotency_key, now=moment)
