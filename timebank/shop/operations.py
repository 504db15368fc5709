"""The love supermarket (爱心超市): goods, stock, donations, pay codes, redemptions, voids, returns.

Plain functions: they flush and never commit. See :mod:`timebank.shop.models` for the design.

Locking (so concurrent tills cannot oversell or overspend, and nothing deadlocks): every write takes
its locks in one order -- the receipt row (void, return), then the item rows in id order
(``SELECT ... FOR UPDATE``), then the community's receipt counter, then the ledger's writer lock
(inside :func:`timebank.core.ledgering.post`). On SQLite every transaction is ``BEGIN IMMEDIATE``, so
writers are serialised anyway and ``FOR UPDATE`` is a no-op.
"""

from __future__ import annotations

import io
import secrets
from datetime import date, datetime, timedelta

from flask import current_app, g, has_request_context
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import and_, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

import ledger
from ledger import driver
from ledger.models import Account, Posting
from timebank.core import accounts, clock, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import local_zone, now, utc_naive
from timebank.core.errors import Conflict, DomainError, Forbidden, Gone, NotFound, ValidationFailed
from timebank.core.exports import csv_writer
from timebank.core.extensions import db
from timebank.core.policy import STAFF, require_community, require_person
from timebank.core.users import User
from timebank.notices.operations import notify_staff
from timebank.people.models import Community
from timebank.shop.models import (
    DONOR_KINDS,
    ITEM_KINDS,
    LOT_REASONS,
    MAX_MOVEMENT_UNITS,
    MAX_ON_HAND,
    STAFF_REASONS,
    Item,
    ItemPriceChange,
    LotConsumption,
    PartnerClerk,
    PartnerShop,
    PayCode,
    ReceiptCounter,
    Redemption,
    RedemptionLine,
    RedemptionReturn,
    RedemptionReturnLine,
    StockLot,
    StockMovement,
    UsedPayCode,
)
from timebank.shop.refusals import refusal

#: Roles that work the till and the stock room.
SHOP_ROLES = ("clerk", "committee")
#: A pay code lives at most this long (the phone shows a fresh one).
PAY_CODE_MAX_SECONDS = 120
_PAY_CODE_SALT = "timebank.shop.pay-code"
#: Digits of a pay code's short number.
SHORT_CODE_DIGITS = 8


# --- access -----------------------------------------------------------------------------------

def require_shop_staff(user: User, community_id: int) -> None:
    """A clerk or committee member of this community (or admin) may sell, stock and correct."""
    require_community(user, community_id, *SHOP_ROLES)


def require_browse(user: User, community_id: int) -> None:
    """Staff of the community (supervisors too) and its residents may see goods, prices and stock."""
    if user.role == "admin" or (user.role in STAFF and user.community_id == community_id):
        return
    if user.role == "resident" and user.resident is not None \
            and user.resident.household.community_id == community_id:
        return
    raise Forbidden("This belongs to another community.")


def require_staff_view(user: User, community_id: int) -> None:
    """Any staff of the community (supervisors read everything) or admin."""
    require_community(user, community_id)


def partner_of(user: User) -> int | None:
    """The partner shop (爱心商家) a clerk login belongs to, or None (the community's own staff)."""
    if user.role != "clerk" or user.id is None:
        return None
    return db.session.execute(select(PartnerClerk.partner_id).where(PartnerClerk.user_id == user.id)).scalar()


def can_see_redemption(user: User, redemption: Redemption) -> bool:
    if user.role == "resident":
        return user.household_id == redemption.household_id
    if user.role == "admin":
        return True
    if user.role not in STAFF or user.community_id != redemption.community_id:
        return False
    partner = partner_of(user)
    return partner is None or partner == redemption.partner_id


def seller_points(community_id: int, partner_id: int | None) -> str:
    """The account a sale's points go to: the supermarket's, or the partner shop's."""
    if partner_id is None:
        return accounts.supermarket_points(community_id)
    return accounts.partner_points(community_id, partner_id)


def visible_redemption(user: User, redemption_id: int) -> Redemption:
    redemption = db.session.get(Redemption, redemption_id)
    if redemption is None or not can_see_redemption(user, redemption):
        raise NotFound("No such receipt.")
    return redemption


# --- goods ------------------------------------------------------------------------------------

def get_item(item_id: int) -> Item:
    item = db.session.get(Item, item_id)
    if item is None:
        raise NotFound("No such item.")
    return item


def _check_kind(kind: str, daily_places: int | None) -> None:
    if kind not in ITEM_KINDS:
        raise ValidationFailed(errors={"kind": [f"Must be one of {', '.join(ITEM_KINDS)}."]})
    if daily_places is not None and kind != "service":
        raise ValidationFailed(errors={"daily_places": ["Only a service has places per day."]})


def _check_partner(community_id: int, user: User, partner_id: int | None) -> int | None:
    """The partner an item goes to: one of the community's; a partner's clerk adds only its own."""
    own = partner_of(user)
    if own is not None:
        if partner_id not in (None, own):
            raise Forbidden("A partner shop's clerk adds goods of that shop only.")
        return own
    if partner_id is not None:
        partner = db.session.get(PartnerShop, partner_id)
        if partner is None or partner.community_id != community_id:
            raise NotFound("No such partner shop in this community.", code="unknown_partner")
    return partner_id


def require_item_staff(user: User, item: Item) -> None:
    """Staff who may change an item or its stock: the community's shop staff; a partner's clerk for
    the partner's goods only."""
    require_shop_staff(user, item.community_id)
    own = partner_of(user)
    if own is not None and own != item.partner_id:
        raise NotFound("No such item.")


def create_item(community: Community, user: User, *, sku: str, name: str, price_points: int,
                barcode: str | None = None, monthly_limit_per_household: int | None = None,
                low_stock_threshold: int = 0, kind: str = "goods", daily_places: int | None = None,
                partner_id: int | None = None) -> Item:
    _check_kind(kind, daily_places)
    partner_id = _check_partner(community.id, user, partner_id)
    _unique_codes(community.id, sku=sku, barcode=barcode)
    moment = utc_naive()
    item = Item(community_id=community.id, sku=sku, name=name, price_points=price_points, barcode=barcode or None,
                monthly_limit_per_household=monthly_limit_per_household,
                low_stock_threshold=low_stock_threshold or 0, on_hand=0, active=True, created_at=moment,
                kind=kind, daily_places=daily_places, partner_id=partner_id)
    db.session.add(item)
    db.session.flush()
    db.session.add(ItemPriceChange(item_id=item.id, price_points=price_points, previous_points=None,
                                   effective_at=moment, actor=user.actor, note="first price"))
    record("item.create", user=user, target=f"item:{item.id}", community_id=community.id, sku=sku, name=name,
           price_points=price_points, kind=kind, daily_places=daily_places, partner_id=partner_id)
    db.session.flush()
    return item


def _unique_codes(community_id: int, *, sku: str | None = None, barcode: str | None = None,
                  except_id: int | None = None) -> None:
    def taken(column, value):
        query = select(Item.id).where(Item.community_id == community_id, column == value)
        if except_id is not None:
            query = query.where(Item.id != except_id)
        return db.session.execute(query).first() is not None

    if sku is not None and taken(Item.sku, sku):
        raise Conflict(f"The SKU {sku!r} is taken in this community.", code="sku_taken")
    if barcode and taken(Item.barcode, barcode):
        raise Conflict(f"The barcode {barcode!r} is taken in this community.", code="barcode_taken")


def change_price(item: Item, user: User, price_points: int, note: str = "") -> Item:
    """A new price applies from now on; receipts keep the unit price they were sold at."""
    if price_points == item.price_points:
        return item
    previous = item.price_points
    item.price_points = price_points
    db.session.add(ItemPriceChange(item_id=item.id, price_points=price_points, previous_points=previous,
                                   effective_at=utc_naive(), actor=user.actor, note=note or ""))
    record("item.price_change", user=user, target=f"item:{item.id}", community_id=item.community_id,
           previous_points=previous, price_points=price_points, note=note)
    db.session.flush()
    return item


def update_item(item: Item, user: User, **changes) -> Item:
    """Change name, barcode, monthly limit, low-stock threshold or active flag (and price, via
    :func:`change_price`)."""
    price = changes.pop("price_points", None)
    if "daily_places" in changes:
        _check_kind(item.kind, changes["daily_places"])
    if "barcode" in changes and changes["barcode"]:
        _unique_codes(item.community_id, barcode=changes["barcode"], except_id=item.id)
    before = {key: getattr(item, key) for key in changes}
    for key, value in changes.items():
        setattr(item, key, value if key != "barcode" else (value or None))
    if changes:
        record("item.update", user=user, target=f"item:{item.id}", community_id=item.community_id,
               before=before, after=changes)
    if price is not None:
        change_price(item, user, price)
    db.session.flush()
    return item


def price_history(item: Item) -> list[ItemPriceChange]:
    return list(db.session.execute(
        select(ItemPriceChange).where(ItemPriceChange.item_id == item.id).order_by(ItemPriceChange.id)
    ).scalars())


def low_stock(community_id: int) -> list[Item]:
    return list(db.session.execute(
        select(Item).where(Item.community_id == community_id, Item.active.is_(True), Item.kind == "goods",
                           Item.on_hand <= Item.low_stock_threshold)
        .order_by(Item.on_hand, Item.id)
    ).scalars())


# --- stock ------------------------------------------------------------------------------------

_LOCK_ITEMS = (select(Item).where(Item.id.in_(bindparam("ids", expanding=True))).order_by(Item.id)
               .with_for_update().execution_options(populate_existing=True))


def _lock_items(item_ids) -> dict[int, Item]:
    """Lock the items' rows (in id order, so two tills never deadlock) and reload them."""
    rows = db.session.execute(_LOCK_ITEMS, {"ids": sorted(set(item_ids))}).scalars()
    return {item.id: item for item in rows}


def _insufficient_stock(item: Item, wanted: int) -> DomainError:
    return refusal("insufficient_stock", name=item.name, on_hand=item.on_hand, quantity=wanted)


# Stock movements of staff, voids and returns (a sale has its own, in operations.sale): statements
# built once and executed as Core statements, without a unit-of-work flush per row.
_INSERT_MOVEMENT = insert(StockMovement.__table__).returning(StockMovement.__table__.c.id)
# The open lots of an item, oldest first (what they hold is kept by triggers: StockLot), and a
# consumption of one; on the driver's cursor, since every sale at the till runs them.
_LOT_SQL = driver.per_dialect({
    "open_lots": "SELECT lot_id, remaining FROM stock_lots WHERE item_id = {item} AND remaining > 0 ORDER BY lot_id",
    "consume": "INSERT INTO stock_lot_consumptions (lot_id, movement_id, quantity)"
               " VALUES ({lot}, {movement}, {quantity})",
})


def _move(item: Item, delta: int, reason: str, actor: str | None, *, redemption_id: int | None = None,
          donor: str | None = None, donor_kind: str | None = None, note: str = "") -> int:
    """Append one movement and return its id; the trigger moves on_hand and the CHECK refuses a
    shelf below zero."""
    try:
        movement_id = db.session.execute(_INSERT_MOVEMENT, {
            "item_id": item.id, "community_id": item.community_id, "quantity": delta, "reason": reason,
            "donor": donor, "donor_kind": donor_kind, "note": note or "", "redemption_id": redemption_id,
            "actor": actor, "created_at": utc_naive()}).scalar_one()
    except IntegrityError as exc:
        if "on_hand" in str(exc.orig):
            raise _insufficient_stock(item, -delta) from exc
        raise
    db.session.expire(item, ["on_hand"])
    if delta < 0 and reason in ("spoilage", "redemption", "adjustment"):
        consume_fifo(item.id, movement_id, -delta)
    return movement_id


def take_from_lots(item_id: int, open_lots, units: int) -> list[tuple[int, int]]:
    """[(lot id, units taken)]: outgoing units attributed to the oldest of ``open_lots`` ((lot id,
    units left), oldest first) that still hold some (the donor trail)."""
    taken = []
    for lot_id, left in open_lots:
        if units == 0:
            break
        take = min(units, int(left))
        taken.append((lot_id, take))
        units -= take
    if units:  # on_hand and the lots disagree: refuse rather than lose the donor trail
        raise RuntimeError(f"stock lots of item {item_id} hold fewer units than on_hand")
    return taken


def consume_fifo(item_id: int, movement_id: int, units: int) -> None:
    """Attribute ``units`` leaving by movement ``movement_id`` to the item's oldest open lots (the
    donor trail). The movement is written already; so is any ORM change (flushed first)."""
    db.session.flush()
    cursor, dialect = driver.cursor(db.session)
    sql = _LOT_SQL[dialect]
    cursor.execute(sql["open_lots"], {"item": item_id})
    cursor.executemany(sql["consume"], [{"lot": lot_id, "movement": movement_id, "quantity": take}
                                        for lot_id, take in take_from_lots(item_id, cursor.fetchall(), units)])


def _give_back_to_lots(redemption_id: int, item_id: int, movement_id: int, units: int) -> None:
    """A void or return puts units back into the lots this receipt took them from (newest first)."""
    net = func.sum(LotConsumption.quantity)
    rows = db.session.execute(
        select(LotConsumption.lot_id, net.label("net"))
        .join(StockMovement, StockMovement.id == LotConsumption.movement_id)
        .where(StockMovement.redemption_id == redemption_id, StockMovement.item_id == item_id)
        .group_by(LotConsumption.lot_id)
        .having(net > 0)
        .order_by(LotConsumption.lot_id.desc())
    ).all()
    for lot_id, taken in rows:
        if units == 0:
            break
        back = min(units, int(taken))
        db.session.add(LotConsumption(lot_id=lot_id, movement_id=movement_id, quantity=-back))
        units -= back
    db.session.flush()


def record_movement(item: Item, user: User, *, quantity: int, reason: str, donor: str | None = None,
                    donor_kind: str | None = None, note: str = "") -> StockMovement:
    """A staff stock change: donation or purchase in, spoilage out, adjustment either way."""
    errors = {}
    if reason not in STAFF_REASONS:
        errors["reason"] = [f"Must be one of {', '.join(STAFF_REASONS)}."]
    elif reason in ("donation", "purchase") and quantity <= 0:
        errors["quantity"] = ["Donations and purchases bring a positive number of units."]
    elif quantity == 0:
        errors["quantity"] = ["Must not be zero."]
    elif not -MAX_MOVEMENT_UNITS <= quantity <= MAX_MOVEMENT_UNITS:
        errors["quantity"] = [f"At most {MAX_MOVEMENT_UNITS} units at a time."]
    if reason == "donation" and not (donor or "").strip():
        errors["donor"] = ["A donation names its donor, so it can be thanked and traced."]
    if reason != "donation" and donor:
        errors["donor"] = ["Only donations have a donor."]
    if donor_kind is not None and donor_kind not in DONOR_KINDS:
        errors["donor_kind"] = [f"Must be one of {', '.join(DONOR_KINDS)}."]
    if errors:
        raise ValidationFailed(errors=errors)
    if item.is_service:
        raise Conflict(f"{item.name} is a service: it has no stock.", code="not_stocked")
    # Spoilage always removes: "3 spoiled" and "-3 spoiled" mean the same.
    delta = -abs(quantity) if reason == "spoilage" else quantity
    item = _lock_items([item.id])[item.id]
    if item.on_hand + delta < 0:
        raise _insufficient_stock(item, -delta)
    if item.on_hand + delta > MAX_ON_HAND:
        raise ValidationFailed(errors={"quantity": [f"A shelf holds at most {MAX_ON_HAND} units."]})
    before = item.on_hand
    movement = db.session.get(StockMovement, _move(
        item, delta, reason, user.actor, donor=(donor or "").strip() or None,
        donor_kind=(donor_kind or ("other" if reason == "donation" else None)), note=note))
    tell_low_stock(item.community_id, item.id, item.name, before, before + delta, item.low_stock_threshold)
    record("stock.movement", user=user, target=f"item:{item.id}", community_id=item.community_id,
           movement_id=movement.id, reason=reason, quantity=delta, donor=donor, note=note)
    return movement


def tell_low_stock(community_id: int, item_id: int, name: str, before: int, after: int, threshold: int) -> None:
    """Low stock: when the units on the shelf fall from above the item's ``low_stock_threshold`` to it
    or below (a sale, spoilage, a correction), the community's clerks get a notice; once per fall,
    so goods that stay low are not told again until they were restocked above the threshold."""
    if before > threshold >= after:
        notify_staff(community_id, ("clerk",), "low_stock",
                     {"item_id": item_id, "name": name, "on_hand": after, "threshold": threshold})


def movements(community_id: int, item_id: int | None = None):
    query = select(StockMovement).where(StockMovement.community_id == community_id)
    if item_id is not None:
        query = query.where(StockMovement.item_id == item_id)
    return query


# --- donations and donors -----------------------------------------------------------------------

def _out_by_lot(lot_ids) -> dict[int, dict[str, int]]:
    """Net units that left each lot, by why they left (a void or return counts against its redemption)."""
    if not lot_ids:
        return {}
    outflow = StockMovement.__table__.alias("outflow")
    reason = case((outflow.c.reason.in_(("void", "return")), "redemption"), else_=outflow.c.reason)
    rows = db.session.execute(
        select(LotConsumption.lot_id, reason.label("why"), func.sum(LotConsumption.quantity))
        .join(outflow, outflow.c.id == LotConsumption.movement_id)
        .where(LotConsumption.lot_id.in_(list(lot_ids)))
        .group_by(LotConsumption.lot_id, reason)
    ).all()
    result: dict[int, dict[str, int]] = {}
    for lot_id, why, units in rows:
        result.setdefault(lot_id, {})[why] = int(units)
    return result


def donation_rows(movements_list) -> list[dict]:
    out = _out_by_lot([m.id for m in movements_list])
    items = {i.id: i for i in db.session.execute(
        select(Item).where(Item.id.in_({m.item_id for m in movements_list}))).scalars()} if movements_list else {}
    rows = []
    for m in movements_list:
        used = out.get(m.id, {})
        redeemed = used.get("redemption", 0)
        spoiled = used.get("spoilage", 0)
        adjusted = used.get("adjustment", 0)
        rows.append({
            "id": m.id, "item_id": m.item_id, "item_name": items[m.item_id].name, "sku": items[m.item_id].sku,
            "donor": m.donor, "donor_kind": m.donor_kind, "quantity": m.quantity, "note": m.note,
            "created_at": m.created_at, "units_redeemed": redeemed, "units_spoiled": spoiled,
            "units_adjusted_out": adjusted, "units_out": redeemed + spoiled + adjusted,
            "units_remaining": m.quantity - (redeemed + spoiled + adjusted),
        })
    return rows


def donations_query(community_id: int, donor: str | None = None):
    query = select(StockMovement).where(StockMovement.community_id == community_id,
                                        StockMovement.reason == "donation")
    if donor:
        query = query.where(StockMovement.donor == donor)
    return query


def donation_trail(donation: StockMovement) -> list[dict]:
    """Where a donation's units went, and when: each outgoing movement (and each give-back)."""
    rows = db.session.execute(
        select(LotConsumption.quantity, StockMovement.id, StockMovement.reason, StockMovement.created_at,
               Redemption.receipt_no)
        .join(StockMovement, StockMovement.id == LotConsumption.movement_id)
        .outerjoin(Redemption, Redemption.id == StockMovement.redemption_id)
        .where(LotConsumption.lot_id == donation.id)
        .order_by(LotConsumption.id)
    ).all()
    return [{"movement_id": mid, "reason": reason, "units": units, "created_at": created, "receipt_no": receipt_no}
            for units, mid, reason, created, receipt_no in rows]


def donors(community_id: int) -> list[dict]:
    """Each donor with what they gave and how much of it has gone out: for public thanks."""
    gifts = list(db.session.execute(donations_query(community_id).order_by(StockMovement.id)).scalars())
    summary: dict[str, dict] = {}
    for row in donation_rows(gifts):
        entry = summary.setdefault(row["donor"], {
            "donor": row["donor"], "donor_kind": row["donor_kind"], "donations": 0, "units_given": 0,
            "units_redeemed": 0, "units_out": 0, "first_donation_at": row["created_at"],
            "last_donation_at": row["created_at"], "items": []})
        entry["donations"] += 1
        entry["units_given"] += row["quantity"]
        entry["units_redeemed"] += row["units_redeemed"]
        entry["units_out"] += row["units_out"]
        entry["last_donation_at"] = row["created_at"]
        if row["item_name"] not in entry["items"]:
            entry["items"].append(row["item_name"])
    return sorted(summary.values(), key=lambda e: (-e["units_given"], e["donor"]))


# --- pay codes --------------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_PAY_CODE_SALT)


def _new_pay_code(user: User) -> tuple[str, str, datetime]:
    """A signed code for the resident's phone (resident id, a random nonce, the expiry), its nonce
    and its expiry."""
    if user.resident_id is None:
        raise Forbidden("Pay codes are for residents.")
    ttl = min(int(current_app.config.get("TIMEBANK_PAY_CODE_TTL_SECONDS", PAY_CODE_MAX_SECONDS)),
              PAY_CODE_MAX_SECONDS)
    expires = now() + timedelta(seconds=ttl)
    nonce = secrets.token_urlsafe(12)
    return _serializer().dumps([user.resident_id, nonce, int(expires.timestamp())]), nonce, expires


def issue_pay_code(user: User) -> tuple[str, datetime]:
    """A signed code for the resident's phone: resident id, a random nonce and an expiry; works once.
    Nothing is stored (``GET /api/v1/me/pay-code``); :func:`issue_short_pay_code` adds a number to type."""
    code, _nonce, expires = _new_pay_code(user)
    return code, expires


def is_short_pay_code(text: str) -> bool:
    """Whether ``text`` is a pay code's short number (eight digits; spaces and dashes are ignored).
    Card codes start with a letter, signed codes hold a dot: neither is all digits."""
    digits = text.replace(" ", "").replace("-", "")
    return len(digits) == SHORT_CODE_DIGITS and digits.isascii() and digits.isdigit()


def _random_short_code() -> str:
    return f"{secrets.randbelow(10 ** SHORT_CODE_DIGITS):0{SHORT_CODE_DIGITS}d}"


def issue_short_pay_code(user: User) -> dict:
    """A pay code with its short number for typing at the till: the signed code for the QR, and eight
    random digits that stand for it until it expires (stored: a write, so asked for with POST).

    The number is unique among valid codes: a number still held by a valid code is drawn again; one
    held by an expired code is taken from it. The unique index is the backstop for two phones that
    draw the same number at the same moment (the loser draws again, in a savepoint). Rows of this
    resident that expired more than a day ago are removed."""
    code, nonce, expires = _new_pay_code(user)
    moment = utc_naive()
    expires_naive = utc_naive(expires)
    db.session.execute(delete(PayCode).where(PayCode.resident_id == user.resident_id,
                                             PayCode.expires_at < moment - timedelta(days=1)))
    for _attempt in range(20):
        short = _random_short_code()
        holder = db.session.execute(select(PayCode).where(PayCode.short_code == short)).scalar_one_or_none()
        if holder is not None:
            if holder.expires_at > moment:
                continue  # in use: draw again
            holder.short_code = None  # expired: the number is free again
            db.session.flush()
        row = PayCode(resident_id=user.resident_id, short_code=short, nonce=nonce, issued_at=moment,
                      expires_at=expires_naive)
        try:
            with db.session.begin_nested():
                db.session.add(row)
                db.session.flush()
        except IntegrityError:
            continue
        return {"id": row.id, "pay_code": code, "short_code": short, "expires_at": expires}
    raise Conflict("No free pay code number just now; try again.", code="pay_code_busy")


def _unknown_pay_code() -> ValidationFailed:
    if has_request_context():
        g.pay_code_missed = True  # counted against guessing (timebank.shop.pay_code_guess_limit)
    return ValidationFailed("This is not a pay code issued here.", code="pay_code_invalid",
                            errors={"pay_code": ["Not a valid pay code."]})


def _expired() -> Gone:
    return Gone("The pay code has expired; ask for a fresh one on the phone.", code="pay_code_expired")


def read_pay_code(code: str) -> tuple[int, str]:
    """(resident id, nonce) of a valid pay code: the signed code from the QR, or its short number."""
    if is_short_pay_code(code):
        found = db.session.execute(select(PayCode.resident_id, PayCode.nonce, PayCode.expires_at).where(
            PayCode.short_code == code.replace(" ", "").replace("-", ""))).one_or_none()
        if found is None:
            raise _unknown_pay_code()
        if utc_naive() >= found.expires_at:
            raise _expired()
        return found.resident_id, found.nonce
    try:
        resident_id, nonce, expires = _serializer().loads(code)
        resident_id, expires = int(resident_id), int(expires)
    except (BadSignature, ValueError, TypeError):
        raise _unknown_pay_code() from None
    if now().timestamp() > expires:
        raise _expired()
    return resident_id, str(nonce)


def pay_code_spent(nonce: str) -> bool:
    return db.session.execute(select(UsedPayCode.id).where(UsedPayCode.nonce == nonce)).first() is not None


def check_pay_code(code: str) -> int:
    """The resident of a pay code that can still pay: valid, and not spent. The till's scan step asks
    this, so a spent code is refused when it is scanned, not only when the goods are charged (the
    sale checks again under its lock)."""
    resident_id, nonce = read_pay_code(code)
    if pay_code_spent(nonce):
        raise refusal("pay_code_used")
    return resident_id


def pay_code_state(user: User, code_id: int) -> str:
    """``valid``, ``spent`` or ``expired``: what became of one of the resident's own pay codes (the
    phone asks, to show the new balance after a sale). Another resident's code is 404."""
    row = db.session.get(PayCode, code_id)
    if row is None or row.resident_id != user.resident_id:
        raise NotFound("No such pay code.")
    if pay_code_spent(row.nonce):
        return "spent"
    return "expired" if utc_naive() >= row.expires_at else "valid"


# --- redemption -------------------------------------------------------------------------------

def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The calendar month (local time) holding ``month``, as naive UTC [start, end)."""
    return clock.month_bounds(month.strftime("%Y-%m"))


def bought_this_month(household_id: int, item_id: int) -> int:
    start, end = month_bounds(now().astimezone(local_zone()).date())
    return int(db.session.execute(
        select(func.coalesce(func.sum(RedemptionLine.quantity - RedemptionLine.returned_quantity), 0))
        .join(Redemption, Redemption.id == RedemptionLine.redemption_id)
        .where(Redemption.household_id == household_id, RedemptionLine.item_id == item_id,
               Redemption.status == "completed", Redemption.created_at >= start, Redemption.created_at < end)
    ).scalar_one())


def day_bounds() -> tuple[datetime, datetime]:
    """Today (the deployment's calendar day, local time) as naive UTC [start, end)."""
    zone = local_zone()
    day = now().astimezone(zone).date()
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return utc_naive(start), utc_naive(datetime.combine(day + timedelta(days=1), datetime.min.time(), zone))


def sold_today(item_id: int) -> int:
    """Units of an item taken today on receipts that are not voided, less those returned: the places
    of a service used today."""
    start, end = day_bounds()
    return int(db.session.execute(
        select(func.coalesce(func.sum(RedemptionLine.quantity - RedemptionLine.returned_quantity), 0))
        .join(Redemption, Redemption.id == RedemptionLine.redemption_id)
        .where(RedemptionLine.item_id == item_id, Redemption.status == "completed",
               Redemption.created_at >= start, Redemption.created_at < end)
    ).scalar_one())


def places_left_today(item: Item) -> int | None:
    """A service's places still free today; None for goods and for a service without a limit."""
    if not item.is_service or item.daily_places is None:
        return None
    return max(item.daily_places - sold_today(item.id), 0)


_COUNTERS = ReceiptCounter.__table__
_TAKE_RECEIPT_NO = (
    update(_COUNTERS).where(_COUNTERS.c.community_id == bindparam("community"))
    .values(last_no=_COUNTERS.c.last_no + 1).returning(_COUNTERS.c.last_no)
)


def next_receipt_no(community_id: int) -> int:
    """Take the community's next number (in the redemption's transaction). The UPDATE locks the
    counter row until commit, so numbers are gap-free and two tills never share one."""
    number = db.session.execute(_TAKE_RECEIPT_NO, {"community": community_id}).scalar_one_or_none()
    if number is None:  # the community's first sale
        if db.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        db.session.execute(upsert(ReceiptCounter).values(community_id=community_id, last_no=0)
                           .on_conflict_do_nothing())
        number = db.session.execute(_TAKE_RECEIPT_NO, {"community": community_id}).scalar_one()
    return number


def _lock_redemption(redemption_id: int, user: User) -> Redemption:
    redemption = db.session.execute(
        select(Redemption).where(Redemption.id == redemption_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if redemption is None or not can_see_redemption(user, redemption):
        raise NotFound("No such receipt.")
    require_shop_staff(user, redemption.community_id)
    require_person(user)  # person_required: voids and returns are counted per person
    if user.household_id is not None and user.household_id == redemption.household_id:
        # self_approval: a clerk does not void or take back goods of a receipt of their own household.
        raise Forbidden("Nobody voids or takes back a receipt of their own household.", code="self_approval")
    if redemption.status == "voided":
        raise Conflict(f"Receipt {redemption.receipt_no} is already voided.", code="already_voided")
    return redemption


def charged_wallet(redemption: Redemption) -> str:
    """The account the sale charged: the household's wallet, or a guest's wallet in the community
    (:mod:`timebank.people.memberships`). Read from the sale's own transaction."""
    code = db.session.execute(
        select(Account.code).join(Posting, Posting.account_id == Account.id)
        .where(Posting.transaction_id == redemption.transaction_id, Posting.amount < 0)).scalar()
    return code or accounts.household_points(redemption.household_id)


def void(redemption_id: int, user: User, reason: str) -> tuple[Redemption, int]:
    """Cancel a receipt: points and stock back, as compensating entries.

    Without returns the charge is reversed (:func:`timebank.core.ledgering.reverse`); after returns,
    only the remainder is still charged, so the void gives back exactly that (a ``void``
    transaction referencing the receipt) and puts back the units not yet returned.
    """
    redemption = _lock_redemption(redemption_id, user)
    remaining_points = redemption.total_points - redemption.returned_points
    if remaining_points == 0:
        raise Conflict("Every line of this receipt was returned; nothing is left to void.", code="fully_returned")
    lines = list(db.session.execute(
        select(RedemptionLine).where(RedemptionLine.redemption_id == redemption.id)
        .order_by(RedemptionLine.id).execution_options(populate_existing=True)).scalars())
    items = _lock_items([line.item_id for line in lines])
    memo = f"作废小票 {redemption.receipt_no} 号（原因：{reason}）"
    reference = f"redemption:{redemption.id}"
    try:
        if redemption.returned_points == 0:
            tx = ledgering.reverse(redemption.community_id, redemption.transaction_id, kind="void", memo=memo,
                                   actor=user.actor, reference=reference)
        else:
            tx = ledgering.post(redemption.community_id, [
                ledger.Leg(seller_points(redemption.community_id, redemption.partner_id), -remaining_points),
                ledger.Leg(charged_wallet(redemption), remaining_points)],
                kind="void", memo=memo, actor=user.actor, reference=reference)
    except ledger.AlreadyReversed as exc:
        raise Conflict("This receipt is already voided.", code="already_voided") from exc
    for line in lines:
        left = line.quantity - line.returned_quantity
        if left and not items[line.item_id].is_service:  # a service has no stock to put back
            movement_id = _move(items[line.item_id], left, "void", user.actor, redemption_id=redemption.id,
                                note=f"作废小票 {redemption.receipt_no} 号")
            _give_back_to_lots(redemption.id, line.item_id, movement_id, left)
    redemption.status = "voided"
    redemption.voided_at = utc_naive()
    redemption.void_reason = reason
    redemption.void_transaction_id = tx.id
    record("redemption.void", user=user, target=f"redemption:{redemption.id}",
           community_id=redemption.community_id, receipt_no=redemption.receipt_no, reason=reason,
           refunded_points=remaining_points, transaction_id=tx.id)
    db.session.flush()
    return redemption, remaining_points


def return_goods(redemption_id: int, user: User, lines: list[dict], reason: str) -> RedemptionReturn:
    """Take back some goods of a receipt: their points (at the receipt's prices) and stock come back."""
    redemption = _lock_redemption(redemption_id, user)
    wanted: dict[int, int] = {}
    for line in lines:
        wanted[line["item_id"]] = wanted.get(line["item_id"], 0) + int(line["quantity"])
    by_item = {line.item_id: line for line in db.session.execute(
        select(RedemptionLine).where(RedemptionLine.redemption_id == redemption.id)
        .execution_options(populate_existing=True)).scalars()}
    for item_id, quantity in wanted.items():
        line = by_item.get(item_id)
        left = 0 if line is None else line.quantity - line.returned_quantity
        if quantity > left:
            raise Conflict(f"Item {item_id}: {left} can still be returned from this receipt; {quantity} asked.",
                           code="return_exceeds_purchase")
    items = _lock_items(wanted)
    points = sum(by_item[i].unit_points * q for i, q in wanted.items())
    tx = ledgering.post(redemption.community_id, [
        ledger.Leg(seller_points(redemption.community_id, redemption.partner_id), -points),
        ledger.Leg(charged_wallet(redemption), points)],
        kind="return", memo=f"小票 {redemption.receipt_no} 号退货（原因：{reason}）", actor=user.actor,
        reference=f"redemption:{redemption.id}")
    returned = RedemptionReturn(redemption_id=redemption.id, points=points, transaction_id=tx.id, reason=reason,
                                clerk_id=user.id, created_at=utc_naive())
    db.session.add(returned)
    db.session.flush()
    for item_id, quantity in wanted.items():
        line = by_item[item_id]
        db.session.add(RedemptionReturnLine(return_id=returned.id, line_id=line.id, item_id=item_id,
                                            quantity=quantity, points=quantity * line.unit_points))
        line.returned_quantity += quantity
        if items[item_id].is_service:  # a service has no stock to put back
            continue
        movement_id = _move(items[item_id], quantity, "return", user.actor, redemption_id=redemption.id,
                            note=f"小票 {redemption.receipt_no} 号退货")
        _give_back_to_lots(redemption.id, item_id, movement_id, quantity)
    redemption.returned_points += points
    record("redemption.return", user=user, target=f"redemption:{redemption.id}",
           community_id=redemption.community_id, receipt_no=redemption.receipt_no, return_id=returned.id,
           points=points, reason=reason, lines={str(i): q for i, q in wanted.items()}, transaction_id=tx.id)
    db.session.flush()
    return returned


def household_balance(household_id: int) -> int:
    return ledger.balance(db.session, accounts.household_points(household_id))


# --- reports and checks -----------------------------------------------------------------------

STOCK_REPORT_COLUMNS = (
    "item_id", "sku", "name", "opening", "in_donation", "in_purchase", "adjustment_in", "back_void",
    "back_return", "out_redemption", "out_spoilage", "adjustment_out", "closing", "on_hand_now",
)


def stock_report(community_id: int, month: date) -> dict:
    """A month of stock per item: in by donation and purchase, out by redemption and spoilage."""
    start, end = month_bounds(month)
    m = StockMovement
    in_month = and_(m.created_at >= start, m.created_at < end)

    def total(condition):
        return func.coalesce(func.sum(case((condition, m.quantity), else_=0)), 0)

    rows = db.session.execute(
        select(
            Item.id, Item.sku, Item.name, Item.on_hand,
            total(m.created_at < start).label("opening"),
            total(and_(in_month, m.reason == "donation")).label("in_donation"),
            total(and_(in_month, m.reason == "purchase")).label("in_purchase"),
            total(and_(in_month, m.reason == "adjustment", m.quantity > 0)).label("adjustment_in"),
            total(and_(in_month, m.reason == "void")).label("back_void"),
            total(and_(in_month, m.reason == "return")).label("back_return"),
            total(and_(in_month, m.reason == "redemption")).label("out_redemption"),
            total(and_(in_month, m.reason == "spoilage")).label("out_spoilage"),
            total(and_(in_month, m.reason == "adjustment", m.quantity < 0)).label("adjustment_out"),
            total(m.created_at < end).label("closing"),
        )
        .select_from(Item).outerjoin(m, m.item_id == Item.id)
        .where(Item.community_id == community_id)
        .group_by(Item.id, Item.sku, Item.name, Item.on_hand)
        .order_by(Item.id)
    ).all()
    items = []
    for r in rows:
        items.append({
            "item_id": r.id, "sku": r.sku, "name": r.name, "opening": int(r.opening),
            "in_donation": int(r.in_donation), "in_purchase": int(r.in_purchase),
            "adjustment_in": int(r.adjustment_in), "back_void": int(r.back_void), "back_return": int(r.back_return),
            "out_redemption": -int(r.out_redemption), "out_spoilage": -int(r.out_spoilage),
            "adjustment_out": -int(r.adjustment_out), "closing": int(r.closing), "on_hand_now": int(r.on_hand),
        })
    by_donor = db.session.execute(
        select(m.donor, m.donor_kind, Item.name, func.sum(m.quantity))
        .join(Item, Item.id == m.item_id)
        .where(m.community_id == community_id, m.reason == "donation", in_month)
        .group_by(m.donor, m.donor_kind, Item.name)
        .order_by(m.donor, Item.name)
    ).all()
    donors_out: dict[str, dict] = {}
    for donor, kind, name, units in by_donor:
        entry = donors_out.setdefault(donor, {"donor": donor, "donor_kind": kind, "units": 0, "items": []})
        entry["units"] += int(units)
        entry["items"].append({"name": name, "units": int(units)})
    return {"month": f"{month.year:04d}-{month.month:02d}", "items": items, "donors": list(donors_out.values())}


def stock_report_csv(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(STOCK_REPORT_COLUMNS)
    for row in report["items"]:
        writer.writerow([row[c] for c in STOCK_REPORT_COLUMNS])
    writer.writerow([])
    writer.writerow(["donor", "donor_kind", "item", "units"])
    for donor in report["donors"]:
        for item in donor["items"]:
            writer.writerow([donor["donor"], donor["donor_kind"], item["name"], item["units"]])
    return buffer.getvalue()


def verify_stock() -> list[dict]:
    """On-hand caches equal the movement log, the lots hold exactly what is on the shelf, and the
    lots' cache (``stock_lots``) equals the logs."""
    problems = []
    sums = dict(db.session.execute(
        select(StockMovement.item_id, func.sum(StockMovement.quantity)).group_by(StockMovement.item_id)).all())
    taken = dict(db.session.execute(
        select(StockMovement.item_id, func.sum(LotConsumption.quantity))
        .join(StockMovement, StockMovement.id == LotConsumption.lot_id).group_by(StockMovement.item_id)).all())
    lots = dict(db.session.execute(
        select(StockMovement.item_id, func.sum(StockMovement.quantity))
        .where(StockMovement.reason.in_(LOT_REASONS), StockMovement.quantity > 0)
        .group_by(StockMovement.item_id)).all())
    for item_id, on_hand in db.session.execute(select(Item.id, Item.on_hand)).all():
        replayed = int(sums.get(item_id) or 0)
        if on_hand != replayed:
            problems.append({"transaction_id": None,
                             "problem": f"item {item_id}: on_hand {on_hand}, movement log gives {replayed}"})
        in_lots = int(lots.get(item_id) or 0) - int(taken.get(item_id) or 0)
        if in_lots != replayed:
            problems.append({"transaction_id": None,
                             "problem": f"item {item_id}: stock lots hold {in_lots}, movement log gives {replayed}"})
    # The lots' cache against the logs, lot by lot (a lot missing from the cache counts as holding 0).
    taken_by_lot = dict(db.session.execute(
        select(LotConsumption.lot_id, func.sum(LotConsumption.quantity)).group_by(LotConsumption.lot_id)).all())
    cached = {lot_id: remaining for lot_id, remaining in db.session.execute(
        select(StockLot.lot_id, StockLot.remaining)).all()}
    for lot_id, quantity in db.session.execute(
            select(StockMovement.id, StockMovement.quantity)
            .where(StockMovement.reason.in_(LOT_REASONS), StockMovement.quantity > 0)).all():
        replayed = quantity - int(taken_by_lot.get(lot_id) or 0)
        if cached.pop(lot_id, 0) != replayed:
            problems.append({"transaction_id": None,
                             "problem": f"stock lot {lot_id}: cache holds a different count than the logs "
                                        f"({replayed})"})
    for lot_id in cached:
        problems.append({"transaction_id": None, "problem": f"stock lot {lot_id}: cached but not a lot in the log"})
    return problems


def verify_hook(result: dict) -> None:
    """For ``timebank verify`` and ``GET /api/v1/ledger/verify``-style checks."""
    problems = verify_stock()
    result["problems"].extend(problems)
    result.setdefault("notes", []).append(f"stock: {'ok' if not problems else 'PROBLEMS'}")


def parse_month(text: str) -> date:
    year, month = clock.parse_month(text)
    return date(year, month, 1)
