"""The supermarket clerk's pages (爱心超市收银): the till, receipts with voids, stock and donations.

The till (``/clerk/pos``) is built for a keyboard-wedge barcode scanner, which types a code and
presses Enter:

1. the card field has the focus: scan the household's card (``member_code``) or the phone's pay code;
   the page shows the household and its points;
2. the goods field has the focus: each barcode + Enter adds one unit; typed words search by name;
3. Enter on the empty goods field moves to the confirm button; Enter there charges, once.

The whole state of a sale lives in the page's address (``?member=...&item=3&item=3&item=7``), so
every step is an ordinary GET form that works without JavaScript, a reload repeats nothing, and two
tills never share a basket. ``static/pos.js`` only makes it faster: it sends the same GET forms in
the background and swaps the till's part of the page, keeps the focus where the scanner types, and
queues scans made while the page is still answering.

Confirming is one POST with the CSRF token and a one-time ``form_key`` (recorded in the same
transaction as the sale), so a double click or a resent form never charges twice: it shows the first
sale's receipt instead. ``pos.js`` sends it in the background and, on a 503 or a network error, offers
a retry that sends the same fields and key again (the sale may have been written although its answer
was lost). Refusals (not
enough points or stock, the monthly limit, an unknown card, an expired pay code) are shown in words
on the till, with the basket kept.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from timebank.core.clock import local_zone, utc_naive
from timebank.core.errors import DomainError, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import (
    check_form,
    form_done,
    form_number,
    replay_form,
    roles_required,
    sent_before,
    take_form_key,
)
from timebank.people.models import Household, Resident
from timebank.people.staff_pages import can_write, community, me, message, refuse_supervisor_writes
from timebank.shop import operations as shop
from timebank.shop import sale
from timebank.shop.api import MovementIn
from timebank.shop.models import DONOR_KINDS, STAFF_REASONS, Item, PartnerShop, Redemption

bp = Blueprint("web_clerk", __name__, url_prefix="/clerk")
bp.before_request(refuse_supervisor_writes)

SELLERS = shop.SHOP_ROLES
VIEWERS = (*shop.SHOP_ROLES, "supervisor")
#: At most this many units in one basket (a scanner stuck on Enter must not build a huge address).
MAX_UNITS = 200
SEARCH_RESULTS = 12


def _is_pay_code(code: str) -> bool:
    # Card codes are letters and digits; a pay code is a signed token with a dot before its signature.
    return "." in code


def _identify(code: str):
    """(household, resident or None) for a scanned card or pay code, without using the pay code up.

    The sale itself (``sale.redeem``) checks the code again and uses a pay code up there.
    """
    if _is_pay_code(code):
        resident_id, _nonce = shop.read_pay_code(code)
        resident = db.session.get(Resident, resident_id)
        household = resident.household if resident else None
    else:
        household = db.session.execute(select(Household).where(Household.member_code == code)).scalar_one_or_none()
        resident = None
        if household is None:
            resident = db.session.execute(select(Resident).where(Resident.member_code == code)).scalar_one_or_none()
            household = resident.household if resident else None
    user = me()
    if household is None or (user.role != "admin" and household.community_id != user.community_id):
        raise NotFound("No household with this card or code here.", code="unknown_member")
    return household, resident


def _basket(community_id: int, ids: list[int]) -> list[dict]:
    counts = Counter(ids)
    if not counts:
        return []
    items = {i.id: i for i in db.session.execute(
        select(Item).where(Item.id.in_(list(counts)), Item.community_id == community_id)).scalars()}
    lines = []
    for item_id, quantity in counts.items():  # in the order first scanned
        item = items.get(item_id)
        if item is None:
            continue
        lines.append({"item": item, "quantity": quantity, "points": item.price_points * quantity,
                      "short": not item.is_service and item.on_hand < quantity})
    return lines


def _item_ids() -> list[int]:
    ids = []
    for value in request.values.getlist("item"):
        if value.isdigit():
            ids.append(int(value))
    return ids[:MAX_UNITS]


def _pos_url(member: str | None, ids: list[int], **extra) -> str:
    params = [("member", member)] if member else []
    if request.values.get("community") and me().role == "admin":
        params.append(("community", request.values["community"]))
    params += [("item", str(i)) for i in ids]
    params += [(k, str(v)) for k, v in extra.items() if v is not None]
    return url_for(".pos") + ("?" + urlencode(params) if params else "")


def _find_goods(community_id: int, text: str) -> tuple[Item | None, list[Item]]:
    """An exact barcode or SKU, else goods whose name contains the text (a partner shop's clerk: of
    that shop only)."""
    sold = [Item.community_id == community_id, Item.active.is_(True)]
    partner = shop.partner_of(me())
    if partner is not None:
        sold.append(Item.partner_id == partner)
    exact = db.session.execute(
        select(Item).where(*sold, or_(Item.barcode == text, Item.sku == text)).limit(1)).scalar_one_or_none()
    if exact is not None:
        return exact, []
    found = db.session.execute(
        select(Item).where(*sold, Item.name.contains(text, autoescape=True))
        .order_by(Item.name).limit(SEARCH_RESULTS)).scalars().all()
    return None, list(found)


def _render_pos(place, member: str | None, ids: list[int], *, error: str | None = None, status: int = 200,
                query: str = "", results=None, searched: bool = False):
    household = resident = None
    balance = None
    if member:
        try:
            household, resident = _identify(member)
            balance = shop.household_balance(household.id)
        except DomainError as exc:
            if error is None:
                error, status = message(exc), exc.status
            member = None
    lines = _basket(place.id, ids)
    total = sum(line["points"] for line in lines)
    done = None
    done_id = request.args.get("done", type=int)
    if done_id:
        try:
            done = shop.visible_redemption(me(), done_id)
        except NotFound:
            done = None
    partner = shop.partner_of(me())
    recent = select(Redemption).where(Redemption.community_id == place.id)
    if partner is not None:  # a partner shop's clerk sees the partner's receipts only
        recent = recent.where(Redemption.partner_id == partner)
    recent = db.session.execute(recent.order_by(Redemption.id.desc()).limit(5)).scalars().all()
    # The page's script swaps the answer in; a refusal is shown in words, not as a failed request.
    return render_template(
        "clerk/pos.html", place=place, member=member, household=household, resident=resident, balance=balance,
        lines=lines, total=total, ids=ids, error=error, query=query, results=results or [], searched=searched,
        done=done, done_household=db.session.get(Household, done.household_id) if done else None, recent=recent,
        again=request.args.get("again") == "1",
        pos_url=_pos_url, is_pay_code=_is_pay_code(member or ""),
        seller=db.session.get(PartnerShop, partner) if partner is not None else None,
        can_sell=can_write(*SELLERS)), (200 if request.headers.get("X-Requested-With") == "pos" else status)


@bp.get("/pos")
@roles_required(*VIEWERS)
def pos():
    """The till. Every step is this GET form; the sale is the POST below."""
    place = community()
    shop.require_staff_view(me(), place.id)
    member = (request.args.get("member") or "").strip() or None
    ids = _item_ids()
    text = (request.args.get("q") or "").strip()
    remove = request.args.get("remove", type=int)
    if remove is not None and remove in ids:
        ids.reverse()
        ids.remove(remove)
        ids.reverse()
        return redirect(_pos_url(member, ids))
    if text:
        item, found = _find_goods(place.id, text[:100])
        if item is not None:
            if len(ids) >= MAX_UNITS:
                return _render_pos(place, member, ids, error=_("The basket is full."), status=422)
            # Redirect, so that reloading the page does not add the goods again.
            return redirect(_pos_url(member, ids + [item.id]))
        if len(found) == 0:
            return _render_pos(place, member, ids, error=_("No goods with the barcode or name “%(text)s”.",
                                                           text=text), status=404, query=text)
        return _render_pos(place, member, ids, query=text, results=found, searched=True)
    return _render_pos(place, member, ids)


@bp.post("/pos")
@roles_required(*SELLERS)
def sell():
    """Charge the basket: points and stock move together (``sale.redeem``), once per form."""
    place = community()
    member = (request.form.get("member") or "").strip()
    ids = _item_ids()
    if not member or not ids:
        return _render_pos(place, member or None, ids, error=_("Scan the card and the goods first."), status=422)
    lines = [{"item_id": item_id, "quantity": quantity} for item_id, quantity in Counter(ids).items()]
    try:
        if not take_form_key():
            # Sent before (a double click, or the retry after an answer that never arrived): show
            # the receipt of the first sending, and say that nothing was charged twice.
            return redirect(url_for(".pos", done=sent_before().get("done"), again=1))
        code = {"pay_code": member} if _is_pay_code(member) else {"member_code": member}
        redemption = sale.redeem(me(), lines=lines, **code)
    except DomainError as exc:
        db.session.rollback()
        # A used or expired pay code cannot be used again: the resident shows a new one.
        keep = None if exc.code in ("pay_code_used", "pay_code_expired", "unknown_member") else member
        return _render_pos(place, keep, ids, error=message(exc), status=exc.status)
    return form_done(url_for(".pos", done=redemption.id), done=redemption.id)


# --- receipts and voids ---------------------------------------------------------------------------

@bp.get("/receipts")
@roles_required(*VIEWERS)
def receipts():
    place = community()
    shop.require_staff_view(me(), place.id)
    before = request.args.get("before", type=int)
    filters = {k: (request.args.get(k) or "").strip()[:100] for k in ("q", "status", "since", "until")}
    query = select(Redemption).where(Redemption.community_id == place.id)
    partner = shop.partner_of(me())
    if partner is not None:  # a partner shop's clerk sees the partner's receipts only
        query = query.where(Redemption.partner_id == partner)
    query = _receipt_search(query, filters)
    query = query.order_by(Redemption.id.desc()).limit(31)
    if before:
        query = query.where(Redemption.id < before)
    rows = db.session.execute(query).scalars().all()
    households = {h.id: h for h in db.session.execute(
        select(Household).where(Household.id.in_({r.household_id for r in rows}))).scalars()} if rows else {}
    return render_template("clerk/receipts.html", receipts=rows[:30], households=households, filters=filters,
                           args={k: v for k, v in filters.items() if v},
                           next_before=rows[29].id if len(rows) > 30 else None, can_sell=can_write(*SELLERS))


def _receipt_search(query, filters: dict):
    """Receipts found by number (``12`` or ``No.12``), by the household's name or card code, by status
    (voided, with goods returned) and by day (the community's calendar)."""
    text = filters["q"]
    if text:
        number = text.upper().removeprefix("NO.").removeprefix("NO").strip()
        households = select(Household.id).where(or_(Household.name.contains(text, autoescape=True),
                                                    Household.member_code == text.upper()))
        conditions = [Redemption.household_id.in_(households)]
        if number.isdigit() and len(number) < 12:
            conditions.append(Redemption.receipt_no == int(number))
        query = query.where(or_(*conditions))
    if filters["status"] == "voided":
        query = query.where(Redemption.status == "voided")
    elif filters["status"] == "returned":
        query = query.where(Redemption.returned_points > 0)
    for key, after in (("since", True), ("until", False)):
        try:
            day = datetime.fromisoformat(filters[key]).replace(tzinfo=local_zone()) if filters[key] else None
        except ValueError:
            day = None
        if day is not None:
            query = query.where(Redemption.created_at >= utc_naive(day) if after
                                else Redemption.created_at < utc_naive(day + timedelta(days=1)))
    return query


@bp.post("/receipts/<int:redemption_id>/void")
@roles_required(*SELLERS)
def void(redemption_id: int):
    """Void a receipt with a reason: points and stock come back (compensating entries)."""
    reason = (request.form.get("reason") or "").strip()[:300]
    back = url_for(".receipts")
    if not reason:
        flash(_("Say why the receipt is voided."), "error")
        return redirect(back)
    try:
        if not take_form_key():
            return replay_form(back)
        redemption, points = shop.void(redemption_id, me(), reason)
    except DomainError as exc:
        db.session.rollback()
        flash(_("Not done: %(reason)s", reason=_(
            "this is a receipt of your own household: another clerk voids it or takes the goods back."))
              if exc.code == "self_approval" else message(exc), "error")
        return redirect(back)
    return form_done(back, _("Receipt No. %(no)d voided: %(points)d points and the goods are back.",
                             no=redemption.receipt_no, points=points))


# --- stock ----------------------------------------------------------------------------------------

REASON_LABELS = {
    "donation": _l("Donation"),
    "purchase": _l("Purchase"),
    "adjustment": _l("Count correction"),
    "spoilage": _l("Spoiled or broken"),
    "redemption": _l("Taken for points"),
    "void": _l("Back from a voided receipt"),
    "return": _l("Returned"),
}
DONOR_KIND_LABELS = {
    "enterprise": _l("Company"),
    "unit": _l("Work unit or organisation"),
    "person": _l("Person"),
    "other": _l("Other"),
}


@bp.route("/stock", methods=["GET", "POST"])
@roles_required(*VIEWERS)
def stock():
    """Goods and stock, low stock first; record a donation (with its donor) or a purchase."""
    place = community()
    user = me()
    shop.require_staff_view(user, place.id)
    if request.method == "POST":
        if user.role not in SELLERS and user.role != "admin":
            abort(403)
        form = request.form
        item_id, quantity = form_number(form.get("item_id")), form_number(form.get("quantity"))
        reason = form.get("reason", "")
        donor = (form.get("donor") or "").strip() or None
        donor_kind = form.get("donor_kind") or None
        note = (form.get("note") or "").strip()
        try:
            if not take_form_key():
                return replay_form(url_for(".stock"))
            if quantity is None:
                raise ValidationFailed(errors={"quantity": [_("Enter how many.")]})
            # The bounds of POST /api/v1/stock-movements, from its own schema.
            check_form(MovementIn(), {"item_id": item_id, "quantity": quantity, "reason": reason,
                                      "donor": donor, "donor_kind": donor_kind, "note": note})
            item = shop.get_item(item_id or 0)
            shop.require_shop_staff(user, item.community_id)
            shop.record_movement(item, user, quantity=quantity, reason=reason,
                                 donor=donor if reason == "donation" else None,
                                 donor_kind=donor_kind if reason == "donation" else None, note=note)
        except DomainError as exc:
            db.session.rollback()
            flash(message(exc), "error")
            return redirect(url_for(".stock"))
        return form_done(url_for(".stock"), _("Recorded: %(name)s, now %(n)d on the shelf.", name=item.name,
                                              n=item.on_hand))
    low = shop.low_stock(place.id)
    items = db.session.execute(
        select(Item).where(Item.community_id == place.id, Item.kind == "goods")  # services: /clerk/services
        .order_by(Item.active.desc(), Item.name)).scalars().all()
    recent = db.session.execute(
        shop.movements(place.id).order_by(shop.StockMovement.id.desc()).limit(15)).scalars().all()
    names = {i.id: i.name for i in items}
    return render_template("clerk/stock.html", low=low, items=items, recent=recent, names=names,
                           reasons=STAFF_REASONS, reason_labels=REASON_LABELS, donor_kinds=DONOR_KINDS,
                           donor_kind_labels=DONOR_KIND_LABELS, can_sell=can_write(*SELLERS))


def init_app(app) -> None:
    from timebank.people import staff_pages

    staff_pages.register(app)
    app.register_blueprint(bp)
