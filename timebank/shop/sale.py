"""The sale at the till (兑换): the one write every household makes on redemption day.

:func:`sell` does what :func:`timebank.shop.operations.redeem` promises (the checks in the same
order, the same rows, the same errors) with SQL written once per dialect and run on the driver's
cursor, as :func:`ledger.post` does: building and compiling SQLAlchemy statements per call cost
more than the database work itself. It returns a plain :class:`Sale`, from which the API answers
without loading the receipt back.

Locking. The member is looked up before the write lock; everything a decision depends on (the
goods, their stock and prices, monthly limits, the receipt counter, the wallet) is read after it:
:func:`timebank.core.database.take_write_lock` on SQLite (the request may have deferred it, see
:mod:`timebank.core.database`), ``SELECT ... FOR UPDATE`` on the goods in id order and then the counter
row and the ledger's writer lock on PostgreSQL -- the order :mod:`timebank.shop.operations` uses.

Notices (:mod:`timebank.notices`), in the same transaction: the household is told its card or pay
code was used, and the clerks when goods fell to their low-stock threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

import ledger
from ledger import driver
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import to_local, utc_naive
from timebank.core.database import execute_first_write, take_write_lock
from timebank.core.errors import Forbidden
from timebank.core.extensions import db
from timebank.notices.operations import notify_household
from timebank.people.memberships import guest_wallet
from timebank.shop import refusals
from timebank.shop.models import Redemption
from timebank.shop.operations import (
    SHOP_ROLES,
    bought_this_month,
    consume_fifo,
    next_receipt_no,
    read_pay_code,
    seller_points,
    sold_today,
    tell_low_stock,
)
from timebank.shop.refusals import refusal


class Member(NamedTuple):
    """Who is buying: the household, its community, and the resident when a person's card or pay
    code identified them; ``wallet``: the account charged (the household's, or a guest's wallet)."""

    household_id: int
    community_id: int
    community_code: str
    resident_id: int | None
    wallet: str


class Goods(NamedTuple):
    """One row of ``shop_items`` as the sale reads it (locked on PostgreSQL)."""

    id: int
    barcode: str | None
    name: str
    price_points: int
    monthly_limit: int | None
    on_hand: int
    active: bool
    kind: str
    daily_places: int | None
    partner_id: int | None
    #: The selling clerk's partner shop (the same on every row; None for the community's own staff).
    clerk_partner: int | None
    low_stock_threshold: int


@dataclass
class SaleLine:
    id: int
    item_id: int
    name: str
    quantity: int
    unit_points: int
    returned_quantity: int = 0

    @property
    def line_points(self) -> int:
        return self.quantity * self.unit_points


@dataclass
class Sale:
    """A receipt as it was written, with the attributes of a :class:`~timebank.shop.models.Redemption`
    that the API's ``RedemptionOut`` shows (nothing returned or voided yet), so the API answers
    from it with the same schema without loading the receipt back."""

    id: int
    receipt_no: int
    community_id: int
    community_code: str
    household_id: int
    resident_id: int | None
    identified_by: str
    total_points: int
    balance_after: int
    transaction_id: int
    created_at: datetime
    lines: list[SaleLine] = field(default_factory=list)
    status: str = "completed"
    returned_points: int = 0
    voided_at: datetime | None = None
    void_reason: str | None = None
    void_transaction_id: int | None = None
    returns: list = field(default_factory=list)
    partner_id: int | None = None


_SQL = {
    "member": (
        "SELECT h.id, h.community_id, c.code, NULL FROM households h JOIN communities c ON c.id = h.community_id"
        " WHERE h.member_code = {code}"
        " UNION ALL "
        "SELECT h.id, h.community_id, c.code, r.id FROM residents r JOIN households h ON h.id = r.household_id"
        " JOIN communities c ON c.id = h.community_id WHERE r.member_code = {code}"
    ),
    "resident": (
        "SELECT h.id, h.community_id, c.code, r.id FROM residents r JOIN households h ON h.id = r.household_id"
        " JOIN communities c ON c.id = h.community_id WHERE r.id = {resident}"
    ),
    "pay_code_used": "SELECT 1 FROM shop_used_pay_codes WHERE nonce = {nonce}",
    "use_pay_code": "INSERT INTO shop_used_pay_codes (nonce, resident_id, used_at) VALUES ({nonce}, {resident}, {at})",
    "receipt_no": "UPDATE shop_receipt_counters SET last_no = last_no + 1 WHERE community_id = {community}"
                  " RETURNING last_no",
    "receipt": (
        "INSERT INTO redemptions (community_id, receipt_no, household_id, resident_id, identified_by,"
        " total_points, returned_points, balance_after, status, clerk_id, created_at, partner_id) VALUES"
        " ({community}, {receipt_no}, {household}, {resident}, {identified_by}, {total}, 0, 0, 'completed',"
        " {clerk}, {at}, {partner})"
        " RETURNING id"
    ),
    "line": "INSERT INTO redemption_lines (redemption_id, item_id, name, quantity, unit_points, returned_quantity)"
            " VALUES ({receipt}, {item}, {name}, {quantity}, {unit_points}, 0) RETURNING id",
    "movement": (
        "INSERT INTO stock_movements (item_id, community_id, quantity, reason, note, redemption_id, actor,"
        " created_at) VALUES ({item}, {community}, {quantity}, 'redemption', {note}, {receipt}, {actor}, {at})"
        " RETURNING id"
    ),
    "settle": "UPDATE redemptions SET balance_after = {balance}, transaction_id = {tx} WHERE id = {receipt}",
}


_SQL_BY_DIALECT = driver.per_dialect(_SQL)


@lru_cache(maxsize=256)
def _goods_sql(dialect: str, ids: int, barcodes: int) -> str:
    """The goods named by ``ids`` ids and ``barcodes`` barcodes, locked in id order on PostgreSQL."""
    wanted = []
    if ids:
        wanted.append(f"id IN ({', '.join(driver.mark(dialect, f'i{n}') for n in range(ids))})")
    if barcodes:
        wanted.append(f"barcode IN ({', '.join(driver.mark(dialect, f'b{n}') for n in range(barcodes))})")
    # Goods of a closed partner shop are not sold; the clerk's partner shop rides along on each row.
    sql = (f"SELECT id, barcode, name, price_points, monthly_limit_per_household, on_hand,"
           f" active AND NOT EXISTS (SELECT 1 FROM shop_partners p WHERE p.id = shop_items.partner_id"
           f" AND NOT p.active), kind, daily_places, partner_id,"
           f" (SELECT partner_id FROM shop_partner_clerks WHERE user_id = {driver.mark(dialect, 'clerk')}),"
           f" low_stock_threshold"
           f" FROM shop_items WHERE community_id = {driver.mark(dialect, 'community')}"
           f" AND ({' OR '.join(wanted)}) ORDER BY id")
    return sql + (" FOR UPDATE" if dialect == "postgresql" else "")


def _cursor():
    cursor, dialect = driver.cursor(db.session)
    return cursor, _SQL_BY_DIALECT[dialect], dialect


def _find_member(cursor, sql, user, member_code, pay_code) -> tuple[Member, str | None]:
    """The member, and the pay code's nonce (None for a card)."""
    nonce = None
    if pay_code is not None:
        resident_id, nonce = read_pay_code(pay_code)
        cursor.execute(sql["resident"], {"resident": resident_id})
    else:
        cursor.execute(sql["member"], {"code": member_code})
    found = cursor.fetchone()  # a household card first; member codes are unique per kind
    if found is None:
        raise refusal("unknown_member")
    household_id, community_id, community_code, resident_id = found
    if user.role != "admin" and community_id != user.community_id:
        # A guest (候鸟) pays here from their guest wallet, named by their own card or pay code.
        wallet = guest_wallet(resident_id, user.community_id) if resident_id is not None else None
        if wallet is None:
            raise refusal("unknown_member")
        return Member(household_id, user.community_id, user.community.code, resident_id, wallet), nonce
    return Member(household_id, community_id, community_code, resident_id,
                  accounts.household_points(household_id)), nonce


def _use_pay_code(cursor, sql, dialect, nonce: str, resident_id: int, moment: datetime) -> None:
    cursor.execute(sql["pay_code_used"], {"nonce": nonce})
    if cursor.fetchone() is not None:
        raise refusal("pay_code_used")
    try:
        cursor.execute(sql["use_pay_code"],
                       {"nonce": nonce, "resident": resident_id, "at": driver.timestamp(dialect, moment)})
    except driver.integrity_error(db.session) as exc:  # another till, a moment ago
        raise refusal("pay_code_used") from exc


def _resolve(cursor, dialect, community_id: int, clerk_id: int | None, lines: list[dict]):
    """Lock and read the goods; return ({item_id: quantity}, {item_id: row}, the seller's partner shop or
    None). Lines of one item merge; unknown or inactive goods, and goods a partner shop's clerk does not
    sell, are refused, in the order of the lines; one receipt has one seller."""
    ids = sorted({line["item_id"] for line in lines if line.get("item_id") is not None})
    codes = sorted({line["barcode"] for line in lines if line.get("item_id") is None})
    params = {"community": community_id, "clerk": clerk_id}
    params.update({f"i{n}": value for n, value in enumerate(ids)})
    params.update({f"b{n}": value for n, value in enumerate(codes)})
    cursor.execute(_goods_sql(dialect, len(ids), len(codes)), params)
    rows = [Goods(*row) for row in cursor.fetchall()]
    by_id = {row.id: row for row in rows}
    by_barcode = {row.barcode: row for row in rows if row.barcode is not None}
    wanted: dict[int, int] = {}
    for line in lines:
        if line.get("item_id") is not None:
            row = by_id.get(line["item_id"])
        else:
            row = by_barcode.get(line["barcode"])
        if row is None or not row.active or (row.clerk_partner is not None and row.partner_id != row.clerk_partner):
            raise refusal("unknown_item", item_id=line.get("item_id"), barcode=line.get("barcode"))
        wanted[row.id] = wanted.get(row.id, 0) + int(line["quantity"])
    sellers = {by_id[item_id].partner_id for item_id in wanted}
    if len(sellers) > 1:
        raise refusal("mixed_sellers")
    return wanted, by_id, sellers.pop()


def sell(user, *, lines: list[dict], member_code: str | None = None, pay_code: str | None = None) -> Sale:
    """Sell goods for points: points leave the household wallet and stock leaves the shelf together.

    Checks in this order: who may sell, the member (card or pay code), the goods (a partner shop's
    clerk sells only its goods; one seller per receipt), the monthly limits, a service's places
    today or the stock, then the points (the ledger refuses a wallet below zero). Flushes nothing
    through the ORM and never commits.
    """
    if user.role not in ("admin", *SHOP_ROLES):
        raise Forbidden("Only a clerk or committee member of the community sells goods.")
    cursor, sql, dialect = _cursor()
    if dialect == "postgresql":
        return _sell_in_postgres(cursor, user, lines, member_code, pay_code)
    member, nonce = _find_member(cursor, sql, user, member_code, pay_code)
    household_id, community_id = member.household_id, member.community_id

    take_write_lock(db.session)
    moment = utc_naive()
    at = driver.timestamp(dialect, moment)
    if nonce is not None:
        _use_pay_code(cursor, sql, dialect, nonce, member.resident_id, moment)
    wanted, goods, partner_id = _resolve(cursor, dialect, community_id, user.id, lines)
    for item_id, quantity in wanted.items():
        limit = goods[item_id].monthly_limit
        if limit is not None:
            bought = bought_this_month(household_id, item_id)
            if bought + quantity > limit:
                raise refusal("limit_exceeded", name=goods[item_id].name, limit=limit, bought=bought)
    for item_id, quantity in wanted.items():
        if goods[item_id].daily_places is not None:  # a service's places today (its row is locked)
            taken = sold_today(item_id)
            if taken + quantity > goods[item_id].daily_places:
                raise refusal("no_places_left", name=goods[item_id].name, places=goods[item_id].daily_places,
                              taken=taken, wanted=quantity)
        elif goods[item_id].kind == "goods" and goods[item_id].on_hand < quantity:
            raise refusal("insufficient_stock", name=goods[item_id].name, on_hand=goods[item_id].on_hand,
                          quantity=quantity)
    total = sum(goods[item_id].price_points * quantity for item_id, quantity in wanted.items())

    cursor.execute(sql["receipt_no"], {"community": community_id})
    found = cursor.fetchone()
    receipt_no = found[0] if found is not None else next_receipt_no(community_id)  # the first sale
    identified_by = "pay_code" if pay_code is not None else "member_code"
    cursor.execute(sql["receipt"], {"community": community_id, "receipt_no": receipt_no, "household": household_id,
                                    "resident": member.resident_id, "identified_by": identified_by, "total": total,
                                    "clerk": user.id, "at": at, "partner": partner_id})
    receipt_id = cursor.fetchone()[0]
    sale_lines = []
    actor = user.actor
    note = f"小票 {receipt_no} 号"
    integrity_error = driver.integrity_error(db.session)
    for item_id, quantity in wanted.items():
        name, price = goods[item_id].name, goods[item_id].price_points
        cursor.execute(sql["line"], {"receipt": receipt_id, "item": item_id, "name": name, "quantity": quantity,
                                     "unit_points": price})
        sale_lines.append(SaleLine(cursor.fetchone()[0], item_id, name, quantity, price))
        if goods[item_id].kind == "service":  # no shelf, no lots
            continue
        try:  # the trigger moves on_hand; the CHECK refuses a shelf below zero
            cursor.execute(sql["movement"], {"item": item_id, "community": community_id, "quantity": -quantity,
                                             "note": note, "receipt": receipt_id, "actor": actor, "at": at})
        except integrity_error as exc:  # not while the goods are locked; kept as the last guard
            if "on_hand" in str(exc):
                raise refusal("insufficient_stock_late", name=name, quantity=quantity) from exc
            raise
        consume_fifo(item_id, cursor.fetchone()[0], quantity)
        row = goods[item_id]
        tell_low_stock(community_id, item_id, name, row.on_hand, row.on_hand - quantity, row.low_stock_threshold)

    wallet = member.wallet
    try:
        tx = ledgering.post(community_id, [ledger.Leg(wallet, -total),
                                           ledger.Leg(seller_points(community_id, partner_id), total)],
                            kind="redemption", memo=f"爱心超市兑换 · 小票 {receipt_no} 号", actor=actor,
                            reference=f"redemption:{receipt_id}", now=moment)
    except ledger.InsufficientFunds as exc:
        raise refusal("insufficient_points", balance=exc.balance, total=total) from exc
    balance_after = tx.balances[wallet]
    cursor.execute(sql["settle"], {"balance": balance_after, "tx": tx.id, "receipt": receipt_id})
    record("redemption.create", user=user, community_id=community_id, target=f"redemption:{receipt_id}",
           receipt_no=receipt_no, household_id=household_id, total_points=total, transaction_id=tx.id,
           lines={str(i): q for i, q in wanted.items()}, identified_by=identified_by, partner_id=partner_id)
    # The household is told its card or pay code was used (a stolen code shows at once).
    notify_household(household_id, community_id, "pay_code_used",
                     {"redemption_id": receipt_id, "receipt_no": receipt_no, "points": total,
                      "balance": balance_after, "identified_by": identified_by}, moment=moment)
    return Sale(receipt_id, receipt_no, community_id, member.community_code, household_id, member.resident_id,
                identified_by, total, balance_after, tx.id, moment, sale_lines, partner_id=partner_id)


# --- PostgreSQL: the same sale in one server function -----------------------------------------------

def sale_arguments(user, lines: list[dict], member_code: str | None, pay_code: str | None) -> dict:
    """What ``shop_sell`` is given: the sale as asked, and what the application knows that the
    database does not (the clock and its calendar, the pay code's signature, the text gateway)."""
    from flask import has_request_context, request

    from timebank.notices import sms
    from timebank.shop.operations import day_bounds, month_bounds

    resident_id = nonce = None
    if pay_code is not None:
        resident_id, nonce = read_pay_code(pay_code)
    moment = utc_naive()
    month_start, month_end = month_bounds(to_local(moment).date())
    day_start, day_end = day_bounds()
    return {
        "role": user.role, "user_community_id": user.community_id, "clerk_id": user.id, "actor": user.actor,
        "username": user.username, "address": request.remote_addr if has_request_context() else None,
        "member_code": member_code, "resident_id": resident_id, "nonce": nonce,
        "identified_by": "pay_code" if pay_code is not None else "member_code",
        "lines": [{"item_id": line.get("item_id"), "barcode": line.get("barcode") if line.get("item_id") is None
                   else None, "quantity": int(line["quantity"])} for line in lines],
        "at": moment.isoformat(sep=" "), "month": to_local(moment).strftime("%Y-%m"),  # the month close's month
        "month_start": month_start.isoformat(sep=" "), "month_end": month_end.isoformat(sep=" "),
        "day_start": day_start.isoformat(sep=" "), "day_end": day_end.isoformat(sep=" "),
        "texting": sms.enabled(),
    }


def _sell_in_postgres(cursor, user, lines, member_code, pay_code) -> Sale:
    import psycopg

    arguments = sale_arguments(user, lines, member_code, pay_code)
    try:  # in the API's sale, BEGIN goes with it (timebank.core.database)
        cursor = execute_first_write(db.session, cursor, "SELECT shop_sell(%(p)s::jsonb)",
                                     {"p": json.dumps(arguments, ensure_ascii=False)})
    except psycopg.Error as exc:
        diag = exc.diag
        # The function's refusals: the code as the message, the figures as JSON in the detail.
        if exc.sqlstate in ("TB404", "TB409") and diag.message_primary in refusals.BY_CODE:
            raise refusal(diag.message_primary, **json.loads(diag.message_detail or "{}")) from None
        raise
    return _sale_from(cursor.fetchone()[0], arguments)


def _sale_from(done: dict, arguments: dict) -> Sale:
    return Sale(done["id"], done["receipt_no"], done["community_id"], done["community_code"], done["household_id"],
                done["resident_id"], arguments["identified_by"], done["total"], done["balance_after"],
                done["transaction_id"], datetime.fromisoformat(arguments["at"]),
                [SaleLine(line["id"], line["item_id"], line["name"], line["quantity"], line["unit_points"])
                 for line in done["lines"]], partner_id=done["partner_id"])


def redeem(user, *, lines: list[dict], member_code: str | None = None, pay_code: str | None = None) -> Redemption:
    """:func:`sell`, and the receipt it wrote as a model (for the pages, the demo and reports)."""
    return db.session.get(Redemption, sell(user, lines=lines, member_code=member_code, pay_code=pay_code).id)
