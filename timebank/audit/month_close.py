"""Month close (月结): two committee members sign a community's month off; then it is closed.

* The first sign-off leaves the month ``pending_second``; a sign-off by a *different* committee
  member of the community closes it (``closed``). The same member twice is refused
  (409 ``same_signer``), also when the second sign-off comes from another login of the same person
  (the same ``users.person_key``); a login without a person signs nothing (403 ``person_required``);
  signing a closed month is refused (409 ``already_closed``).
* The first sign-off tells the community's other committee members (a notice) that the month
  waits for a second one.
* Closing produces a statement (totals of the month from the ledger, and stock when the shop's
  tables exist) as canonical JSON, signed with the deployment's Ed25519 key (the checkpoint key),
  and stored with its signature. It also names the ledger's tree size and Merkle root at the close.
* Nothing dated inside a closed month can be posted afterwards: :func:`month_closed_guard` sits in
  :data:`timebank.core.ledgering.POST_GUARDS` and raises 409 ``month_closed``. Normal postings are
  dated "now", so the guard matters when a month is closed before it ends, or for anything
  back-dated.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import case, func, inspect, select, text

import ledger.core
from ledger import driver, merkle
from ledger.encoding import canonical_json
from ledger.models import Account, Posting, Transaction
from ledger.tree import MerkleTree
from timebank.audit import checkpoints
from timebank.audit.models import MonthClose, MonthCloseSignoff
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import month_bounds, now, parse_month, to_local, utc_naive
from timebank.core.database import first_row_under_writer_lock
from timebank.core.errors import Conflict, Forbidden
from timebank.core.extensions import db
from timebank.core.policy import require_person
from timebank.core.users import User, same_person
from timebank.notices.operations import notify_staff
from timebank.people.models import Community

STATEMENT_TYPE = "timebank.month-close.v1"


def month_of(moment: datetime) -> str:
    """``YYYY-MM`` of a moment (naive UTC or aware) in the deployment's time zone."""
    return to_local(moment).strftime("%Y-%m")


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------


def closed_row(community_id: int, month: str) -> MonthClose | None:
    return db.session.execute(
        select(MonthClose).where(MonthClose.community_id == community_id, MonthClose.month == month)
    ).scalar_one_or_none()


def signoffs(community_id: int, month: str) -> list[MonthCloseSignoff]:
    return list(db.session.execute(
        select(MonthCloseSignoff).where(MonthCloseSignoff.community_id == community_id,
                                        MonthCloseSignoff.month == month).order_by(MonthCloseSignoff.id)
    ).scalars())


# Asked before every posting (every sale at the till), on the driver's cursor: only whether the row exists.
_IS_CLOSED = driver.per_dialect({"closed": f"SELECT 1 FROM {MonthClose.__tablename__}"
                                           " WHERE community_id = {community} AND month = {month}"})


def month_closed_guard(community_id: int | None, moment: datetime) -> None:
    """A POST_GUARDS entry: refuse a posting dated inside a closed month of its community."""
    if community_id is None:
        return
    # The writer lock is taken before the check so a close cannot commit between this check and the
    # posting (on PostgreSQL both go in one message).
    month = month_of(moment)
    if first_row_under_writer_lock(db.session, _IS_CLOSED[driver.dialect_name(db.session)]["closed"],
                                   {"community": community_id, "month": month}) is not None:
        raise ledgering.closed_month(month)


# --------------------------------------------------------------------------------------------
# The statement
# --------------------------------------------------------------------------------------------


def _stock(community_id: int, start: datetime, end: datetime) -> list[dict] | None:
    """Stock per item (opening, received, issued, closing) from the shop's movement log, if present."""
    connection = db.session.connection()
    inspector = inspect(connection)
    if not inspector.has_table("stock_movements"):
        return None
    has_items = inspector.has_table("shop_items")
    rows = connection.execute(text(
        "SELECT m.item_id AS item_id,"
        " SUM(CASE WHEN m.created_at < :start THEN m.quantity ELSE 0 END) AS opening,"
        " SUM(CASE WHEN m.created_at >= :start AND m.quantity > 0 THEN m.quantity ELSE 0 END) AS received,"
        " SUM(CASE WHEN m.created_at >= :start AND m.quantity < 0 THEN -m.quantity ELSE 0 END) AS issued,"
        " SUM(m.quantity) AS closing"
        " FROM stock_movements m WHERE m.community_id = :cid AND m.created_at < :end"
        " GROUP BY m.item_id ORDER BY m.item_id"
    ), {"cid": community_id, "start": start, "end": end}).all()
    names = {}
    if has_items and rows:
        names = {r.id: (r.sku, r.name) for r in connection.execute(
            text("SELECT id, sku, name FROM shop_items WHERE community_id = :cid"), {"cid": community_id})}
    return [
        {"item_id": r.item_id, "sku": names.get(r.item_id, (None, None))[0],
         "name": names.get(r.item_id, (None, None))[1], "opening": int(r.opening), "received": int(r.received),
         "issued": int(r.issued), "closing": int(r.closing)}
        for r in rows
    ]


def compute_statement(community: Community, month: str) -> dict:
    """The month's totals, from the ledger's postings (and the stock log when it exists)."""
    start, end = month_bounds(month)
    cid = community.id
    owned = select(accounts.AccountOwner.account_id).where(accounts.AccountOwner.community_id == cid)
    in_month = (Transaction.created_at >= start) & (Transaction.created_at < end)
    rows = db.session.execute(
        select(
            Account.code,
            func.coalesce(func.sum(case((in_month & (Posting.amount > 0), Posting.amount), else_=0)), 0),
            func.coalesce(func.sum(case((in_month & (Posting.amount < 0), -Posting.amount), else_=0)), 0),
            func.coalesce(func.sum(Posting.amount), 0),
        )
        .select_from(Posting)
        .join(Account, Account.id == Posting.account_id)
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(owned), Transaction.created_at < end)
        .group_by(Account.code)
    ).all()
    flows = {code: (int(cr), int(dr), int(bal)) for code, cr, dr, bal in rows}

    def credit(code):
        return flows.get(code, (0, 0, 0))[0]

    def debit(code):
        return flows.get(code, (0, 0, 0))[1]

    def balance(code):
        return flows.get(code, (0, 0, 0))[2]

    issued = {cat: debit(accounts.issuance_points(cid, cat)) - credit(accounts.issuance_points(cid, cat))
              for cat in accounts.CATEGORIES}
    households = [c for c in flows if c.startswith("household:") and c.endswith(":points")]
    residents = [c for c in flows if c.startswith("resident:") and c.endswith(":minutes")]
    supermarket = accounts.supermarket_points(cid)
    tx_count = db.session.execute(
        select(func.count(func.distinct(Posting.transaction_id)))
        .join(Transaction, Transaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(owned), in_month)
    ).scalar_one()
    return {
        "type": STATEMENT_TYPE,
        "origin": checkpoints.origin(),
        "community_code": community.code,
        "community_name": community.name,
        "month": month,
        "period": {"start": to_local(start).isoformat(), "end": to_local(end).isoformat()},
        "transactions": int(tx_count),
        "points": {
            "issued_by_category": issued,
            "issued_total": sum(issued.values()),
            "redeemed": credit(supermarket),
            "voided": debit(supermarket),
            "expired": credit(accounts.expired_points(cid)) - debit(accounts.expired_points(cid)),
            "outstanding": sum(balance(c) for c in households),
        },
        "hours": {
            "deposited_minutes": sum(credit(c) for c in residents),
            "withdrawn_minutes": sum(debit(c) for c in residents),
            "minted_minutes": debit(accounts.issuance_minutes(cid)) - credit(accounts.issuance_minutes(cid)),
            "pool_balance_minutes": balance(accounts.pool_minutes(cid)),
            "outstanding_minutes": sum(balance(c) for c in residents),
        },
        "stock": _stock(cid, start, end),
    }


def statement_hash(statement: dict) -> str:
    return hashlib.sha256(canonical_json(statement)).hexdigest()


# --------------------------------------------------------------------------------------------
# Sign-off
# --------------------------------------------------------------------------------------------


def sign_off(user: User, community: Community, month: str) -> tuple[str, MonthClose | None]:
    """Record ``user``'s sign-off; close the month on the second distinct signer.

    Returns ``(status, close)`` where ``close`` is the signed statement once closed.
    """
    parse_month(month)
    if user.role != "committee" or user.community_id != community.id:
        raise Forbidden("Only committee members of this community sign off a month.")
    require_person(user)
    _start, end = month_bounds(month)
    if end > utc_naive():  # the running month (or a later one) would freeze the community's postings
        raise Conflict(f"The month {month} has not ended yet; it can be closed once it is over.",
                       code="month_not_ended")
    ledger.core.lock_writer(db.session)  # a close and a posting never interleave
    if closed_row(community.id, month) is not None:
        raise Conflict(f"The month {month} is already closed.", code="already_closed")
    earlier = signoffs(community.id, month)
    # Two people, not two logins: another login of the same person (same phone or resident) is the same signer.
    if any(same_person(user, db.session.get(User, s.user_id)) for s in earlier):
        raise Conflict("You have signed this month off already; a second committee member must sign.",
                       code="same_signer")
    statement = compute_statement(community, month)
    db.session.add(MonthCloseSignoff(community_id=community.id, month=month, user_id=user.id,
                                     statement_hash=statement_hash(statement), signed_at=utc_naive()))
    db.session.flush()
    if not earlier:
        record("month_close.sign", user=user, community_id=community.id, target=f"month:{community.code}:{month}",
               status="pending_second")
        # The other committee members are told the month waits for one of them.
        notify_staff(community.id, ("committee",), "month_signoff_waiting",
                     {"month": month, "signer": user.resident.name if user.resident else user.username}, besides=user)
        return "pending_second", None

    first = db.session.get(User, earlier[0].user_id)
    tree = MerkleTree(db.session)
    size = tree.size()
    closed_at = now()
    statement["ledger"] = {"tree_size": size, "root_hash": merkle.to_hex(tree.root(size))}
    statement["signers"] = [first.username, user.username]
    statement["closed_at"] = to_local(closed_at).isoformat()
    body = canonical_json(statement).decode("utf-8")
    signature, key_id = checkpoints.sign_bytes_b64(body)
    close = MonthClose(community_id=community.id, month=month, statement=body, signature=signature, key_id=key_id,
                       first_signer_id=first.id, second_signer_id=user.id, closed_at=utc_naive(closed_at))
    db.session.add(close)
    db.session.flush()
    record("month_close.sign", user=user, community_id=community.id, target=f"month:{community.code}:{month}",
           status="closed", key_id=key_id)
    return "closed", close


def describe(community: Community, month: str, preview: bool = True) -> dict:
    """Everything about one community's month, as the API and the page show it."""
    close = closed_row(community.id, month)
    marks = signoffs(community.id, month)
    users = {u.id: u.username for u in db.session.execute(
        select(User).where(User.id.in_([s.user_id for s in marks]))).scalars()} if marks else {}
    out = {
        "community_code": community.code,
        "month": month,
        "status": "closed" if close else ("pending_second" if marks else "open"),
        "signoffs": [{"user_id": s.user_id, "username": users.get(s.user_id), "signed_at": s.signed_at}
                     for s in marks],
        "closed_at": close.closed_at if close else None,
        "statement": json.loads(close.statement) if close else None,
        "statement_text": close.statement if close else None,
        "signature": close.signature if close else None,
        "key_id": close.key_id if close else None,
        "preview": None,
    }
    if close is None and preview:
        out["preview"] = compute_statement(community, month)
    return out


def months_of(community_id: int) -> list[str]:
    """Months with at least one sign-off, newest first."""
    return [m for (m,) in db.session.execute(
        select(MonthCloseSignoff.month).where(MonthCloseSignoff.community_id == community_id)
        .group_by(MonthCloseSignoff.month).order_by(MonthCloseSignoff.month.desc())
    )]
