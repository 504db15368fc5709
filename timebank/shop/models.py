"""The love supermarket (爱心超市 / 积分超市): goods, the stock log, donation lots, receipts.

Design overview
===============

* Stock is an append-only movement log (:class:`StockMovement`). An item's ``on_hand`` is a cache
  kept by a database trigger on movement insert; its CHECK constraint refuses a shelf below zero,
  whatever code writes, exactly as the ledger's balance column refuses a wallet below zero.
* Every unit that comes in as a donation, a purchase or a positive adjustment forms a *lot*; every
  unit that goes out is attributed to the oldest lot that still holds units (FIFO), recorded in
  :class:`LotConsumption`. So a donor (爱心企业, 帮扶单位, a person) can be told which of their goods
  went out, and when. Voids and returns give units back to the lots they were taken from.
* A redemption (one receipt) moves points out of the household wallet into the community's
  supermarket account and stock off the shelf in one database transaction, or neither. Each line
  keeps the unit price of the moment, so a later price change never rewrites a receipt.
* Corrections never edit: a void is a compensating ledger transaction plus ``void`` movements; a
  return of some lines is a ``return`` ledger transaction plus ``return`` movements.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from timebank.core.clock import utc_naive
from timebank.core.extensions import db

#: Why stock moved. The first four are entered by staff; the rest are written by redemptions.
MOVEMENT_REASONS = ("donation", "purchase", "adjustment", "spoilage", "redemption", "void", "return")
STAFF_REASONS = ("donation", "purchase", "adjustment", "spoilage")
#: Reasons that bring new units in and so open a lot (a positive adjustment too).
LOT_REASONS = ("donation", "purchase", "adjustment")
DONOR_KINDS = ("enterprise", "unit", "person", "other")
#: ``goods`` sit on a shelf (stock, lots); a ``service`` (特色服务: a haircut, a repair, a meal) has no
#: stock and may have a number of places per day.
ITEM_KINDS = ("goods", "service")
REDEMPTION_STATUSES = ("completed", "voided")
#: The most units one stock movement moves, either way (the API's bound and the database's CHECK).
MAX_MOVEMENT_UNITS = 1_000_000
#: The most units on one shelf: what ``on_hand`` (INTEGER) holds on PostgreSQL.
MAX_ON_HAND = 2**31 - 1
#: Image types a photo of goods may have (checked by the file's first bytes, not its name).
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")


class Item(db.Model):
    """A kind of goods on the shelf of one community's supermarket."""

    __tablename__ = "shop_items"
    __table_args__ = (
        UniqueConstraint("community_id", "sku", name="uq_shop_items_community_sku"),
        UniqueConstraint("community_id", "barcode", name="uq_shop_items_community_barcode"),
        # The database's own guard for "stock never goes below zero" (the trigger keeps on_hand).
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("price_points > 0", name="price_positive"),
        CheckConstraint("monthly_limit_per_household IS NULL OR monthly_limit_per_household > 0",
                        name="monthly_limit_positive"),
        CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold"),
        CheckConstraint("kind IN ('goods', 'service')", name="kind"),
        # Places per day are a service's; a service never has stock.
        CheckConstraint("daily_places IS NULL OR (kind = 'service' AND daily_places > 0)", name="daily_places"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The community whose supermarket sells it.
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: Stock-keeping code chosen by the shop, unique within the community.
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    #: EAN/UPC printed on the goods, for the scanner; unique within the community when given.
    barcode: Mapped[str | None] = mapped_column(String(64))
    #: Current price in points; a redemption line keeps the price of its moment.
    price_points: Mapped[int] = mapped_column(Integer)
    #: At most this many units per household per calendar month (local time); null: no limit.
    monthly_limit_per_household: Mapped[int | None] = mapped_column(Integer)
    #: The item is listed as low on stock when on_hand is at or below this.
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=0)
    #: Cache of the sum of the item's stock movements, kept by a database trigger; never below zero.
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    #: Inactive items are no longer sold but keep their history.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    #: ``goods`` or ``service`` (no stock, no lots; maybe places per day).
    kind: Mapped[str] = mapped_column(String(16), default="goods", server_default="goods")
    #: For a service: at most this many units a local calendar day (null: no limit).
    daily_places: Mapped[int | None] = mapped_column(Integer)
    #: The partner shop (爱心商家) that sells it; null: the community's supermarket.
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("shop_partners.id"), index=True)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"


class PartnerShop(db.Model):
    """A partner shop (爱心商家) of a community: a redemption point with its own clerk logins. Points
    redeemed there go to its own ledger account (``community:<id>:partner:<pid>:points``), opened
    with it, so its monthly settlement is read off the ledger."""

    __tablename__ = "shop_partners"
    __table_args__ = (UniqueConstraint("community_id", "name", name="uq_shop_partners_community_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    #: An inactive partner sells nothing more; its history and account stay.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)


class PartnerClerk(db.Model):
    """A clerk login that belongs to a partner shop: it sells only the partner's goods and sees only
    the partner's receipts. (The shop's own table: the users table is core's.)"""

    __tablename__ = "shop_partner_clerks"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, autoincrement=False)
    partner_id: Mapped[int] = mapped_column(ForeignKey("shop_partners.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    #: Who linked it (``user:3:name``).
    actor: Mapped[str | None] = mapped_column(String(128))


class ItemPriceChange(db.Model):
    """History of an item's price: each change applies from its moment on."""

    __tablename__ = "shop_item_prices"
    __table_args__ = (CheckConstraint("price_points > 0", name="price_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("shop_items.id"), index=True)
    #: The price from ``effective_at`` on.
    price_points: Mapped[int] = mapped_column(Integer)
    #: The price before the change (null for the first price).
    previous_points: Mapped[int | None] = mapped_column(Integer)
    effective_at: Mapped[datetime] = mapped_column(DateTime)
    #: Who set it (``user:3:name``).
    actor: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")


class StockMovement(db.Model):
    """One change of an item's stock (append-only; the database refuses UPDATE and DELETE)."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint("quantity <> 0", name="quantity_not_zero"),
        # No single movement is larger than the API takes (MAX_MOVEMENT_UNITS), so no sum over the
        # log can overflow. PostgreSQL holds it as this CHECK; SQLite as a trigger (migration 0012).
        CheckConstraint(f"quantity BETWEEN {-MAX_MOVEMENT_UNITS} AND {MAX_MOVEMENT_UNITS}", name="quantity_in_bounds"),
        CheckConstraint(
            "reason IN ('donation', 'purchase', 'adjustment', 'spoilage', 'redemption', 'void', 'return')",
            name="reason",
        ),
        # Which way each reason moves stock; only an adjustment may go either way.
        CheckConstraint(
            "(reason IN ('donation', 'purchase', 'void', 'return') AND quantity > 0)"
            " OR (reason IN ('spoilage', 'redemption') AND quantity < 0)"
            " OR reason = 'adjustment'",
            name="reason_sign",
        ),
        CheckConstraint("donor IS NULL OR reason = 'donation'", name="donor_only_on_donation"),
        Index("ix_stock_movements_item_created", "item_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Not indexed alone: ix_stock_movements_item_created (item_id, created_at) serves it.
    item_id: Mapped[int] = mapped_column(ForeignKey("shop_items.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: Signed number of units: positive onto the shelf, negative off it.
    quantity: Mapped[int] = mapped_column(Integer)
    #: donation, purchase, adjustment, spoilage, redemption, void or return.
    reason: Mapped[str] = mapped_column(String(16))
    #: For donations: who gave it (爱心企业, 帮扶单位, a person), as it is to be thanked publicly.
    donor: Mapped[str | None] = mapped_column(String(200), index=True)
    #: For donations: ``enterprise`` (爱心企业), ``unit`` (帮扶单位), ``person`` or ``other``.
    donor_kind: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    #: The receipt that caused a redemption, void or return movement.
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"), index=True)
    #: Who entered it (``user:3:name``).
    actor: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class LotConsumption(db.Model):
    """How many units of an incoming lot (a donation, purchase or positive adjustment) one outgoing
    movement took (positive), or a void/return gave back (negative). Append-only."""

    __tablename__ = "stock_lot_consumptions"
    __table_args__ = (CheckConstraint("quantity <> 0", name="quantity_not_zero"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The incoming movement (the lot).
    lot_id: Mapped[int] = mapped_column(ForeignKey("stock_movements.id"), index=True)
    #: The movement that took units from it (or gave them back).
    movement_id: Mapped[int] = mapped_column(ForeignKey("stock_movements.id"), index=True)
    #: Units taken (positive) or given back (negative).
    quantity: Mapped[int] = mapped_column(Integer)


class StockLot(db.Model):
    """What an incoming lot still holds: its quantity less what was taken from it (net of what voids
    and returns gave back). A cache of the two append-only logs, kept by triggers on both in the same
    transaction (as ``on_hand`` is), so a sale's FIFO attribution reads the open lots of its item
    instead of summing every consumption of them, which grew with each sale. ``timebank verify``
    recomputes it from the logs; the CHECK keeps it between zero and the lot's quantity."""

    __tablename__ = "stock_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= quantity", name="remaining_in_range"),
        Index("ix_stock_lots_item_lot", "item_id", "lot_id"),
    )

    #: The incoming movement (donation, purchase or positive adjustment).
    lot_id: Mapped[int] = mapped_column(ForeignKey("stock_movements.id"), primary_key=True, autoincrement=False)
    item_id: Mapped[int] = mapped_column(ForeignKey("shop_items.id"))
    #: Units the lot brought in.
    quantity: Mapped[int] = mapped_column(Integer)
    #: Units still on the shelf from this lot.
    remaining: Mapped[int] = mapped_column(Integer)


class ReceiptCounter(db.Model):
    """The last receipt number of a community; locked and bumped inside the redemption's transaction,
    so numbers are sequential without gaps."""

    __tablename__ = "shop_receipt_counters"

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), primary_key=True)
    #: The number given to the community's latest receipt.
    last_no: Mapped[int] = mapped_column(Integer, default=0)


class Redemption(db.Model):
    """One receipt (兑换小票): a household took goods for points at the supermarket."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("community_id", "receipt_no", name="uq_redemptions_community_receipt_no"),
        CheckConstraint("status IN ('completed', 'voided')", name="status"),
        CheckConstraint("total_points > 0", name="total_positive"),
        CheckConstraint("returned_points >= 0 AND returned_points <= total_points", name="returned_points"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Not indexed alone: the unique (community_id, receipt_no) index serves it.
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    #: Sequential per community, starting at 1, without gaps.
    receipt_no: Mapped[int] = mapped_column(Integer)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    #: The resident whose pay code was scanned (null when the household card was used).
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    #: ``member_code`` (card) or ``pay_code`` (phone).
    identified_by: Mapped[str] = mapped_column(String(16))
    #: Points charged at the till.
    total_points: Mapped[int] = mapped_column(Integer)
    #: Points given back by returns so far.
    returned_points: Mapped[int] = mapped_column(Integer, default=0)
    #: The household's balance right after the charge.
    balance_after: Mapped[int] = mapped_column(BigInteger)
    #: The ledger transaction that charged the points.
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transactions.id"))
    #: ``completed`` or ``voided``.
    status: Mapped[str] = mapped_column(String(16), default="completed")
    #: The clerk who served.
    clerk_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    #: The partner shop (爱心商家) that sold it (its points went to the partner's account); null: the
    #: community's supermarket.
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("shop_partners.id"), index=True)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime)
    void_reason: Mapped[str | None] = mapped_column(Text)
    #: The compensating ledger transaction of the void.
    void_transaction_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transactions.id"))

    lines: Mapped[list[RedemptionLine]] = relationship(back_populates="redemption",
                                                         order_by="RedemptionLine.id")
    returns: Mapped[list[RedemptionReturn]] = relationship(back_populates="redemption",
                                                             order_by="RedemptionReturn.id")


class RedemptionLine(db.Model):
    """One line of a receipt, with the unit price of its moment."""

    __tablename__ = "redemption_lines"
    __table_args__ = (
        UniqueConstraint("redemption_id", "item_id", name="uq_redemption_lines_redemption_item"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_points > 0", name="unit_points_positive"),
        CheckConstraint("returned_quantity >= 0 AND returned_quantity <= quantity", name="returned_quantity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Not indexed alone: the unique (redemption_id, item_id) index serves it.
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("shop_items.id"), index=True)
    #: Item name at the time of sale, as printed.
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    #: Price per unit at the time of sale.
    unit_points: Mapped[int] = mapped_column(Integer)
    #: Units given back by returns so far (never more than were bought).
    returned_quantity: Mapped[int] = mapped_column(Integer, default=0)

    redemption: Mapped[Redemption] = relationship(back_populates="lines")

    @property
    def line_points(self) -> int:
        return self.quantity * self.unit_points


class RedemptionReturn(db.Model):
    """Some goods of a receipt brought back: points and stock back for those units."""

    __tablename__ = "redemption_returns"
    __table_args__ = (CheckConstraint("points > 0", name="points_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id"), index=True)
    #: Points given back.
    points: Mapped[int] = mapped_column(Integer)
    #: The ledger transaction (kind ``return``) that gave them back.
    transaction_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_transactions.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    clerk_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    redemption: Mapped[Redemption] = relationship(back_populates="returns")
    lines: Mapped[list[RedemptionReturnLine]] = relationship(order_by="RedemptionReturnLine.id")


class RedemptionReturnLine(db.Model):
    __tablename__ = "redemption_return_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("redemption_returns.id"), index=True)
    #: The receipt line the units came from (its unit price is what is given back).
    line_id: Mapped[int] = mapped_column(ForeignKey("redemption_lines.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("shop_items.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)


class UsedPayCode(db.Model):
    """Nonces of pay codes already spent: a pay code works once (the unique key refuses a replay)."""

    __tablename__ = "shop_used_pay_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The random nonce inside the signed code.
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    used_at: Mapped[datetime] = mapped_column(DateTime)


class ItemPhoto(db.Model):
    """The photo of an item, shown on the till and the goods list: one per item, replaced by a new
    upload. Kept in the database (not the instance folder), so a backup and a second server hold
    it too. Not a record of value: it may be replaced or removed; the audit log says who did."""

    __tablename__ = "shop_item_photos"
    __table_args__ = (
        CheckConstraint("content_type IN ('image/jpeg', 'image/png', 'image/webp')", name="content_type"),
        CheckConstraint("size_bytes > 0", name="size_positive"),
    )

    item_id: Mapped[int] = mapped_column(ForeignKey("shop_items.id"), primary_key=True, autoincrement=False)
    #: ``image/jpeg``, ``image/png`` or ``image/webp``, as the file's first bytes say.
    content_type: Mapped[str] = mapped_column(String(32))
    #: The image file as uploaded.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of ``data`` (hex): the photo's address carries part of it, so a new photo is a new address.
    sha256: Mapped[str] = mapped_column(String(64))
    #: Who uploaded it (``user:3:name``).
    actor: Mapped[str | None] = mapped_column(String(128))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime)


class PayCode(db.Model):
    """A pay code shown on a resident's phone, with its short number for typing at the till.

    The QR code carries the signed token (resident, nonce, expiry); ``short_code`` is eight digits
    that stand for the same code while it is valid. A short code is unique among the codes that
    hold it: once a code has expired its number may be given again (the older row's ``short_code``
    is cleared first), so no two valid codes ever share a number. Spending either form spends the
    nonce (:class:`UsedPayCode`). Rows older than a day are removed when the resident asks for the
    next code: they prove nothing that the receipts and the used nonces do not.
    """

    __tablename__ = "shop_pay_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    #: Eight digits, typed at the till; cleared when the number is given to a later code.
    short_code: Mapped[str | None] = mapped_column(String(8), unique=True)
    #: The random nonce inside the signed code (the QR).
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
