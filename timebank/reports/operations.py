"""Reports and exports (台账): the ledger export, the monthly report, and the public notice board (公示栏).

Every figure is computed from the ledger's postings (and, for donations, the stock log); nothing is
cached, so a report always agrees with ``timebank verify``. Definitions: docs/reports.md.

* ledger export: one row per *posting*, transactions in ledger (id) order; the postings of one
  transaction share its id and sum to zero per unit. CSV is streamed in batches, UTF-8 with a BOM
  so that spreadsheet programs in China show Chinese correctly; XLSX is built with openpyxl.
* monthly report: month boundaries in the deployment's time zone (``TIMEBANK_TIMEZONE``),
  converted to naive UTC for the queries.
* public board: masked names (:func:`mask_name`), claims on the notice board, the month's ranking,
  donors thanked, the latest signed checkpoint. No login; nothing on it names a person in full
  except donors, who are thanked publicly by design.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select

from ledger import balance as ledger_balance
from ledger.models import Account, Posting, Transaction
from timebank.audit import checkpoints
from timebank.core import accounts
from timebank.core.clock import current_month, month_bounds, parse_month, to_local, utc_naive
from timebank.core.database import reading
from timebank.core.errors import ValidationFailed
from timebank.core.exports import append_row, csv_writer
from timebank.core.extensions import db
from timebank.core.jobs import job
from timebank.earning import deductions as deduction_ops
from timebank.earning.honours import HOLDING
from timebank.earning.models import (
    Claim,
    ClaimReversal,
    Deduction,
    DeductionItem,
    Honour,
    HonourAward,
    RuleVersion,
)
from timebank.people.models import Community, Household, Resident
from timebank.reports.models import MonthTotals
from timebank.shop.models import Item, Redemption, StockMovement

#: How many households the monthly report and the public board rank.
RANKING_SIZE = 10
#: The public board thanks donors of the last this many days.
DONOR_DAYS = 30


# --- names on the board ---------------------------------------------------------------------------

#: Two-character surnames (复姓): the whole surname stays visible.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 独孤 南宫 西门 端木 "
    "呼延 万俟 闻人 澹台 公冶 太史 申屠 濮阳 淳于 单于 拓跋 百里 东郭 北堂".split())


def mask_name(name: str | None) -> str:
    """A name as the public board shows it: 张三丰 -> 张*丰, 张三 -> 张*, 张 -> 张, 欧阳小明 -> 欧阳*明.

    Three or more characters keep the first and the last; two keep the first; one is kept as is.
    A compound surname (欧阳, 司马, ...) is kept whole and the given name masked the same way.
    """
    name = (name or "").strip()
    if len(name) <= 1:
        return name
    surname = name[:2] if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES else name[:1]
    given = name[len(surname):]
    if len(given) == 1:
        return surname + "*"
    return surname + "*" * (len(given) - 1) + given[-1]


# --- the monthly report ---------------------------------------------------------------------------

def _issuance_points_codes(community_id: int) -> list[str]:
    return [accounts.issuance_points(community_id, c) for c in accounts.CATEGORIES]


def _not_an_index(column):
    """``column + 0``: the same value (NULL stays NULL), but no index can serve it. The report's
    queries start from the period's transactions (the index on ``created_at``) and reach the accounts
    from there; given an indexed ``community_id`` or ``resident_id``, SQLite's planner would rather
    start from the accounts and read every posting they ever had (2.4 s for an empty month at 100k
    transactions instead of a few milliseconds)."""
    return column + 0


def _window(lo: datetime | None, hi: datetime | None):
    """The transactions with ``lo <= created_at < hi`` (either bound open) as a materialized CTE of
    ``(id, kind)``: read through the index on ``created_at`` first, then joined to their postings.
    Written as one join, SQLite's planner (which keeps no statistics here) would rather scan every
    posting of the ledger and look up each one's transaction."""
    query = select(Transaction.id, Transaction.kind)
    if lo is not None:
        query = query.where(Transaction.created_at >= lo)
    if hi is not None:
        query = query.where(Transaction.created_at < hi)
    return query.cte("period").prefix_with("MATERIALIZED")


def _issuance_points_ids(community_id: int) -> list[int]:
    return list(db.session.execute(
        select(Account.id).where(Account.code.in_(_issuance_points_codes(community_id)))).scalars())


def earned_by_household(community_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Net points each household earned in ``[start, end)``: what its wallet received in transactions
    that draw on the community's points issuance accounts (claims and grants), less reversals of them.
    Read from the period's transactions only, in the same pass as the monthly report's flows
    (:func:`_month_flows`)."""
    return _month_flows(community_id, start, end)[1]


def deducted_by_household(community_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Points of the deductions (扣分) applied to each household in ``[start, end)``, in full: what its
    wallet lost and what counted against its ranking score only."""
    rows = db.session.execute(
        select(Deduction.household_id, func.sum(-Deduction.points))
        .where(Deduction.community_id == community_id, Deduction.status == "applied",
               Deduction.applied_at >= start, Deduction.applied_at < end)
        .group_by(Deduction.household_id)).all()
    return {hid: int(points) for hid, points in rows}


def ranking_scores(community_id: int, start: datetime, end: datetime,
                   earned: dict[int, int] | None = None) -> dict[int, int]:
    """The ranking score (积分榜) of each household in ``[start, end)`` that has one: points earned
    (:func:`earned_by_household`) less its deductions in full (:func:`deducted_by_household`). Kept
    apart from the spendable balance: spending does not lower it, and the part of a deduction the
    wallet could not cover lowers it all the same."""
    if earned is None:
        earned = earned_by_household(community_id, start, end)
    scores = dict(earned)
    for hid, points in deducted_by_household(community_id, start, end).items():
        scores[hid] = scores.get(hid, 0) - points
    return {hid: score for hid, score in scores.items() if score != 0}


def ranking(community_id: int, start: datetime, end: datetime, size: int = RANKING_SIZE,
            masked: bool = False, earned: dict[int, int] | None = None, leave_out=()) -> list[dict]:
    """Households by ranking score in the period (:func:`ranking_scores`), most first (ties: the
    household made first); only positive scores. ``earned``: :func:`earned_by_household` of the same
    period, when the caller has it already; ``leave_out``: household ids not to list (the red list
    leaves out those with a deduction in the month)."""
    scores = ranking_scores(community_id, start, end, earned)
    ordered = sorted(((points, hid) for hid, points in scores.items() if points > 0 and hid not in leave_out),
                     key=lambda p: (-p[0], p[1]))
    top = ordered[:size]
    names = _household_names([hid for _, hid in top])
    out = []
    rank = 0
    previous = None
    for position, (points, hid) in enumerate(top, start=1):
        if points != previous:
            rank = position
            previous = points
        name = names.get(hid, "")
        entry = {"rank": rank, "household_name": mask_name(name) if masked else name, "points": points}
        if not masked:
            entry["household_id"] = hid
        out.append(entry)
    return out


def _household_names(ids) -> dict[int, str]:
    ids = list(ids)
    if not ids:
        return {}
    return dict(db.session.execute(select(Household.id, Household.name).where(Household.id.in_(ids))).all())


def black_list(community_id: int, start: datetime, end: datetime, masked: bool = False,
               earned: dict[int, int] | None = None) -> list[dict]:
    """The black list (黑榜): households with deductions applied in ``[start, end)``, most points
    deducted first (ties: the household made first), with the items and their ranking score."""
    rows = db.session.execute(
        select(Deduction.household_id, DeductionItem.title, -Deduction.points)
        .join(DeductionItem, DeductionItem.id == Deduction.item_id)
        .where(Deduction.community_id == community_id, Deduction.status == "applied",
               Deduction.applied_at >= start, Deduction.applied_at < end)
        .order_by(Deduction.applied_at, Deduction.id)).all()
    if not rows:
        return []
    deducted: dict[int, int] = {}
    items: dict[int, list[str]] = {}
    for hid, title, points in rows:
        deducted[hid] = deducted.get(hid, 0) + int(points)
        if title not in items.setdefault(hid, []):
            items[hid].append(title)
    scores = ranking_scores(community_id, start, end, earned)
    names = _household_names(deducted)
    out = []
    for hid in sorted(deducted, key=lambda h: (-deducted[h], h)):
        name = names.get(hid, "")
        entry = {"household_name": mask_name(name) if masked else name, "deducted_points": deducted[hid],
                 "items": items[hid], "ranking_score": scores.get(hid, 0)}
        if not masked:
            entry["household_id"] = hid
        out.append(entry)
    return out


def household_standing(household: Household, month: str) -> dict:
    """A household's spendable balance and, apart from it, its ranking score of ``month``: points
    earned less deductions (those the wallet could not cover included)."""
    parse_month(month)
    start, end = month_bounds(month)
    earned = earned_by_household(household.community_id, start, end).get(household.id, 0)
    deducted = deducted_by_household(household.community_id, start, end).get(household.id, 0)
    return {"household_id": household.id, "month": month,
            "balance_points": ledger_balance(db.session, accounts.household_points(household.id)),
            "earned_points": earned, "deducted_points": deducted, "ranking_score": earned - deducted}


def donations(community_id: int, start: datetime, end: datetime) -> list[dict]:
    """Donations received in ``[start, end)`` by donor: items and quantities (from the stock log)."""
    m = StockMovement
    rows = db.session.execute(
        select(m.donor, m.donor_kind, Item.id, Item.name, func.sum(m.quantity), func.max(m.created_at))
        .join(Item, Item.id == m.item_id)
        .where(m.community_id == community_id, m.reason == "donation", m.created_at >= start, m.created_at < end)
        .group_by(m.donor, m.donor_kind, Item.id, Item.name)
        .order_by(m.donor, Item.id)
    ).all()
    by_donor: dict[str, dict] = {}
    for donor, kind, item_id, name, units, last in rows:
        entry = by_donor.setdefault(donor, {"donor": donor, "donor_kind": kind, "units": 0, "items": [],
                                            "last_donation_at": last})
        entry["units"] += int(units)
        entry["items"].append({"item_id": item_id, "name": name, "quantity": int(units)})
        entry["last_donation_at"] = max(entry["last_donation_at"], last)
    return sorted(by_donor.values(), key=lambda d: (-d["units"], d["donor"]))


#: What the monthly report's balances add up: the households' points, the residents' minutes.
_HOUSEHOLDS, _RESIDENTS, _POOL = "households", "residents", "pool"
_GROUPS = (_HOUSEHOLDS, _RESIDENTS, _POOL)
#: Which anchor :func:`_balances_at` starts from: ``None`` chooses the nearest; the tests force
#: each one (``start``, ``now``, ``before``, ``after``) to check that they agree.
_CHEAPER_SIDE: str | None = None


def _month_flows(cid: int, start: datetime, end: datetime) -> tuple[dict[str, dict[str, tuple[int, int]]],
                                                                    dict[int, int]]:
    """One pass over the month's transactions: account code -> transaction kind -> (credits, debits)
    of the community's accounts in ``[start, end)``, and what each household earned (its wallet's net
    in transactions that draw on an issuance account: :func:`earned_by_household`)."""
    owner = accounts.AccountOwner
    issuance_ids = _issuance_points_ids(cid) or [-1]
    query = select(Transaction.id, Transaction.kind)
    query = query.where(Transaction.created_at >= start, Transaction.created_at < end)
    issuing = select(Posting.id).where(Posting.transaction_id == Transaction.id,
                                       Posting.account_id.in_(issuance_ids)).exists()
    period = query.add_columns(case((issuing, 1), else_=0).label("issuing")).cte("period").prefix_with(
        "MATERIALIZED")
    rows = db.session.execute(
        select(Posting.account_id, period.c.kind, period.c.issuing, owner.household_id, owner.resident_id,
               func.coalesce(func.sum(case((Posting.amount > 0, Posting.amount), else_=0)), 0),
               func.coalesce(func.sum(case((Posting.amount < 0, -Posting.amount), else_=0)), 0))
        .select_from(period)
        .join(Posting, Posting.transaction_id == period.c.id)
        .join(owner, owner.account_id == Posting.account_id)
        .where(_not_an_index(owner.community_id) == cid)
        .group_by(Posting.account_id, period.c.kind, period.c.issuing, owner.household_id, owner.resident_id)
    ).all()
    ids = {account_id for account_id, *_ in rows}
    codes = {i: (code, unit) for i, code, unit in db.session.execute(
        select(Account.id, Account.code, Account.unit).where(Account.id.in_(ids))).all()} if ids else {}
    flows: dict[str, dict[str, tuple[int, int]]] = {}
    earned: dict[int, int] = {}
    for account_id, kind, issuing, household_id, resident_id, credit, debit in rows:
        code, unit = codes[account_id]
        was = flows.setdefault(code, {}).get(kind, (0, 0))
        flows[code][kind] = (was[0] + int(credit), was[1] + int(debit))
        if issuing and household_id is not None and resident_id is None and unit == accounts.POINTS:
            earned[household_id] = earned.get(household_id, 0) + int(credit) - int(debit)
    return flows, {h: v for h, v in earned.items() if v != 0}


def _group_of_account():
    """Which of the report's balances an account (joined with its owner row) adds to."""
    owner = accounts.AccountOwner
    pools = select(Account.id).where(Account.code.like("community:%:pool:minutes"))
    return case(
        (and_(owner.household_id.isnot(None), owner.resident_id.is_(None), Account.unit == accounts.POINTS),
         _HOUSEHOLDS),
        (and_(owner.resident_id.isnot(None), Account.unit == accounts.MINUTES), _RESIDENTS),
        (Account.id.in_(pools), _POOL),
        else_="other")


def _group_totals(lo: datetime | None, hi: datetime | None, cid: int | None = None) -> dict[tuple[int, str], int]:
    """(community id, group) -> sum of the postings of transactions with ``lo <= created_at < hi``
    (either bound may be open) on the households' points, the residents' minutes and the pools."""
    owner = accounts.AccountOwner
    group = _group_of_account()
    period = _window(lo, hi)
    query = (select(owner.community_id, group, func.coalesce(func.sum(Posting.amount), 0))
             .select_from(period)
             .join(Posting, Posting.transaction_id == period.c.id)
             .join(Account, Account.id == Posting.account_id)
             .join(owner, owner.account_id == Account.id)
             .group_by(owner.community_id, group))
    if cid is not None:
        query = query.where(_not_an_index(owner.community_id) == cid)
    return {(community, name): int(total) for community, name, total in db.session.execute(query).all()}


def _current_totals(cid: int) -> dict[str, int]:
    """Today's balances of the groups: the accounts' cached balances (kept by the ledger's trigger)."""
    owner = accounts.AccountOwner
    group = _group_of_account()
    rows = db.session.execute(
        select(group, func.coalesce(func.sum(Account.balance), 0))
        .select_from(Account).join(owner, owner.account_id == Account.id)
        .where(owner.community_id == cid).group_by(group)).all()
    return {name: int(value) for name, value in rows}


def _pick(totals: dict[tuple[int, str], int], cid: int) -> dict[str, int]:
    return {name: totals.get((cid, name), 0) for name in _GROUPS}


def _balances_at(cid: int, end: datetime) -> dict[str, int]:
    """The households' points, the residents' minutes and the pool's minutes at ``end``.

    Read from the nearest anchor in time, plus or minus what was posted between it and ``end``:

    * ``start``: nothing before the first transaction;
    * ``now``: today's balances (each account's cached balance, checked by ``verify``);
    * ``before`` / ``after``: the stored totals at the end of an ended month (:class:`MonthTotals`,
      kept by the ``month_totals`` job), the latest one not after ``end`` and the first not before.

    Every window filters on ``created_at``, so the figures are exact whatever order the rows were
    written in; the report of any month reads about one month of transactions once the job has run
    (docs/performance.md has the figures)."""
    # Two queries: each is one step down the index on created_at (together they would scan it).
    first = db.session.execute(select(func.min(Transaction.created_at))).scalar_one()
    last = db.session.execute(select(func.max(Transaction.created_at))).scalar_one()
    if first is None:
        return dict.fromkeys(_GROUPS, 0)
    before = db.session.execute(
        select(MonthTotals).where(MonthTotals.community_id == cid, MonthTotals.ends_at <= end)
        .order_by(MonthTotals.ends_at.desc()).limit(1)).scalar_one_or_none()
    after = db.session.execute(
        select(MonthTotals).where(MonthTotals.community_id == cid, MonthTotals.ends_at >= end)
        .order_by(MonthTotals.ends_at).limit(1)).scalar_one_or_none()
    distance = {"start": max(end - first, timedelta(0)), "now": max(last - end, timedelta(0))}
    if before is not None:
        distance["before"] = end - before.ends_at
    if after is not None:
        distance["after"] = after.ends_at - end
    anchor = _CHEAPER_SIDE if _CHEAPER_SIDE in distance else min(distance, key=lambda k: (distance[k], k))
    if anchor == "start":
        return _pick(_group_totals(None, end, cid), cid)
    if anchor == "now":
        current = _current_totals(cid)
        later = _pick(_group_totals(end, None, cid), cid)
        return {name: current.get(name, 0) - later[name] for name in _GROUPS}
    stored = before if anchor == "before" else after
    base = {_HOUSEHOLDS: stored.households_points, _RESIDENTS: stored.residents_minutes, _POOL: stored.pool_minutes}
    if anchor == "before":
        between = _pick(_group_totals(stored.ends_at, end, cid), cid)
        return {name: base[name] + between[name] for name in _GROUPS}
    between = _pick(_group_totals(end, stored.ends_at, cid), cid)
    return {name: base[name] - between[name] for name in _GROUPS}


def _ended_months(first: datetime, moment: datetime) -> list[str]:
    """Every month from the one holding ``first`` to the last that ended an hour or more before
    ``moment`` (a write stamped just before midnight may still be committing at midnight)."""
    month = to_local(first).strftime("%Y-%m")
    months = []
    while True:
        _, end = month_bounds(month)
        if end > moment - timedelta(hours=1):
            return months
        months.append(month)
        year, number = parse_month(month)
        month = f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def keep_month_totals(moment: datetime | None = None) -> int:
    """Store every community's totals at the end of every ended month that has none yet: each from
    the previous month's totals and that month's transactions (one pass over the history the first
    time, one month a month after). Returns how many were stored."""
    moment = moment or utc_naive()
    first = db.session.execute(select(func.min(Transaction.created_at))).scalar_one()
    if first is None:
        return 0
    communities = list(db.session.execute(select(Community.id)).scalars())
    stored = {(c, m): (e, h, r, p) for c, m, e, h, r, p in db.session.execute(
        select(MonthTotals.community_id, MonthTotals.month, MonthTotals.ends_at, MonthTotals.households_points,
               MonthTotals.residents_minutes, MonthTotals.pool_minutes))}
    running: dict[int, dict[str, int]] = {c: dict.fromkeys(_GROUPS, 0) for c in communities}
    previous_end = None
    made = 0
    for month in _ended_months(first, moment):
        _, end = month_bounds(month)
        if all((c, month) in stored for c in communities):
            for c in communities:
                _, h, r, p = stored[(c, month)]
                running[c] = {_HOUSEHOLDS: h, _RESIDENTS: r, _POOL: p}
            previous_end = end
            continue
        flows = _group_totals(previous_end, end)
        for c in communities:
            running[c] = {name: running[c][name] + flows.get((c, name), 0) for name in _GROUPS}
            if (c, month) not in stored:
                db.session.add(MonthTotals(community_id=c, month=month, ends_at=end,
                                           households_points=running[c][_HOUSEHOLDS],
                                           residents_minutes=running[c][_RESIDENTS],
                                           pool_minutes=running[c][_POOL], computed_at=utc_naive()))
                made += 1
        previous_end = end
    db.session.flush()
    return made


@job("month_totals", "Store each community's totals at the end of every ended month (the monthly report "
     "starts from them).", trigger="cron", hour=1, minute=10)
def month_totals_job():
    return {"stored": keep_month_totals()}


def verify_month_totals(result: dict) -> None:
    """A ``timebank verify`` hook: every stored month's totals against the ledger, in one pass."""
    rows = list(db.session.execute(select(MonthTotals).order_by(MonthTotals.ends_at, MonthTotals.community_id))
                .scalars())
    running: dict[tuple[int, str], int] = {}
    previous_end = None
    bad = 0
    for ends_at in sorted({r.ends_at for r in rows}):
        for key, value in _group_totals(previous_end, ends_at).items():
            running[key] = running.get(key, 0) + value
        previous_end = ends_at
        for r in (r for r in rows if r.ends_at == ends_at):
            got = (r.households_points, r.residents_minutes, r.pool_minutes)
            want = tuple(running.get((r.community_id, name), 0) for name in _GROUPS)
            if got != want:
                bad += 1
                result["problems"].append({"transaction_id": None, "problem": (
                    f"stored month-end totals of community {r.community_id} for {r.month} are {got} "
                    f"(points, minutes, pool) but the ledger gives {want}")})
    result.setdefault("notes", []).append(f"month-end totals: {len(rows)} checked, "
                                          f"{'ok' if not bad else f'{bad} PROBLEMS'}")


def monthly_report(community: Community, month: str) -> dict:
    """The month's figures for one community (definitions in docs/reports.md), read on the read
    replica when the deployment has one (``TIMEBANK_READ_DATABASE_URL``).

    Its cost follows the month's transactions and the community's accounts, not the ledger's
    history (:func:`_month_flows`, :func:`_balances_at`); docs/performance.md has the figures."""
    with reading(replica=True):
        return _monthly_report(community, month)


def _monthly_report(community: Community, month: str) -> dict:
    parse_month(month)
    start, end = month_bounds(month)
    cid = community.id
    flows, earned = _month_flows(cid, start, end)
    at_end = _balances_at(cid, end)

    def credit(code, kinds=None):
        return sum(v[0] for k, v in flows.get(code, {}).items() if kinds is None or k in kinds)

    def debit(code, kinds=None):
        return sum(v[1] for k, v in flows.get(code, {}).items() if kinds is None or k in kinds)

    issued = {cat: debit(accounts.issuance_points(cid, cat)) - credit(accounts.issuance_points(cid, cat))
              for cat in accounts.CATEGORIES}
    shop = accounts.supermarket_points(cid)
    expired = accounts.expired_points(cid)
    residents = [c for c in flows if c.startswith("resident:") and c.endswith(":minutes")]
    households = [c for c in flows if c.startswith("household:") and c.endswith(":points")]
    pool = accounts.pool_minutes(cid)

    earning_households = sum(1 for v in earned.values() if v > 0)
    total_households = db.session.execute(
        select(func.count()).select_from(Household)
        .where(Household.community_id == cid, Household.created_at < end)).scalar_one()

    receipts = db.session.execute(
        select(func.count()).select_from(Redemption)
        .where(Redemption.community_id == cid, Redemption.created_at >= start, Redemption.created_at < end)
    ).scalar_one()
    # Claims posted in the month, also those taken back later (a month's figures do not change
    # afterwards); the reversals are counted in the month they were made.
    claims_posted = db.session.execute(
        select(func.count()).select_from(Claim)
        .where(Claim.community_id == cid, Claim.status == "posted", Claim.posted_at >= start, Claim.posted_at < end)
    ).scalar_one()
    claims_reversed = db.session.execute(
        select(func.count()).select_from(ClaimReversal).join(Claim, Claim.id == ClaimReversal.claim_id)
        .where(Claim.community_id == cid, ClaimReversal.created_at >= start, ClaimReversal.created_at < end)
    ).scalar_one()

    redeemed = credit(shop)
    returned_by_void = debit(shop, ("void", "reversal"))
    returned_by_return = debit(shop, ("return",))
    voided = debit(shop)
    return {
        "community_code": community.code,
        "community_name": community.name,
        "month": month,
        "period": {"start": to_local(start).isoformat(), "end": to_local(end).isoformat()},
        "points": {
            "issued_by_category": issued,
            "issued_total": sum(issued.values()),
            "redeemed": redeemed,
            "voided": voided,
            "voided_by_void": returned_by_void,
            "voided_by_return": returned_by_return,
            "redeemed_net": redeemed - voided,
            "expired": credit(expired) - debit(expired),
            "reversed": sum(debit(c, ("claim_reversal",)) - credit(c, ("claim_reversal",)) for c in households),
            "deducted": credit(accounts.deducted_points(cid)) - debit(accounts.deducted_points(cid)),
            "outstanding": at_end[_HOUSEHOLDS],
        },
        "hours": {
            "deposited_minutes": sum(credit(c) for c in residents),
            "withdrawn_minutes": sum(debit(c) for c in residents),
            "help_minutes": sum(credit(c, ("help",)) for c in residents) + credit(pool, ("help",)),
            "pool_balance_minutes": at_end[_POOL],
            "outstanding_minutes": at_end[_RESIDENTS],
        },
        "participation": {
            "households_earning": earning_households,
            "households_total": int(total_households),
            "rate": round(earning_households / total_households, 4) if total_households else 0.0,
        },
        "activity": {"claims_posted": int(claims_posted), "claims_reversed": int(claims_reversed),
                     "receipts": int(receipts)},
        "top_households": ranking(cid, start, end, earned=earned),
        "donations": [dict(d, last_donation_at=to_local(d["last_donation_at"]).isoformat()) for d in
                      donations(cid, start, end)],
    }


def _summary_rows(report: dict) -> list[tuple]:
    rows = [("community", report["community_code"]), ("community_name", report["community_name"]),
            ("month", report["month"]), ("period_start", report["period"]["start"]),
            ("period_end", report["period"]["end"])]
    points = report["points"]
    for cat, value in points["issued_by_category"].items():
        rows.append((f"points.issued.{cat}", value))
    for key in ("issued_total", "redeemed", "voided", "voided_by_void", "voided_by_return", "redeemed_net",
                "expired", "reversed", "deducted", "outstanding"):
        rows.append((f"points.{key}", points[key]))
    for key, value in report["hours"].items():
        rows.append((f"hours.{key}", value))
    for key, value in report["participation"].items():
        rows.append((f"participation.{key}", value))
    for key, value in report["activity"].items():
        rows.append((f"activity.{key}", value))
    return rows


def monthly_report_csv(report: dict) -> str:
    """CSV (without the BOM): ``section,name,value,detail`` rows for figures, ranking and donations."""
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(("section", "name", "value", "detail"))
    for name, value in _summary_rows(report):
        writer.writerow(("figure", name, value, ""))
    for entry in report["top_households"]:
        writer.writerow(("ranking", entry["household_name"], entry["points"], f"rank {entry['rank']}"))
    for donor in report["donations"]:
        for item in donor["items"]:
            writer.writerow(("donation", donor["donor"], item["quantity"], item["name"]))
    return buffer.getvalue()


def monthly_report_rows(report: dict) -> int:
    """How many data rows the CSV and the XLSX of ``report`` hold (headers not counted)."""
    return (len(list(_summary_rows(report))) + len(report["top_households"])
            + sum(len(d["items"]) for d in report["donations"]))


def monthly_report_xlsx(report: dict) -> bytes:
    """XLSX: sheets ``figures``, ``ranking`` and ``donations``."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "figures"
    append_row(sheet, ["name", "value"])
    for row in _summary_rows(report):
        append_row(sheet, list(row))
    sheet = workbook.create_sheet("ranking")
    append_row(sheet, ["rank", "household_id", "household_name", "points"])
    for e in report["top_households"]:
        append_row(sheet, [e["rank"], e["household_id"], e["household_name"], e["points"]])
    sheet = workbook.create_sheet("donations")
    append_row(sheet, ["donor", "donor_kind", "item", "quantity"])
    for d in report["donations"]:
        for item in d["items"]:
            append_row(sheet, [d["donor"], d["donor_kind"], item["name"], item["quantity"]])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --- the public notice board (公示栏) ---------------------------------------------------------------

def publicity(community_id: int) -> list[dict]:
    """Claims on the notice board now (publicized, publicity not yet over), ending soonest first."""
    moment = utc_naive()
    rows = db.session.execute(
        select(Claim, RuleVersion.title, RuleVersion.category, Resident.name, Household.name)
        .join(RuleVersion, RuleVersion.id == Claim.rule_version_id)
        .join(Resident, Resident.id == Claim.resident_id)
        .join(Household, Household.id == Claim.household_id)
        .where(Claim.community_id == community_id, Claim.status == "publicized",
               Claim.publicity_ends_at > moment)
        .order_by(Claim.publicity_ends_at, Claim.id)
    ).all()
    return [{"claim_id": claim.id, "resident_name": mask_name(resident), "household_name": mask_name(household),
             "rule_title": title, "category": category, "points": claim.points, "minutes": claim.minutes,
             "publicity_ends_at": claim.publicity_ends_at}
            for claim, title, category, resident, household in rows]


def honours_publicity(community_id: int) -> list[dict]:
    """Honour awards on the notice board now (masked household names), ending soonest first."""
    rows = db.session.execute(
        select(HonourAward, Honour.title, Household.name)
        .join(Honour, Honour.id == HonourAward.honour_id).join(Household, Household.id == HonourAward.household_id)
        .where(HonourAward.community_id == community_id, HonourAward.status == "publicized",
               HonourAward.publicity_ends_at > utc_naive())
        .order_by(HonourAward.publicity_ends_at, HonourAward.id)).all()
    return [{"award_id": award.id, "household_name": mask_name(name), "honour_title": title, "points": award.points,
             "publicity_ends_at": award.publicity_ends_at} for award, title, name in rows]


def honours_held(community_id: int) -> list[dict]:
    """Honours held now (masked household names), by honour and then the earliest held; an award under
    its half-yearly review is still held and says so."""
    rows = db.session.execute(
        select(HonourAward, Honour.title, Household.name)
        .join(Honour, Honour.id == HonourAward.honour_id).join(Household, Household.id == HonourAward.household_id)
        .where(HonourAward.community_id == community_id, HonourAward.status.in_(HOLDING))
        .order_by(Honour.id, HonourAward.held_from, HonourAward.id)).all()
    return [{"household_name": mask_name(name), "honour_title": title, "held_from": award.held_from,
             "held_until": award.held_until, "under_review": award.status == "under_review"}
            for award, title, name in rows]


def deductions_publicity(community_id: int) -> list[dict]:
    """Deductions on the notice board now (masked household names), ending soonest first."""
    rows = db.session.execute(
        select(Deduction, DeductionItem.title, Household.name)
        .join(DeductionItem, DeductionItem.id == Deduction.item_id)
        .join(Household, Household.id == Deduction.household_id)
        .where(Deduction.community_id == community_id, Deduction.status == "publicized",
               Deduction.publicity_ends_at > utc_naive())
        .order_by(Deduction.publicity_ends_at, Deduction.id)).all()
    return [{"deduction_id": d.id, "household_name": mask_name(name), "item_title": title, "points": d.points,
             "publicity_ends_at": d.publicity_ends_at} for d, title, name in rows]


def public_board(community: Community) -> dict:
    """Everything the public board shows (the page and ``GET /api/v1/public/{code}``)."""
    month = current_month()
    start, end = month_bounds(month)
    moment = utc_naive()
    since = moment - timedelta(days=DONOR_DAYS)
    latest = checkpoints.latest_checkpoint()
    earned = earned_by_household(community.id, start, end)
    deducted = deducted_by_household(community.id, start, end)
    publish_black = deduction_ops.publishes_black_list(community.id)
    return {
        "community_code": community.code,
        "community_name": community.name,
        "generated_at": moment,
        "month": month,
        "publicity": publicity(community.id),
        # The red list (红榜): a household with a deduction this month is not on it.
        "ranking": ranking(community.id, start, end, masked=True, earned=earned, leave_out=set(deducted)),
        "black_list_published": publish_black,
        "black_list": black_list(community.id, start, end, masked=True, earned=earned) if publish_black else [],
        "honours": honours_held(community.id),
        "honours_publicity": honours_publicity(community.id),
        "deductions_publicity": deductions_publicity(community.id),
        "donors": [{"donor": d["donor"], "donor_kind": d["donor_kind"], "units": d["units"],
                    "items": [{"name": i["name"], "quantity": i["quantity"]} for i in d["items"]],
                    "last_donation_at": d["last_donation_at"]}
                   for d in donations(community.id, since, moment + timedelta(seconds=1))],
        "donors_since": since,
        "checkpoint": None if latest is None else {
            "tree_size": latest.tree_size, "root_hash": latest.root_hash, "timestamp": latest.created_at,
            "key_id": latest.key_id},
    }


def parse_window(since: datetime | None, until: datetime | None, default_days: int = 30) -> tuple[datetime, datetime]:
    """``[since, until)`` as naive UTC; by default the last ``default_days`` days up to now."""
    end = utc_naive(until) if until is not None else utc_naive() + timedelta(seconds=1)
    start = utc_naive(since) if since is not None else end - timedelta(days=default_days)
    if start >= end:
        raise ValidationFailed(errors={"until": ["Must be after since."]})
    return start, end

