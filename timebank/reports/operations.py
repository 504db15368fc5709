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

from ledger.models import Account, Posting, Transaction
from timebank.audit import checkpoints
from timebank.core import accounts
from timebank.core.clock import current_month, month_bounds, parse_month, to_local, utc_naive
from timebank.core.errors import ValidationFailed
from timebank.core.exports import append_row, csv_writer
from timebank.core.extensions import db
from timebank.earning.models import Claim, ClaimReversal, RuleVersion
from timebank.people.models import Community, Household, Resident
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


def earned_by_household(community_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Net points each household earned in ``[start, end)``: what its wallet received in transactions
    that draw on the community's points issuance accounts (claims and grants), less reversals of them."""
    issuance_ids = select(Account.id).where(Account.code.in_(_issuance_points_codes(community_id)))
    issuing = (
        select(Posting.transaction_id)
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(issuance_ids), Transaction.created_at >= start, Transaction.created_at < end)
    )
    rows = db.session.execute(
        select(accounts.AccountOwner.household_id, func.sum(Posting.amount))
        .join(accounts.AccountOwner, accounts.AccountOwner.account_id == Posting.account_id)
        .where(Posting.transaction_id.in_(issuing), accounts.AccountOwner.community_id == community_id,
               accounts.AccountOwner.household_id.isnot(None), accounts.AccountOwner.resident_id.is_(None),
               Posting.unit == "points")
        .group_by(accounts.AccountOwner.household_id)
    ).all()
    return {hid: int(total) for hid, total in rows if int(total) != 0}


def ranking(community_id: int, start: datetime, end: datetime, size: int = RANKING_SIZE,
            masked: bool = False) -> list[dict]:
    """Households by points earned in the period, most first (ties: the household made first)."""
    earned = earned_by_household(community_id, start, end)
    ordered = sorted(((points, hid) for hid, points in earned.items() if points > 0), key=lambda p: (-p[0], p[1]))
    top = ordered[:size]
    names = {h.id: h.name for h in db.session.execute(
        select(Household).where(Household.id.in_([hid for _, hid in top]))).scalars()} if top else {}
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


def monthly_report(community: Community, month: str) -> dict:
    """The month's figures for one community (definitions in docs/reports.md)."""
    parse_month(month)
    start, end = month_bounds(month)
    cid = community.id
    owned = select(accounts.AccountOwner.account_id).where(accounts.AccountOwner.community_id == cid)
    in_month = and_(Transaction.created_at >= start, Transaction.created_at < end)
    rows = db.session.execute(
        select(
            Account.code, Transaction.kind,
            func.coalesce(func.sum(case((and_(in_month, Posting.amount > 0), Posting.amount), else_=0)), 0),
            func.coalesce(func.sum(case((and_(in_month, Posting.amount < 0), -Posting.amount), else_=0)), 0),
            func.coalesce(func.sum(Posting.amount), 0),
        )
        .select_from(Posting)
        .join(Account, Account.id == Posting.account_id)
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(owned), Transaction.created_at < end)
        .group_by(Account.code, Transaction.kind)
    ).all()
    # code -> kind -> (credits in month, debits in month, all postings up to the month's end)
    flows: dict[str, dict[str, tuple[int, int, int]]] = {}
    for code, kind, credit, debit, total in rows:
        flows.setdefault(code, {})[kind] = (int(credit), int(debit), int(total))

    def credit(code, kinds=None):
        return sum(v[0] for k, v in flows.get(code, {}).items() if kinds is None or k in kinds)

    def debit(code, kinds=None):
        return sum(v[1] for k, v in flows.get(code, {}).items() if kinds is None or k in kinds)

    def balance(code):
        return sum(v[2] for v in flows.get(code, {}).values())

    issued = {cat: debit(accounts.issuance_points(cid, cat)) - credit(accounts.issuance_points(cid, cat))
              for cat in accounts.CATEGORIES}
    shop = accounts.supermarket_points(cid)
    expired = accounts.expired_points(cid)
    households = [c for c in flows if c.startswith("household:") and c.endswith(":points")]
    residents = [c for c in flows if c.startswith("resident:") and c.endswith(":minutes")]
    pool = accounts.pool_minutes(cid)

    earned = earned_by_household(cid, start, end)
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
            "outstanding": sum(balance(c) for c in households),
        },
        "hours": {
            "deposited_minutes": sum(credit(c) for c in residents),
            "withdrawn_minutes": sum(debit(c) for c in residents),
            "help_minutes": sum(credit(c, ("help",)) for c in residents) + credit(pool, ("help",)),
            "pool_balance_minutes": balance(pool),
            "outstanding_minutes": sum(balance(c) for c in residents),
        },
        "participation": {
            "households_earning": earning_households,
            "households_total": int(total_households),
            "rate": round(earning_households / total_households, 4) if total_households else 0.0,
        },
        "activity": {"claims_posted": int(claims_posted), "claims_reversed": int(claims_reversed),
                     "receipts": int(receipts)},
        "top_households": ranking(cid, start, end),
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
                "expired", "reversed", "outstanding"):
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


def public_board(community: Community) -> dict:
    """Everything the public board shows (the page and ``GET /api/v1/public/{code}``)."""
    month = current_month()
    start, end = month_bounds(month)
    moment = utc_naive()
    since = moment - timedelta(days=DONOR_DAYS)
    latest = checkpoints.latest_checkpoint()
    return {
        "community_code": community.code,
        "community_name": community.name,
        "generated_at": moment,
        "month": month,
        "publicity": publicity(community.id),
        "ranking": ranking(community.id, start, end, masked=True),
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

