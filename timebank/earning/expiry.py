"""Points expiry (积分清零), per community policy (``communities.expiry_policy``):

* ``none``: points never expire.
* ``annual``: points granted before 1 January (local time) expire when the year turns (31 December).
* ``rolling``: a grant expires ``expiry_months`` after it was made.

Spending is counted against the oldest grants first, so what expires is what is left of grants older
than the cut-off: ``max(0, credits before the cut-off - everything taken out since the start)``. A
refund (a reversal crediting the wallet) counts as taking back a debit, not as a new grant; a
reversal debiting the wallet (a claim taken back) cancels its credit rather than spending points.

Expiry is always a ledger transaction from the household's wallet into the community's expired
account (:func:`timebank.core.accounts.expired_points`), never a deletion. The cut-off depends only on the
local date, and the idempotency key names household, period and the wallet's latest transaction, so
running the job twice expires once.

Households are warned before (:func:`warn_expiring`, the daily job ``warn_expiring_points``): when
points of theirs expire within :data:`WARN_DAYS` days, each member gets a notice saying how many and
by when, once per year under ``annual`` and at most once in :data:`WARN_DAYS` days under ``rolling``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased

import ledger
from ledger.models import Account, Posting, Transaction
from timebank.core import accounts, ledgering
from timebank.core.clock import local_today, local_zone, utc_naive
from timebank.core.extensions import db
from timebank.core.jobs import JobRun
from timebank.notices.operations import notify_household, told_since
from timebank.people.models import Community, Household

#: Households are told this many days before their points expire.
WARN_DAYS = 30


def _months_back(day: date, months: int) -> date:
    month_index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(month_index, 12)
    month += 1
    # The same day of the month, or the month's last day when it is shorter.
    for candidate in range(day.day, 27, -1):
        try:
            return date(year, month, candidate)
        except ValueError:
            continue
    return date(year, month, min(day.day, 28))


def cutoff(community: Community, today: date) -> tuple[datetime, str] | None:
    """Grants made before the returned moment (naive UTC) expire; the string names the period."""
    zone = local_zone()
    if community.expiry_policy == "annual":
        start = date(today.year, 1, 1)
        return utc_naive(datetime.combine(start, time(), zone)), f"annual:{today.year - 1}"
    if community.expiry_policy == "rolling" and community.expiry_months:
        start = _months_back(today, community.expiry_months)
        return utc_naive(datetime.combine(start, time(), zone)), f"rolling:{today.isoformat()}"
    return None


def expiring_amount(account_code: str, before: datetime) -> int:
    """What is left of grants into ``account_code`` made before ``before``, spending oldest first.

    A reversal taking a credit back (a claim taken back, 撤销) is not spending: it cancels that credit,
    so it lowers the old credits when the credit was made before ``before`` and nothing otherwise."""
    original = aliased(Transaction)
    reversal = Transaction.reverses_id.isnot(None)
    row = db.session.execute(
        select(
            func.coalesce(func.sum(case(
                (and_(Posting.amount > 0, ~reversal, Transaction.created_at < before), Posting.amount),
                else_=0)), 0),
            func.coalesce(func.sum(case((and_(Posting.amount < 0, ~reversal), -Posting.amount), else_=0)), 0),
            func.coalesce(func.sum(case((and_(Posting.amount > 0, reversal), Posting.amount), else_=0)), 0),
            func.coalesce(func.sum(case(
                (and_(Posting.amount < 0, reversal, original.created_at < before), -Posting.amount),
                else_=0)), 0),
        )
        .select_from(Posting)
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .join(Account, Account.id == Posting.account_id)
        .outerjoin(original, original.id == Transaction.reverses_id)
        .where(Account.code == account_code)
    ).one()
    old_credits, debits, refunds, old_taken_back = (int(v) for v in row)
    return max(0, old_credits - old_taken_back - (debits - refunds))


def expire_points(today: date | None = None, run: JobRun | None = None) -> list[dict]:
    """Expire points in every community with a policy. Returns what was expired.

    Each household is one item of ``run`` (its own savepoint): a household whose expiry is refused
    (e.g. its community's month is closed) keeps its points, is listed in ``run.skipped``, and the
    others are expired; the next run tries it again."""
    today = today or local_today()
    run = run if run is not None else JobRun("expire_points")
    done = []
    communities = db.session.execute(
        select(Community).where(Community.expiry_policy != "none").order_by(Community.id)).scalars().all()
    for community in communities:
        limit = cutoff(community, today)
        if limit is None:
            continue
        before, period = limit
        households = db.session.execute(
            select(Household.id).where(Household.community_id == community.id).order_by(Household.id)
        ).scalars().all()
        for household_id in households:
            expired = None
            with run.item(f"household:{household_id}") as item:
                expired = _expire_household(community.id, household_id, before, period)
            if item.done and expired is not None:
                done.append(expired)
    return done


def _expire_household(community_id: int, household_id: int, before: datetime, period: str) -> dict | None:
    wallet = accounts.household_points(household_id)
    amount = min(expiring_amount(wallet, before), ledger.balance(db.session, wallet))
    if amount <= 0:
        return None
    # Named by household, period and the wallet's latest transaction: two runs over the same
    # state share the key (and post once); a later refund makes a new state and a new key.
    last = db.session.execute(
        select(func.max(Posting.transaction_id)).join(Account, Account.id == Posting.account_id)
        .where(Account.code == wallet)).scalar_one()
    tx = ledgering.post(
        community_id,
        [ledger.Leg(wallet, -amount), ledger.Leg(accounts.expired_points(community_id), amount)],
        kind="expiry", memo=f"points granted before {before.date().isoformat()} expire ({period})",
        actor="scheduler", reference=f"household:{household_id}",
        idempotency_key=f"expire:{household_id}:{period}:{last}")
    if tx.replayed:
        return None
    return {"household_id": household_id, "points": amount, "transaction_id": tx.id}


def warn_expiring(today: date | None = None, run: JobRun | None = None) -> list[dict]:
    """Tell every household whose points expire within :data:`WARN_DAYS` days: what would expire if
    the expiry ran on the last of those days, and the day to spend them by. Returns who was told.

    Once per household and period: under ``annual`` once a year (the notice's key names the year),
    under ``rolling`` not again within :data:`WARN_DAYS` days of the last warning. Each household is
    one item of ``run``."""
    today = today or local_today()
    run = run if run is not None else JobRun("warn_expiring_points")
    horizon = today + timedelta(days=WARN_DAYS)
    moment = utc_naive()
    told = []
    communities = db.session.execute(
        select(Community).where(Community.expiry_policy != "none").order_by(Community.id)).scalars().all()
    for community in communities:
        limit = cutoff(community, horizon)
        if limit is None:
            continue
        before, period = limit
        annual = community.expiry_policy == "annual"
        if annual and before <= moment:  # this year's expiry is behind us, the next one further away
            continue
        spend_by = date(horizon.year, 1, 1) - timedelta(days=1) if annual else horizon
        households = db.session.execute(
            select(Household.id).where(Household.community_id == community.id).order_by(Household.id)
        ).scalars().all()
        for household_id in households:
            found = None
            with run.item(f"household:{household_id}") as item:
                found = _warn_household(community.id, household_id, before, spend_by,
                                        f"points_expiring:{household_id}:{period if annual else today.isoformat()}",
                                        None if annual else moment - timedelta(days=WARN_DAYS))
            if item.done and found is not None:
                told.append(found)
    return told


def _warn_household(community_id: int, household_id: int, before: datetime, spend_by: date, key: str,
                    quiet_since: datetime | None) -> dict | None:
    if quiet_since is not None and told_since(household_id, "points_expiring", quiet_since):
        return None
    wallet = accounts.household_points(household_id)
    amount = min(expiring_amount(wallet, before), ledger.balance(db.session, wallet))
    if amount <= 0:
        return None
    written = notify_household(household_id, community_id, "points_expiring",
                               {"points": amount, "by": spend_by.isoformat()}, dedupe_key=key)
    if not written:
        return None
    return {"household_id": household_id, "points": amount, "by": spend_by.isoformat()}
