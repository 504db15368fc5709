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

def _issuance_points_codes(community_ids: list[int]) -> list[str]:
    return [accounts.issuance_points(cid, c) for cid in community_ids for c in accounts.CATEGORIES]


def _not_an_index(column):
    """``column + 0``: the same value (NULL stays NULL), but no index can serve it. The report's
    queries start from the period's transactions (the index on ``created_at``) and reach the accounts
    from there; given an indexed ``community_id`` or ``resident_id``, SQLite's planner would rather
    start from the accounts and read every posting they ever had (2.4 s for an empty month at 100k
    transactions instead of a few milliseconds). PostgreSQL keeps statistics and plans well from the
    column itself; there ``+ 0`` hid them (30 owners expected where there were 6,000) and it hashed
    every posting of the community's accounts (docs/performance.md), so the column stays as it is."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column
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


def _postings_of(period):
    """The join of a month's transactions to their postings. On PostgreSQL also bounded by the
    period's first and last transaction ids (the same rows: a transaction's id lies between those),
    so its planner reads the month's postings by the index on ``transaction_id`` instead of hashing
    every posting of the ledger (867 ms against 318 ms for a month at 650,000 transactions). Not for
    the open windows of :func:`_group_totals`: planned without the bounds' values, a long window
    there was slower with them."""
    joined = Posting.transaction_id == period.c.id
    if db.session.get_bind().dialect.name != "postgresql":
        return joined
    return and_(joined, Posting.transaction_id.between(select(func.min(period.c.id)).scalar_subquery(),
                                                       select(func.max(period.c.id)).scalar_subquery()))


def _issuance_points_ids(community_ids: list[int]) -> list[int]:
    return list(db.session.execute(
        select(Account.id).where(Account.code.in_(_issuance_points_codes(community_ids)))).scalars())


def earned_by_household(community_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Net points each household earned in ``[start, end)``: what its wallet received in transactions
    that draw on the community's points issuance accounts (claims and grants), less reversals of them.
    Read from the period's transactions only, in the same pass as the monthly report's flows
    (:func:`_month_flows`)."""
    return _month_flows([community_id], start, end)[1][community_id]


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


def donations(community_id: int | list[int], start: datetime, end: datetime) -> list[dict]:
    """Donations received in ``[start, end)`` by donor: items and quantities (from the stock log), in one
    community or in several (a sub-district's)."""
    ids = [community_id] if isinstance(community_id, int) else list(community_id)
    m = StockMovement
    rows = db.session.execute(
        select(m.donor, m.donor_kind, Item.id, Item.name, func.sum(m.quantity), func.max(m.created_at))
        .join(Item, Item.id == m.item_id)
        .where(m.community_id.in_(ids), m.reason == "donation", m.created_at >= start, m.created_at < end)
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


Flows = dict[str, dict[str, tuple[int, int]]]


def _month_flows(ids: list[int], start: datetime, end: datetime) -> tuple[dict[int, Flows], dict[int, dict[int, int]]]:
    """One pass over the month's transactions for the communities ``ids``: per community, account code
    -> transaction kind -> (credits, debits) of its accounts in ``[start, end)``, and what each of its
    households earned (its wallet's net in transactions that draw on an issuance account:
    :func:`earned_by_household`). A sub-district's report reads its month once, whatever the number
    of its communities."""
    owner = accounts.AccountOwner
    issuance_ids = _issuance_points_ids(ids) or [-1]
    query = select(Transaction.id, Transaction.kind)
    query = query.where(Transaction.created_at >= start, Transaction.created_at < end)
    issuing = select(Posting.id).where(Posting.transaction_id == Transaction.id,
                                       Posting.account_id.in_(issuance_ids)).exists()
    period = query.add_columns(case((issuing, 1), else_=0).label("issuing")).cte("period").prefix_with(
        "MATERIALIZED")
    rows = db.session.execute(
        select(owner.community_id, Posting.account_id, period.c.kind, period.c.issuing, owner.household_id,
               owner.resident_id,
               func.coalesce(func.sum(case((Posting.amount > 0, Posting.amount), else_=0)), 0),
               func.coalesce(func.sum(case((Posting.amount < 0, -Posting.amount), else_=0)), 0))
        .select_from(period)
        .join(Posting, _postings_of(period))
        .join(owner, owner.account_id == Posting.account_id)
        .where(_not_an_index(owner.community_id).in_(ids))
        .group_by(owner.community_id, Posting.account_id, period.c.kind, period.c.issuing, owner.household_id,
                  owner.resident_id)
    ).all()
    account_ids = {account_id for _c, account_id, *_ in rows}
    codes = {i: (code, unit) for i, code, unit in db.session.execute(
        select(Account.id, Account.code, Account.unit).where(Account.id.in_(account_ids))).all()} \
        if account_ids else {}
    flows: dict[int, Flows] = {cid: {} for cid in ids}
    earned: dict[int, dict[int, int]] = {cid: {} for cid in ids}
    for cid, account_id, kind, issuing, household_id, resident_id, credit, debit in rows:
        code, unit = codes[account_id]
        was = flows[cid].setdefault(code, {}).get(kind, (0, 0))
        flows[cid][code][kind] = (was[0] + int(credit), was[1] + int(debit))
        if issuing and household_id is not None and resident_id is None and unit == accounts.POINTS:
            earned[cid][household_id] = earned[cid].get(household_id, 0) + int(credit) - int(debit)
    return flows, {cid: {h: v for h, v in by.items() if v != 0} for cid, by in earned.items()}


def _group_of_account():
    """Which of the report's balances an account (joined with its owner row) adds to."""
    owner = accounts.AccountOwner
    pools = select(Account.id).where(Account.code.like("community:%:pool:minutes"))
    return case(
        (and_(owner.household_id.isnot(None), owner.resident_id.is_(None), Account.unit == accounts.POINTS),
         _HOUSEHOLDS),
        # A guest's wallet in the community (:func:`timebank.core.accounts.guest_points`): points held there.
        (and_(owner.resident_id.isnot(None), Account.unit == accounts.POINTS), _HOUSEHOLDS),
        (and_(owner.resident_id.isnot(None), Account.unit == accounts.MINUTES), _RESIDENTS),
        (Account.id.in_(pools), _POOL),
        else_="other")


def _group_totals(lo: datetime | None, hi: datetime | None,
                  ids: list[int] | None = None) -> dict[tuple[int, str], int]:
    """(community id, group) -> sum of the postings of transactions with ``lo <= created_at < hi``
    (either bound may be open) on the households' points (and guests' wallets), the residents' minutes
    and the pools; of the communities ``ids`` (default: all)."""
    owner = accounts.AccountOwner
    group = _group_of_account()
    period = _window(lo, hi)
    query = (select(owner.community_id, group, func.coalesce(func.sum(Posting.amount), 0))
             .select_from(period)
             .join(Posting, Posting.transaction_id == period.c.id)
             .join(Account, Account.id == Posting.account_id)
             .join(owner, owner.account_id == Account.id)
             .group_by(owner.community_id, group))
    if ids is not None:
        query = query.where(_not_an_index(owner.community_id).in_(ids))
    return {(community, name): int(total) for community, name, total in db.session.execute(query).all()}


def _current_totals(ids: list[int]) -> dict[tuple[int, str], int]:
    """Today's balances of the groups: the accounts' cached balances (kept by the ledger's trigger)."""
    owner = accounts.AccountOwner
    group = _group_of_account()
    rows = db.session.execute(
        select(owner.community_id, group, func.coalesce(func.sum(Account.balance), 0))
        .select_from(Account).join(owner, owner.account_id == Account.id)
        .where(owner.community_id.in_(ids)).group_by(owner.community_id, group)).all()
    return {(cid, name): int(value) for cid, name, value in rows}


def _pick(totals: dict[tuple[int, str], int], cid: int) -> dict[str, int]:
    return {name: totals.get((cid, name), 0) for name in _GROUPS}


def _balances_at(cid: int, end: datetime) -> dict[str, int]:
    """The households' points, the residents' minutes and the pool's minutes of one community at ``end``
    (:func:`_balances_of`)."""
    return _balances_of([cid], end)[cid]


def _balances_of(ids: list[int], end: datetime) -> dict[int, dict[str, int]]:
    """Per community of ``ids``: the households' points, the residents' minutes and the pool's minutes
    at ``end``.

    Read from the nearest anchor in time, plus or minus what was posted between it and ``end``:

    * ``start``: nothing before the first transaction;
    * ``now``: today's balances (each account's cached balance, checked by ``verify``);
    * ``before`` / ``after``: the stored totals at the end of an ended month (:class:`MonthTotals`,
      kept by the ``month_totals`` job), the latest one not after ``end`` and the first not before,
      among the month-ends stored for every community of ``ids``.

    Every window filters on ``created_at``, so the figures are exact whatever order the rows were
    written in; the report of any month reads about one month of transactions once the job has run,
    for one community or for all the communities of a sub-district at once (docs/performance.md has
    the figures)."""
    # Two queries: each is one step down the index on created_at (together they would scan it).
    first = db.session.execute(select(func.min(Transaction.created_at))).scalar_one()
    last = db.session.execute(select(func.max(Transaction.created_at))).scalar_one()
    if first is None:
        return {cid: dict.fromkeys(_GROUPS, 0) for cid in ids}

    def stored_end(condition, order):
        return db.session.execute(
            select(MonthTotals.ends_at).where(MonthTotals.community_id.in_(ids), condition)
            .group_by(MonthTotals.ends_at).having(func.count() == len(ids)).order_by(order).limit(1)).scalar()

    before = stored_end(MonthTotals.ends_at <= end, MonthTotals.ends_at.desc())
    after = stored_end(MonthTotals.ends_at >= end, MonthTotals.ends_at)
    distance = {"start": max(end - first, timedelta(0)), "now": max(last - end, timedelta(0))}
    if before is not None:
        distance["before"] = end - before
    if after is not None:
        distance["after"] = after - end
    anchor = _CHEAPER_SIDE if _CHEAPER_SIDE in distance else min(distance, key=lambda k: (distance[k], k))
    if anchor == "start":
        totals = _group_totals(None, end, ids)
        return {cid: _pick(totals, cid) for cid in ids}
    if anchor == "now":
        current = _current_totals(ids)
        later = _group_totals(end, None, ids)
        return {cid: {name: current.get((cid, name), 0) - later.get((cid, name), 0) for name in _GROUPS}
                for cid in ids}
    moment = before if anchor == "before" else after
    base = {r.community_id: {_HOUSEHOLDS: r.households_points, _RESIDENTS: r.residents_minutes,
                             _POOL: r.pool_minutes}
            for r in db.session.execute(select(MonthTotals).where(MonthTotals.community_id.in_(ids),
                                                                  MonthTotals.ends_at == moment)).scalars()}
    if anchor == "before":
        between = _group_totals(moment, end, ids)
        return {cid: {name: base[cid][name] + between.get((cid, name), 0) for name in _GROUPS} for cid in ids}
    between = _group_totals(end, moment, ids)
    return {cid: {name: base[cid][name] - between.get((cid, name), 0) for name in _GROUPS} for cid in ids}


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
    """The month's figures for one community and every community below it (a 街道 over its 社区;
    definitions in docs/reports.md), read on the read replica when the deployment has one
    (``TIMEBANK_READ_DATABASE_URL``). ``communities`` breaks the figures down by community.

    Its cost follows the month's transactions and the communities' accounts, not the ledger's
    history, nor the number of communities (:func:`_month_flows`, :func:`_balances_of` read them all
    at once); docs/performance.md has the figures."""
    with reading(replica=True):
        return _monthly_report(community, month)


def _counts(ids: list[int], start: datetime, end: datetime) -> dict[int, dict[str, int]]:
    """Per community: its households made before ``end``, and its receipts, claims posted and claims
    taken back in ``[start, end)``; four grouped queries for any number of communities."""
    def grouped(query) -> dict[int, int]:
        return {cid: int(n) for cid, n in db.session.execute(query).all()}

    households = grouped(select(Household.community_id, func.count()).where(
        Household.community_id.in_(ids), Household.created_at < end).group_by(Household.community_id))
    receipts = grouped(select(Redemption.community_id, func.count()).where(
        Redemption.community_id.in_(ids), Redemption.created_at >= start, Redemption.created_at < end)
        .group_by(Redemption.community_id))
    # Claims posted in the month, also those taken back later (a month's figures do not change
    # afterwards); the reversals are counted in the month they were made.
    posted = grouped(select(Claim.community_id, func.count()).where(
        Claim.community_id.in_(ids), Claim.status == "posted", Claim.posted_at >= start, Claim.posted_at < end)
        .group_by(Claim.community_id))
    reversed_ = grouped(select(Claim.community_id, func.count()).select_from(ClaimReversal)
                        .join(Claim, Claim.id == ClaimReversal.claim_id)
                        .where(Claim.community_id.in_(ids), ClaimReversal.created_at >= start,
                               ClaimReversal.created_at < end).group_by(Claim.community_id))
    return {cid: {"households": households.get(cid, 0), "receipts": receipts.get(cid, 0),
                  "claims_posted": posted.get(cid, 0), "claims_reversed": reversed_.get(cid, 0)} for cid in ids}


def _figures(cid: int, flows: Flows, earned: dict[int, int], at_end: dict[str, int], counts: dict[str, int]) -> dict:
    """One community's figures: points, hours, participation, activity."""
    def credit(code, kinds=None):
        return sum(v[0] for k, v in flows.get(code, {}).items() if kinds is None or k in kinds)

    def debit(code, kinds=None):
        return sum(v[1] for k, v in flows.get(code, {}).items() if kinds is None or k in kinds)

    issued = {cat: debit(accounts.issuance_points(cid, cat)) - credit(accounts.issuance_points(cid, cat))
              for cat in accounts.CATEGORIES}
    shop = accounts.supermarket_points(cid)
    expired = accounts.expired_points(cid)
    residents = [c for c in flows if c.startswith("resident:") and c.endswith(":minutes")]
    wallets = [c for c in flows if c.startswith(("household:", "guest:")) and c.endswith(":points")]
    pool = accounts.pool_minutes(cid)
    earning_households = sum(1 for v in earned.values() if v > 0)
    total_households = counts["households"]
    redeemed = credit(shop)
    voided = debit(shop)
    return {
        "points": {
            "issued_by_category": issued,
            "issued_total": sum(issued.values()),
            "redeemed": redeemed,
            "voided": voided,
            "voided_by_void": debit(shop, ("void", "reversal")),
            "voided_by_return": debit(shop, ("return",)),
            "redeemed_net": redeemed - voided,
            "expired": credit(expired) - debit(expired),
            "reversed": sum(debit(c, ("claim_reversal",)) - credit(c, ("claim_reversal",)) for c in wallets),
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
        "participation": _participation(earning_households, total_households),
        "activity": {"claims_posted": counts["claims_posted"], "claims_reversed": counts["claims_reversed"],
                     "receipts": counts["receipts"]},
    }


def _participation(earning: int, total: int) -> dict:
    return {"households_earning": earning, "households_total": total,
            "rate": round(earning / total, 4) if total else 0.0}


def _add_up(parts: list[dict]) -> dict:
    """The figures of several communities together (every figure is a sum; the rate is recomputed)."""
    points = {"issued_by_category": {cat: sum(p["points"]["issued_by_category"][cat] for p in parts)
                                     for cat in accounts.CATEGORIES}}
    points.update({key: sum(p["points"][key] for p in parts) for key in parts[0]["points"]
                   if key != "issued_by_category"})
    return {
        "points": points,
        "hours": {key: sum(p["hours"][key] for p in parts) for key in parts[0]["hours"]},
        "participation": _participation(sum(p["participation"]["households_earning"] for p in parts),
                                        sum(p["participation"]["households_total"] for p in parts)),
        "activity": {key: sum(p["activity"][key] for p in parts) for key in parts[0]["activity"]},
    }


def _is_empty(figures) -> bool:
    if isinstance(figures, dict):
        return all(_is_empty(v) for v in figures.values())
    return not figures


def _monthly_report(community: Community, month: str) -> dict:
    parse_month(month)
    start, end = month_bounds(month)
    ids = community.subtree()
    flows, earned = _month_flows(ids, start, end)
    at_end = _balances_of(ids, end)
    counts = _counts(ids, start, end)
    parts = {cid: _figures(cid, flows[cid], earned[cid], at_end[cid], counts[cid]) for cid in ids}
    everyone = {household: points for cid in ids for household, points in earned[cid].items()}
    breakdown = []
    if len(ids) > 1:
        places = {c.id: c for c in db.session.execute(select(Community).where(Community.id.in_(ids))).scalars()}
        codes = {cid: places[cid].code for cid in ids}
        # The community asked for is listed too when it holds or moved anything itself, so that the
        # parts always add up to the whole.
        shown = [cid for cid in ids if cid != community.id or not _is_empty(parts[cid])]
        breakdown = [{"code": places[cid].code, "name": places[cid].name,
                      "parent_code": codes.get(places[cid].parent_id), **parts[cid]} for cid in shown]
    return {
        "community_code": community.code,
        "community_name": community.name,
        "month": month,
        "period": {"start": to_local(start).isoformat(), "end": to_local(end).isoformat()},
        **_add_up([parts[cid] for cid in ids]),
        "top_households": ranking(community.id, start, end, earned=everyone),
        "donations": [dict(d, last_donation_at=to_local(d["last_donation_at"]).isoformat()) for d in
                      donations(ids, start, end)],
        "communities": breakdown,
    }


def _figure_rows(figures: dict) -> list[tuple]:
    """A community's figures as the CSV and XLSX name them: ``points.issued.volunteer``, ``hours.help_minutes``..."""
    rows = [(f"points.issued.{cat}", value) for cat, value in figures["points"]["issued_by_category"].items()]
    rows += [(f"points.{key}", value) for key, value in figures["points"].items() if key != "issued_by_category"]
    for section in ("hours", "participation", "activity"):
        rows += [(f"{section}.{key}", value) for key, value in figures[section].items()]
    return rows


def _summary_rows(report: dict) -> list[tuple]:
    rows = [("community", report["community_code"]), ("community_name", report["community_name"]),
            ("month", report["month"]), ("period_start", report["period"]["start"]),
            ("period_end", report["period"]["end"])]
    return rows + _figure_rows(report)


def _community_rows(report: dict) -> list[tuple]:
    """The per-community breakdown of a sub-district's report: (code, name, figure, value) rows."""
    return [(c["code"], c["name"], name, value) for c in report.get("communities", [])
            for name, value in _figure_rows(c)]


def monthly_report_csv(report: dict) -> str:
    """CSV (without the BOM): ``section,name,value,detail`` rows for figures, ranking, donations and, for a
    sub-district, each community's figures (``community``, ``<code>:<figure>``, value, the community's name)."""
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
    for code, name, figure, value in _community_rows(report):
        writer.writerow(("community", f"{code}:{figure}", value, name))
    return buffer.getvalue()


def monthly_report_rows(report: dict) -> int:
    """How many data rows the CSV and the XLSX of ``report`` hold (headers not counted)."""
    return (len(list(_summary_rows(report))) + len(report["top_households"])
            + sum(len(d["items"]) for d in report["donations"]) + len(_community_rows(report)))


def monthly_report_xlsx(report: dict) -> bytes:
    """XLSX: sheets ``figures``, ``ranking`` and ``donations``; and ``communities`` for a sub-district."""
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
    if report.get("communities"):
        sheet = workbook.create_sheet("communities")
        append_row(sheet, ["code", "name", "figure", "value"])
        for row in _community_rows(report):
            append_row(sheet, list(row))
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
            "key_id": latest.key_id,
            "cosignatures": [{"name": c["name"], "key_id": c["key_id"], "timestamp": c["timestamp"]}
                             for c in checkpoints.cosignatures_of([latest.id])[latest.id]]},
    }


def parse_window(since: datetime | None, until: datetime | None, default_days: int = 30) -> tuple[datetime, datetime]:
    """``[since, until)`` as naive UTC; by default the last ``default_days`` days up to now."""
    end = utc_naive(until) if until is not None else utc_naive() + timedelta(seconds=1)
    start = utc_naive(since) if since is not None else end - timedelta(days=default_days)
    if start >= end:
        raise ValidationFailed(errors={"until": ["Must be after since."]})
    return start, end

