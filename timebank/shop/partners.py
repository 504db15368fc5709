"""Partner shops (爱心商家): redemption points of a community with their own clerk logins.

A partner shop sells its own goods and services for points at its own till. Each partner has a ledger
account (``community:<id>:partner:<pid>:points``, :func:`timebank.core.accounts.partner_points`),
opened with it: a sale at the partner moves points from the household's wallet into that account,
voids and returns take them back out. So the monthly settlement (what the community owes the partner
for the points it took) is read off the ledger's postings, not off the receipts.

Plain functions: they flush and never commit.
"""

from __future__ import annotations

import io

from sqlalchemy import case, func, select

from ledger.models import Account, Posting, Transaction
from timebank.core import accounts, clock
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict, NotFound, ValidationFailed
from timebank.core.exports import csv_writer
from timebank.core.extensions import db
from timebank.core.policy import require_community
from timebank.core.users import User
from timebank.people.models import Community
from timebank.shop.models import PartnerClerk, PartnerShop

#: Who creates partner shops, links their clerks and reads the settlement.
PARTNER_MANAGERS = ("committee",)
SETTLEMENT_COLUMNS = ("partner_id", "name", "address", "redeemed_points", "given_back_points", "net_points",
                      "receipts")


def partners(community_id: int, *, active_only: bool = False) -> list[PartnerShop]:
    query = select(PartnerShop).where(PartnerShop.community_id == community_id)
    if active_only:
        query = query.where(PartnerShop.active.is_(True))
    return list(db.session.execute(query.order_by(PartnerShop.id)).scalars())


def get_partner(partner_id: int, community_id: int | None = None) -> PartnerShop:
    partner = db.session.get(PartnerShop, partner_id)
    if partner is None or (community_id is not None and partner.community_id != community_id):
        raise NotFound("No such partner shop.", code="unknown_partner")
    return partner


def _name_free(community_id: int, name: str, except_id: int | None = None) -> None:
    query = select(PartnerShop.id).where(PartnerShop.community_id == community_id, PartnerShop.name == name)
    if except_id is not None:
        query = query.where(PartnerShop.id != except_id)
    if db.session.execute(query).first() is not None:
        raise Conflict(f"A partner shop named {name!r} exists in this community.", code="partner_taken")


def create_partner(community: Community, user: User, *, name: str, address: str = "") -> PartnerShop:
    """A new partner shop, with its points account (and the account's owner row)."""
    require_community(user, community.id, *PARTNER_MANAGERS)
    name = name.strip()
    if not name:
        raise ValidationFailed(errors={"name": ["A partner shop has a name."]})
    _name_free(community.id, name)
    partner = PartnerShop(community_id=community.id, name=name, address=(address or "").strip(), active=True,
                          created_at=utc_naive())
    db.session.add(partner)
    db.session.flush()
    account = accounts.open_partner(db.session, community.id, partner.id)
    record("partner.create", user=user, target=f"partner:{partner.id}", community_id=community.id, name=name,
           address=partner.address, account=account)
    return partner


def update_partner(partner: PartnerShop, user: User, **changes) -> PartnerShop:
    """Change a partner shop's name, address or active flag (an inactive one sells nothing)."""
    require_community(user, partner.community_id, *PARTNER_MANAGERS)
    if "name" in changes:
        changes["name"] = changes["name"].strip()
        _name_free(partner.community_id, changes["name"], except_id=partner.id)
    before = {key: getattr(partner, key) for key in changes}
    for key, value in changes.items():
        setattr(partner, key, value)
    if changes:
        record("partner.update", user=user, target=f"partner:{partner.id}", community_id=partner.community_id,
               before=before, after=changes)
    db.session.flush()
    return partner


def link_clerk(partner: PartnerShop, user: User, clerk: User | None) -> PartnerClerk:
    """Make a clerk login of the community the partner shop's: from then on it sells only the
    partner's goods and sees only its receipts. A login belongs to one partner at most; linking it
    again moves it."""
    require_community(user, partner.community_id, *PARTNER_MANAGERS)
    if clerk is None or (clerk.community_id != partner.community_id):
        raise NotFound("No such login in this community.")
    if clerk.role != "clerk":
        raise ValidationFailed(errors={"username": ["Only a clerk login works a partner shop's till."]})
    link = db.session.get(PartnerClerk, clerk.id)
    before = link.partner_id if link is not None else None
    if link is None:
        link = PartnerClerk(user_id=clerk.id, partner_id=partner.id, linked_at=utc_naive(), actor=user.actor)
        db.session.add(link)
    else:
        link.partner_id, link.linked_at, link.actor = partner.id, utc_naive(), user.actor
    record("partner.clerk_link", user=user, target=f"partner:{partner.id}", community_id=partner.community_id,
           clerk_user_id=clerk.id, username=clerk.username, previous_partner_id=before)
    db.session.flush()
    return link


def clerks(partner_ids) -> dict[int, list[User]]:
    """The clerk logins of each partner shop."""
    out: dict[int, list[User]] = {}
    if not partner_ids:
        return out
    rows = db.session.execute(
        select(PartnerClerk.partner_id, User).join(User, User.id == PartnerClerk.user_id)
        .where(PartnerClerk.partner_id.in_(list(partner_ids))).order_by(User.username)).all()
    for partner_id, user in rows:
        out.setdefault(partner_id, []).append(user)
    return out


def settlement(community_id: int, month: str) -> dict:
    """Per partner shop for a month (local time): points redeemed there, points given back by voids
    and returns, the net the community settles, and the number of receipts, all from the postings of
    the partner's ledger account."""
    start, end = clock.month_bounds(month)
    shops = partners(community_id)
    codes = {accounts.partner_points(community_id, p.id): p for p in shops}
    totals = {}
    if codes:
        amount = Posting.amount
        rows = db.session.execute(
            select(Account.code,
                   func.coalesce(func.sum(case((amount > 0, amount), else_=0)), 0),
                   func.coalesce(func.sum(case((amount < 0, -amount), else_=0)), 0),
                   func.count(func.distinct(case((Transaction.kind == "redemption", Transaction.id)))))
            .join(Posting, Posting.account_id == Account.id)
            .join(Transaction, Transaction.id == Posting.transaction_id)
            .where(Account.code.in_(list(codes)), Transaction.created_at >= start, Transaction.created_at < end)
            .group_by(Account.code)).all()
        totals = {code: (int(a), int(b), int(c)) for code, a, b, c in rows}
    out = []
    for code, partner in codes.items():
        redeemed, given_back, receipts = totals.get(code, (0, 0, 0))
        out.append({"partner_id": partner.id, "name": partner.name, "address": partner.address,
                    "active": partner.active, "account": code, "redeemed_points": redeemed,
                    "given_back_points": given_back, "net_points": redeemed - given_back, "receipts": receipts})
    total = {key: sum(row[key] for row in out)
             for key in ("redeemed_points", "given_back_points", "net_points", "receipts")}
    year, mon = clock.parse_month(month)
    return {"month": f"{year:04d}-{mon:02d}", "partners": out, "total": total}


def settlement_csv(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(SETTLEMENT_COLUMNS)
    for row in report["partners"]:
        writer.writerow([row[c] for c in SETTLEMENT_COLUMNS])
    writer.writerow(["", "total", "", *(report["total"][c] for c in SETTLEMENT_COLUMNS[3:])])
    return buffer.getvalue()
