"""The love supermarket (爱心超市): goods, stock, donations, pay codes, redemptions, reports.

See docs/supermarket.md for the rules.
"""

from __future__ import annotations

from functools import wraps

from flask import Response, current_app, g, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from timebank.core import accounts
from timebank.core.database import begins_with_first_write, defers_write_lock
from timebank.core.errors import DomainError, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db, limiter
from timebank.core.http import ListArgs, LocalDateTime, current_user, idempotent, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import visible_household
from timebank.core.users import User
from timebank.people import operations as people_ops
from timebank.people.models import Community, Household
from timebank.shop import operations as ops
from timebank.shop import partners as partner_ops
from timebank.shop.models import (
    DONOR_KINDS,
    ITEM_KINDS,
    MAX_MOVEMENT_UNITS,
    STAFF_REASONS,
    Item,
    PartnerShop,
    Redemption,
    StockMovement,
)
from timebank.shop.sale import Sale, sell

blp = Blueprint("shop", __name__, url_prefix="/api/v1",
                description="Love supermarket (爱心超市): goods, stock, donations, redemptions.")


# --- schemas ----------------------------------------------------------------------------------

class ItemIn(Schema):
    community_code = fields.String(required=True)
    sku = fields.String(required=True, validate=validate.Length(1, 64))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    price_points = fields.Integer(required=True, strict=True, validate=validate.Range(1, 1_000_000))
    barcode = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    monthly_limit_per_household = fields.Integer(load_default=None, allow_none=True, strict=True,
                                                 validate=validate.Range(1, 100_000))
    low_stock_threshold = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 1_000_000))
    kind = fields.String(load_default="goods", validate=validate.OneOf(ITEM_KINDS))
    daily_places = fields.Integer(load_default=None, allow_none=True, strict=True,
                                  validate=validate.Range(1, 100_000))
    partner_id = fields.Integer(load_default=None, allow_none=True, strict=True)

    @validates_schema
    def _places_for_services(self, data, **_kwargs):
        if data.get("daily_places") is not None and data.get("kind") != "service":
            raise ValidationError("Only a service has places per day.", "daily_places")


class ItemPatch(Schema):
    name = fields.String(validate=validate.Length(1, 200))
    barcode = fields.String(allow_none=True, validate=validate.Length(1, 64))
    price_points = fields.Integer(strict=True, validate=validate.Range(1, 1_000_000))
    monthly_limit_per_household = fields.Integer(allow_none=True, strict=True, validate=validate.Range(1, 100_000))
    low_stock_threshold = fields.Integer(strict=True, validate=validate.Range(0, 1_000_000))
    active = fields.Boolean()
    daily_places = fields.Integer(allow_none=True, strict=True, validate=validate.Range(1, 100_000))


class PriceIn(Schema):
    price_points = fields.Integer(required=True, strict=True, validate=validate.Range(1, 1_000_000))
    note = fields.String(load_default="", validate=validate.Length(0, 500))


class ItemOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda i: db.session.get(Community, i.community_id).code)
    sku = fields.String()
    name = fields.String()
    barcode = fields.String(allow_none=True)
    price_points = fields.Integer()
    monthly_limit_per_household = fields.Integer(allow_none=True)
    low_stock_threshold = fields.Integer()
    on_hand = fields.Integer()
    low_stock = fields.Function(lambda i: i.kind == "goods" and i.on_hand <= i.low_stock_threshold)
    active = fields.Boolean()
    created_at = LocalDateTime()
    kind = fields.String()
    daily_places = fields.Integer(allow_none=True)
    places_left_today = fields.Function(ops.places_left_today, allow_none=True)
    partner_id = fields.Integer(allow_none=True)


class PriceChangeOut(Schema):
    price_points = fields.Integer()
    previous_points = fields.Integer(allow_none=True)
    effective_at = LocalDateTime()
    actor = fields.String(allow_none=True)
    note = fields.String()


class ItemList(Schema):
    items = fields.List(fields.Nested(ItemOut))
    next_cursor = fields.String(allow_none=True)


class ItemListArgs(ListArgs):
    community_code = fields.String(required=True)
    include_inactive = fields.Boolean(load_default=False)


class CommunityArgs(Schema):
    community_code = fields.String(required=True)


class MovementIn(Schema):
    item_id = fields.Integer(required=True, strict=True)
    quantity = fields.Integer(required=True, strict=True,
                              validate=validate.Range(-MAX_MOVEMENT_UNITS, MAX_MOVEMENT_UNITS))
    reason = fields.String(required=True, validate=validate.OneOf(STAFF_REASONS))
    donor = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 200))
    donor_kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DONOR_KINDS))
    note = fields.String(load_default="", validate=validate.Length(0, 1000))


class MovementOut(Schema):
    id = fields.Integer()
    item_id = fields.Integer()
    quantity = fields.Integer()
    reason = fields.String()
    donor = fields.String(allow_none=True)
    donor_kind = fields.String(allow_none=True)
    note = fields.String()
    redemption_id = fields.Integer(allow_none=True)
    actor = fields.String(allow_none=True)
    created_at = LocalDateTime()
    on_hand = fields.Function(lambda m: db.session.get(Item, m.item_id).on_hand)


class MovementList(Schema):
    items = fields.List(fields.Nested(MovementOut))
    next_cursor = fields.String(allow_none=True)


class MovementListArgs(ListArgs):
    community_code = fields.String(required=True)
    item_id = fields.Integer(load_default=None)


class DonationOut(Schema):
    id = fields.Integer()
    item_id = fields.Integer()
    item_name = fields.String()
    sku = fields.String()
    donor = fields.String()
    donor_kind = fields.String(allow_none=True)
    quantity = fields.Integer()
    note = fields.String()
    created_at = LocalDateTime()
    units_redeemed = fields.Integer()
    units_spoiled = fields.Integer()
    units_adjusted_out = fields.Integer()
    units_out = fields.Integer()
    units_remaining = fields.Integer()


class TrailOut(Schema):
    movement_id = fields.Integer()
    reason = fields.String()
    units = fields.Integer()
    created_at = LocalDateTime()
    receipt_no = fields.Integer(allow_none=True)


class DonationDetail(DonationOut):
    trail = fields.List(fields.Nested(TrailOut))


class DonationList(Schema):
    items = fields.List(fields.Nested(DonationOut))
    next_cursor = fields.String(allow_none=True)


class DonationArgs(ListArgs):
    community_code = fields.String(required=True)
    donor = fields.String(load_default=None)


class DonorOut(Schema):
    donor = fields.String()
    donor_kind = fields.String(allow_none=True)
    donations = fields.Integer()
    units_given = fields.Integer()
    units_redeemed = fields.Integer()
    units_out = fields.Integer()
    first_donation_at = LocalDateTime()
    last_donation_at = LocalDateTime()
    items = fields.List(fields.String())


class DonorList(Schema):
    items = fields.List(fields.Nested(DonorOut))
    next_cursor = fields.String(allow_none=True)


class PayCodeOut(Schema):
    pay_code = fields.String()
    expires_at = LocalDateTime()


class ShortPayCodeOut(Schema):
    id = fields.Integer()
    pay_code = fields.String()
    #: Eight digits standing for ``pay_code`` until it expires, for typing at the till.
    short_code = fields.String()
    expires_at = LocalDateTime()


class RedemptionLineIn(Schema):
    item_id = fields.Integer(load_default=None, allow_none=True, strict=True)
    barcode = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, 999))

    @validates_schema
    def _one_way(self, data, **_kwargs):
        if (data.get("item_id") is None) == (data.get("barcode") is None):
            raise ValidationError("Give either item_id or barcode.", "item_id")


class RedemptionIn(Schema):
    member_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    pay_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 512))
    lines = fields.List(fields.Nested(RedemptionLineIn), required=True, validate=validate.Length(1, 100))

    @validates_schema
    def _one_member(self, data, **_kwargs):
        if (data.get("member_code") is None) == (data.get("pay_code") is None):
            raise ValidationError("Give either member_code (card) or pay_code (phone).", "member_code")


class RedemptionLineOut(Schema):
    id = fields.Integer()
    item_id = fields.Integer()
    name = fields.String()
    quantity = fields.Integer()
    unit_points = fields.Integer()
    line_points = fields.Integer()
    returned_quantity = fields.Integer()


class ReturnLineOut(Schema):
    item_id = fields.Integer()
    quantity = fields.Integer()
    points = fields.Integer()


class ReturnOut(Schema):
    id = fields.Integer()
    redemption_id = fields.Integer()
    points = fields.Integer()
    transaction_id = fields.Integer()
    reason = fields.String()
    created_at = LocalDateTime()
    lines = fields.List(fields.Nested(ReturnLineOut))


class ReturnCreatedOut(ReturnOut):
    balance_after = fields.Function(lambda r: ops.household_balance(r.redemption.household_id))


def _community_code(receipt) -> str:
    if isinstance(receipt, Sale):  # a sale just written knows it
        return receipt.community_code
    return db.session.get(Community, receipt.community_id).code


class RedemptionOut(Schema):
    id = fields.Integer()
    receipt_no = fields.Integer()
    community_code = fields.Function(_community_code)
    household_id = fields.Integer()
    resident_id = fields.Integer(allow_none=True)
    identified_by = fields.String()
    total_points = fields.Integer()
    returned_points = fields.Integer()
    balance_after = fields.Integer()
    transaction_id = fields.Integer()
    status = fields.String()
    created_at = LocalDateTime()
    voided_at = LocalDateTime(allow_none=True)
    void_reason = fields.String(allow_none=True)
    reversal_transaction_id = fields.Integer(attribute="void_transaction_id", allow_none=True)
    lines = fields.List(fields.Nested(RedemptionLineOut))
    returns = fields.List(fields.Nested(ReturnOut))
    receipt_url = fields.Function(lambda r: url_for("receipts.receipt", redemption_id=r.id))
    partner_id = fields.Integer(allow_none=True)


class RedemptionList(Schema):
    items = fields.List(fields.Nested(RedemptionOut))
    next_cursor = fields.String(allow_none=True)


class RedemptionListArgs(ListArgs):
    community_code = fields.String(load_default=None)
    household_id = fields.Integer(load_default=None)


class VoidIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class VoidOut(Schema):
    id = fields.Integer()
    receipt_no = fields.Integer()
    status = fields.String()
    reversal_transaction_id = fields.Integer()
    refunded_points = fields.Integer()
    balance_after = fields.Integer()


class ReturnLineIn(Schema):
    item_id = fields.Integer(required=True, strict=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, 999))


class ReturnIn(Schema):
    lines = fields.List(fields.Nested(ReturnLineIn), required=True, validate=validate.Length(1, 100))
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class StockReportArgs(Schema):
    community_code = fields.String(required=True)
    month = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-\d{2}$"))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


# --- goods ------------------------------------------------------------------------------------

@blp.route("/items")
class Items(MethodView):
    @blp.arguments(ItemIn)
    @blp.response(201, ItemOut)
    @blp.alt_response(404, description="unknown_partner")
    @blp.alt_response(409, description="sku_taken or barcode_taken")
    def post(self, body):
        """Add goods or a service to the community's supermarket (clerk or committee). Stock starts at 0.

        `kind: service` (a haircut, a repair, a meal) has no stock and may have `daily_places`, the
        units sold per local calendar day. `partner_id` puts it in a partner shop (爱心商家); a partner
        shop's clerk adds goods of that shop only.
        """
        user = current_user()
        community = people_ops.community_by_code(body.pop("community_code"))
        ops.require_shop_staff(user, community.id)
        return ops.create_item(community, user, **body)

    @blp.arguments(ItemListArgs, location="query")
    @blp.response(200, ItemList)
    def get(self, args):
        """Goods with prices and stock. Residents of the community may list them too."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_browse(user, community.id)
        query = select(Item).where(Item.community_id == community.id)
        if not args["include_inactive"]:
            query = query.where(Item.active.is_(True))
        return paginate(query, Item.id, args["limit"], args["cursor"])


@blp.route("/items/low-stock")
class LowStock(MethodView):
    @blp.arguments(CommunityArgs, location="query")
    @blp.response(200, ItemList)
    def get(self, args):
        """Active goods at or below their low-stock threshold, emptiest first (staff)."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_staff_view(user, community.id)
        return {"items": ops.low_stock(community.id), "next_cursor": None}


def _visible_item(item_id: int) -> Item:
    user = current_user()
    item = db.session.get(Item, item_id)
    if item is None:
        raise NotFound("No such item.")
    try:
        ops.require_browse(user, item.community_id)
    except Forbidden:
        raise NotFound("No such item.") from None
    return item


@blp.route("/items/<int:item_id>")
class ItemOne(MethodView):
    @for_any_login
    @blp.response(200, ItemOut)
    def get(self, item_id):
        """One item with its price and stock; a service with its places left today."""
        return _visible_item(item_id)

    @blp.arguments(ItemPatch)
    @blp.response(200, ItemOut)
    @blp.alt_response(409, description="barcode_taken")
    def patch(self, body, item_id):
        """Change name, barcode, monthly limit, low-stock threshold, active flag or price (clerk, committee)."""
        user = current_user()
        item = _visible_item(item_id)
        ops.require_item_staff(user, item)
        return ops.update_item(item, user, **body)


@blp.route("/items/<int:item_id>/price")
class ItemPrice(MethodView):
    @blp.arguments(PriceIn)
    @blp.response(200, ItemOut)
    def post(self, body, item_id):
        """Set a new price from now on; past receipts keep the price they were sold at."""
        user = current_user()
        item = _visible_item(item_id)
        ops.require_item_staff(user, item)
        return ops.change_price(item, user, body["price_points"], body["note"])


@blp.route("/items/<int:item_id>/prices")
class ItemPrices(MethodView):
    @for_any_login
    @blp.response(200, PriceChangeOut(many=True))
    def get(self, item_id):
        """The item's price history."""
        return ops.price_history(_visible_item(item_id))


# --- stock ------------------------------------------------------------------------------------

@blp.route("/stock-movements")
class StockMovements(MethodView):
    @blp.arguments(MovementIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, MovementOut)
    @blp.alt_response(404, description="not_found: no such item")
    @blp.alt_response(409, description="insufficient_stock: the shelf would go below zero; not_stocked: a service")
    @blp.alt_response(422, description="validation_error (a donation needs a donor; signs per reason)")
    def post(self, body):
        """Record stock in or out (clerk, committee).

        `donation` and `purchase` bring a positive quantity; `spoilage` removes (its sign is
        ignored); `adjustment` is signed. A donation names its donor. Stock never goes below zero.
        Accepts `Idempotency-Key`.
        """
        user = current_user()
        item = db.session.get(Item, body["item_id"])
        if item is None:
            raise NotFound("No such item.")
        ops.require_item_staff(user, item)
        movement = ops.record_movement(item, user, quantity=body["quantity"], reason=body["reason"],
                                       donor=body["donor"], donor_kind=body["donor_kind"], note=body["note"])
        return movement

    @blp.arguments(MovementListArgs, location="query")
    @blp.response(200, MovementList)
    def get(self, args):
        """The stock log of the community (staff), newest first; optionally of one item."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_staff_view(user, community.id)
        return paginate(ops.movements(community.id, args["item_id"]), StockMovement.id, args["limit"],
                        args["cursor"], descending=True)


@blp.route("/donations")
class Donations(MethodView):
    @blp.arguments(DonationArgs, location="query")
    @blp.response(200, DonationList)
    def get(self, args):
        """Donations received, each with how many of its units have gone out (FIFO attribution)."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_browse(user, community.id)
        page = paginate(ops.donations_query(community.id, args["donor"]), StockMovement.id, args["limit"],
                        args["cursor"], descending=True)
        return {"items": ops.donation_rows(page["items"]), "next_cursor": page["next_cursor"]}


@blp.route("/donations/<int:donation_id>")
class DonationOne(MethodView):
    @blp.response(200, DonationDetail)
    def get(self, donation_id):
        """One donation and its trail: which movements took its units, and when."""
        user = current_user()
        movement = db.session.get(StockMovement, donation_id)
        if movement is None or movement.reason != "donation":
            raise NotFound("No such donation.")
        ops.require_browse(user, movement.community_id)
        row = ops.donation_rows([movement])[0]
        row["trail"] = ops.donation_trail(movement)
        return row


@blp.route("/donors")
class Donors(MethodView):
    @blp.arguments(CommunityArgs, location="query")
    @blp.response(200, DonorList)
    def get(self, args):
        """Donors of the community with what they gave and how much went out (for public thanks)."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_browse(user, community.id)
        return {"items": ops.donors(community.id), "next_cursor": None}


# --- pay codes and redemptions ----------------------------------------------------------------

#: Pay code numbers that are no valid code, allowed per login (``TIMEBANK_PAY_CODE_GUESS_LIMIT``).
GUESS_LIMIT = "10 per 10 minutes"


def _guesser() -> str:
    """Whom the guessing limit counts: the login, or the address before one is known."""
    try:
        return f"user:{current_user().id}"
    except DomainError:
        return f"addr:{request.remote_addr}"


def _no_short_code() -> bool:
    """Requests that carry no short pay code number are not counted."""
    if request.is_json:
        body = request.get_json(silent=True)
        code = body.get("pay_code") if isinstance(body, dict) else None
    else:
        code = request.values.get("member")
    return not (isinstance(code, str) and ops.is_short_pay_code(code))


def pay_code_guess_limit(methods: list[str]):
    """Flask-Limiter's limit on guessing short pay codes (``TIMEBANK_PAY_CODE_GUESS_LIMIT``, per login):
    only a number that is no valid code counts (a typo at the till, or a guess); once reached,
    numbers are refused with 429 ``rate_limited`` until the window has passed. Eight digits hold 10^8
    numbers of which a few are valid at any moment, so guessing a number in use is hopeless."""
    limited = limiter.shared_limit(lambda: current_app.config.get("TIMEBANK_PAY_CODE_GUESS_LIMIT", GUESS_LIMIT),
                                   scope="pay-code-guess",
                                   key_func=_guesser, methods=methods, exempt_when=_no_short_code,
                                   deduct_when=lambda response: bool(g.get("pay_code_missed")))

    def decorate(view):
        guarded = limited(view)

        @wraps(view)
        def only_for_numbers(*args, **kwargs):
            # A sale by card or QR never counts: it skips the limiter's work altogether; a typed
            # number goes through it.
            return view(*args, **kwargs) if _no_short_code() else guarded(*args, **kwargs)

        return only_for_numbers

    return decorate


@blp.route("/me/pay-code")
class PayCode(MethodView):
    @blp.response(200, PayCodeOut)
    @blp.alt_response(403, description="forbidden: only residents have pay codes")
    def get(self):
        """A short-lived (at most 2 minutes), signed, single-use code for the phone screen. Nothing is
        stored; `POST` gives a code with a short number to type as well."""
        code, expires = ops.issue_pay_code(current_user())
        return {"pay_code": code, "expires_at": expires}

    @blp.response(201, ShortPayCodeOut)
    @blp.alt_response(403, description="forbidden: only residents have pay codes")
    def post(self):
        """A pay code as `GET` gives it, with `short_code`: eight digits that stand for it until it
        expires, for the clerk to type at the till when the QR cannot be scanned. No valid code shares
        its number with another. Either form pays once."""
        return ops.issue_short_pay_code(current_user())


@blp.route("/redemptions")
class Redemptions(MethodView):
    decorators = [pay_code_guess_limit(["POST"])]

    @defers_write_lock  # the token, key and member are read before the write lock (timebank.core.database)
    @begins_with_first_write  # PostgreSQL: BEGIN goes with the sale, COMMIT with its answer's record
    @blp.arguments(RedemptionIn())  # an instance: a class would be instantiated on every sale
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, RedemptionOut)
    @blp.alt_response(404, description="unknown_member or unknown_item")
    @blp.alt_response(409, description="insufficient_points, insufficient_stock, limit_exceeded, no_places_left,"
                                       " mixed_sellers, pay_code_used")
    @blp.alt_response(410, description="pay_code_expired")
    @blp.alt_response(422, description="validation_error, pay_code_invalid, idempotency_key_reused")
    @blp.alt_response(429, description="rate_limited: too many pay code numbers that were no valid code")
    def post(self, body):
        """Sell goods for points (clerk or committee of the community).

        Identify the household by its card (`member_code`, household or resident card) or by the
        phone's `pay_code`: the signed code of the QR, or its eight-digit `short_code`. Points leave the
        household and stock leaves the shelf in one database transaction, or neither does. Send
        `Idempotency-Key` so a double-click never charges twice.
        """
        # The new receipt as written (a Sale shows what RedemptionOut needs; nothing is loaded back).
        return sell(current_user(), lines=body["lines"], member_code=body["member_code"], pay_code=body["pay_code"])

    @blp.arguments(RedemptionListArgs, location="query")
    @blp.response(200, RedemptionList)
    def get(self, args):
        """Receipts, newest first: staff give `community_code`; a resident sees their household's."""
        user = current_user()
        query = select(Redemption)
        if args["household_id"] is not None:
            household = visible_household(user, db.session.get(Household, args["household_id"]))
            query = query.where(Redemption.household_id == household.id)
        elif user.role == "resident":
            query = query.where(Redemption.household_id == user.household_id)
        else:
            if not args["community_code"]:
                raise ValidationFailed(errors={"community_code": ["Required for staff."]})
            community = people_ops.community_by_code(args["community_code"])
            ops.require_staff_view(user, community.id)
            query = query.where(Redemption.community_id == community.id)
            partner = ops.partner_of(user)
            if partner is not None:  # a partner shop's clerk sees the partner's receipts only
                query = query.where(Redemption.partner_id == partner)
        return paginate(query, Redemption.id, args["limit"], args["cursor"], descending=True)


@blp.route("/redemptions/<int:redemption_id>")
class RedemptionOne(MethodView):
    @for_any_login
    @blp.response(200, RedemptionOut)
    def get(self, redemption_id):
        """A receipt (staff of the community, or the household's residents). Printable at /receipts/<id>."""
        return ops.visible_redemption(current_user(), redemption_id)


@blp.route("/redemptions/<int:redemption_id>/void")
class RedemptionVoid(MethodView):
    @blp.arguments(VoidIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, VoidOut)
    @blp.alt_response(403, description="self_approval: the receipt is of the clerk's own household")
    @blp.alt_response(409, description="already_voided, or fully_returned (nothing left to void)")
    def post(self, body, redemption_id):
        """Void a receipt: points and stock back, as compensating entries (clerk, committee).

        After partial returns, the void gives back only what is still charged.
        """
        user = current_user()
        redemption, refunded = ops.void(redemption_id, user, body["reason"])
        return {"id": redemption.id, "receipt_no": redemption.receipt_no, "status": redemption.status,
                "reversal_transaction_id": redemption.void_transaction_id, "refunded_points": refunded,
                "balance_after": ops.household_balance(redemption.household_id)}


@blp.route("/redemptions/<int:redemption_id>/returns")
class RedemptionReturns(MethodView):
    @blp.arguments(ReturnIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, ReturnCreatedOut)
    @blp.alt_response(403, description="self_approval: the receipt is of the clerk's own household")
    @blp.alt_response(409, description="return_exceeds_purchase, already_voided")
    def post(self, body, redemption_id):
        """Take back some goods of a receipt: their points (at the receipt's prices) and stock come back."""
        return ops.return_goods(redemption_id, current_user(), body["lines"], body["reason"])


# --- reports ----------------------------------------------------------------------------------

@blp.route("/reports/stock")
class StockReport(MethodView):
    @blp.arguments(StockReportArgs, location="query")
    @blp.response(200)
    def get(self, args):
        """A month of stock per item (in by donation and purchase, out by redemption and spoilage,
        opening and closing), and donations by donor; JSON or CSV (staff)."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_staff_view(user, community.id)
        report = ops.stock_report(community.id, ops.parse_month(args["month"]))
        report["community_code"] = community.code
        if args["format"] == "csv":
            filename = f"stock-{community.code}-{report['month']}.csv"
            return Response("\ufeff" + ops.stock_report_csv(report), mimetype="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return report


# --- partner shops (爱心商家) ------------------------------------------------------------------------

class PartnerIn(Schema):
    community_code = fields.String(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    address = fields.String(load_default="", validate=validate.Length(0, 300))


class PartnerPatch(Schema):
    name = fields.String(validate=validate.Length(1, 200))
    address = fields.String(validate=validate.Length(0, 300))
    active = fields.Boolean()


class PartnerOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda p: db.session.get(Community, p.community_id).code)
    name = fields.String()
    address = fields.String()
    active = fields.Boolean()
    account = fields.Function(lambda p: accounts.partner_points(p.community_id, p.id))
    created_at = LocalDateTime()


class PartnerList(Schema):
    items = fields.List(fields.Nested(PartnerOut))
    next_cursor = fields.String(allow_none=True)


class PartnerClerkIn(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))


class PartnerClerkOut(Schema):
    partner_id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    linked_at = LocalDateTime()


class SettlementArgs(StockReportArgs):
    pass


class SettlementRow(Schema):
    partner_id = fields.Integer()
    name = fields.String()
    address = fields.String()
    active = fields.Boolean()
    account = fields.String()
    redeemed_points = fields.Integer()
    given_back_points = fields.Integer()
    net_points = fields.Integer()
    receipts = fields.Integer()


class SettlementTotal(Schema):
    redeemed_points = fields.Integer()
    given_back_points = fields.Integer()
    net_points = fields.Integer()
    receipts = fields.Integer()


class SettlementOut(Schema):
    community_code = fields.String()
    month = fields.String()
    partners = fields.List(fields.Nested(SettlementRow))
    total = fields.Nested(SettlementTotal)


@blp.route("/partners")
class Partners(MethodView):
    @blp.arguments(PartnerIn)
    @blp.response(201, PartnerOut)
    @blp.alt_response(409, description="partner_taken: the name is used in this community")
    def post(self, body):
        """Add a partner shop (爱心商家) to the community (committee), with its points account."""
        user = current_user()
        community = people_ops.community_by_code(body["community_code"])
        return partner_ops.create_partner(community, user, name=body["name"], address=body["address"])

    @blp.arguments(CommunityArgs, location="query")
    @blp.response(200, PartnerList)
    def get(self, args):
        """The community's partner shops (staff)."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_staff_view(user, community.id)
        return {"items": partner_ops.partners(community.id), "next_cursor": None}


def _partner(partner_id: int) -> PartnerShop:
    user = current_user()
    partner = db.session.get(PartnerShop, partner_id)
    try:
        if partner is None:
            raise Forbidden()
        ops.require_staff_view(user, partner.community_id)
    except Forbidden:
        raise NotFound("No such partner shop.", code="unknown_partner") from None
    return partner


@blp.route("/partners/<int:partner_id>")
class PartnerOne(MethodView):
    @blp.arguments(PartnerPatch)
    @blp.response(200, PartnerOut)
    @blp.alt_response(409, description="partner_taken")
    def patch(self, body, partner_id):
        """Change a partner shop's name, address or active flag (committee); an inactive one sells nothing."""
        return partner_ops.update_partner(_partner(partner_id), current_user(), **body)


@blp.route("/partners/<int:partner_id>/clerks")
class PartnerClerks(MethodView):
    @blp.arguments(PartnerClerkIn)
    @blp.response(201, PartnerClerkOut)
    @blp.alt_response(404, description="not_found: no such login in this community")
    @blp.alt_response(422, description="validation_error: only a clerk login works a partner's till")
    def post(self, body, partner_id):
        """Make a clerk login the partner shop's (committee; audit-logged): it then sells only the
        partner's goods and sees only its receipts."""
        partner = _partner(partner_id)
        clerk = db.session.execute(select(User).where(User.username == body["username"])).scalar_one_or_none()
        link = partner_ops.link_clerk(partner, current_user(), clerk)
        return {"partner_id": link.partner_id, "user_id": link.user_id, "username": clerk.username,
                "linked_at": link.linked_at}


@blp.route("/partners/settlement")
class PartnerSettlement(MethodView):
    @blp.arguments(SettlementArgs, location="query")
    @blp.response(200, SettlementOut)
    def get(self, args):
        """The month's settlement per partner shop, from the ledger postings of each partner's account:
        points redeemed, points given back by voids and returns, net, receipts; JSON or CSV
        (committee and supervisors)."""
        user = current_user()
        community = people_ops.community_by_code(args["community_code"])
        ops.require_staff_view(user, community.id)
        if user.role not in ("admin", "committee", "supervisor"):
            raise Forbidden("The settlement is the committee's report.")
        report = partner_ops.settlement(community.id, args["month"])
        report["community_code"] = community.code
        if args["format"] == "csv":
            filename = f"partners-{community.code}-{report['month']}.csv"
            return Response("\ufeff" + partner_ops.settlement_csv(report), mimetype="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return report
