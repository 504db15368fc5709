"""The ledger browser's query, shared by the API, the committee pages and the exports.

A transaction belongs to a community (or a household, or a resident) when one of its postings
touches an account that :class:`timebank.core.accounts.AccountOwner` gives to it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select

from ledger.models import Posting, Transaction
from timebank.core.accounts import AccountOwner
from timebank.core.clock import utc_naive


def ledger_query(*, community_id: int | None = None, household_id: int | None = None,
                 resident_id: int | None = None, category: str | None = None, kind: str | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> Select:
    """Transactions matching every given filter; ``since`` inclusive, ``until`` exclusive."""
    query = select(Transaction)
    owners = select(AccountOwner.account_id)
    if community_id is not None:
        owners = owners.where(AccountOwner.community_id == community_id)
    if household_id is not None:
        owners = owners.where(AccountOwner.household_id == household_id, AccountOwner.resident_id.is_(None))
    if resident_id is not None:
        owners = owners.where(AccountOwner.resident_id == resident_id)
    if (community_id, household_id, resident_id) != (None, None, None):
        query = query.where(Transaction.id.in_(select(Posting.transaction_id).where(Posting.account_id.in_(owners))))
    if category:
        query = query.where(Transaction.category == category)
    if kind:
        query = query.where(Transaction.kind == kind)
    if since:
        query = query.where(Transaction.created_at >= utc_naive(since))
    if until:
        query = query.where(Transaction.created_at < utc_naive(until))
    return query
