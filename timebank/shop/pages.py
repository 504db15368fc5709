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

The basket's address also carries the sale's key (``sale=...``), which is the confirm form's one-time
``form_key``: once that sale is charged, the same address (the Back button, a reload, a bookmark)
shows "already charged" and the receipt instead of the basket, so a stale basket is never offered
again. Every page of the till is sent with ``Cache-Control: no-store``.

The till keeps working through a network cut (docs/supermarket.md, "The till offline"): it is an
installable web app (``/clerk/pos/manifest.webmanifest``) with a service worker (``/clerk/pos-sw.js``,
scoped to ``/clerk/pos``) that keeps the offline till page (``/clerk/pos/offline``), its scripts and
the goods list (``/clerk/pos/goods.json``) in the browser. Offline, ``static/till.js`` builds the
basket against the kept goods list and queues each charge in the browser with its
``Idempotency-Key``; when the network returns it sends them to ``POST /api/v1/redemptions``, where the
ledger decides, and shows each outcome.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

import ledger
from timebank.core.clock import local_zone, now, utc_naive
from timebank.core.errors import DomainError, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import (
    check_form,
    form_done,
    form_number,
    form_outcome,
    login_required,
    new_form_key,
    replay_form,
    roles_required,
    sent_before,
    take_form_key,
)
from timebank.people.memberships import guest_wallet
from timebank.people.models import Household, Resident
from timebank.people.staff_pages import can_write, community, me, message, refuse_supervisor_writes
from timebank.shop import operations as shop
from timebank.shop import photos, sale
from timebank.shop.api import ItemIn, ItemPatch, MovementIn, PriceIn, ReturnIn, pay_code_guess_limit
from timebank.shop.models import DONOR_KINDS, STAFF_REASONS, Item, ItemPhoto, PartnerShop, Redemption

bp = Blueprint("web_clerk", __name__, url_prefix="/clerk")
bp.before_request(refuse_supervisor_writes)

SELLERS = shop.SHOP_ROLES
VIEWERS = (*shop.SHOP_ROLES, "supervisor")
#: At most this many units in one basket (a scanner stuck on Enter must not build a huge address).
MAX_UNITS = 200
SEARCH_RESULTS = 12
#: What a sale key in the till's address may look like (it becomes the confirm form's form_key).
_SALE_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
#: The refusals a sale can meet, said in words by the offline till when its queued sales come back.
SALE_REFUSALS = ("insufficient_points", "insufficient_stock", "limit_exceeded", "unknown_member", "unknown_item",
                 "pay_code_expired", "pay_code_used", "pay_code_invalid", "validation_error", "forbidden",
                 "not_found", "read_only_role", "month_closed")


@bp.after_request
def _no_store(response):
    """No page of the clerk's is kept by the browser: the Back button asks the server again, which
    never offers a basket that was charged already (see ``pos``). A view may say otherwise."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _sale_key() -> str:
    """The sale's key carried in the basket's address, or a new one for this page."""
    if "till_sale_key" not in g:
        given = request.values.get("sale") or ""
        g.till_sale_key = given if _SALE_KEY.match(given) else new_form_key()
    return g.till_sale_key


def _is_pay_code(code: str) -> bool:
    # Card codes are a letter and ten symbols; a pay code is a signed token with a dot before its
    # signature (the QR), or its short number of eight digits (typed).
    return "." in code or shop.is_short_pay_code(code)


def _identify(code: str):
    """(household, resident or None) for a scanned card or pay code, without using the pay code up;
    a pay code already spent, or expired, is refused here, at the scan.

    The sale itself (``sale.redeem``) checks the code again and uses a pay code up there.
    """
    if _is_pay_code(code):
        resident_id = shop.check_pay_code(code)
        resident = db.session.get(Resident, resident_id)
        household = resident.household if resident else None
    else:
        household = db.session.execute(select(Household).where(Household.member_code == code)).scalar_one_or_none()
        resident = None
        if household is None:
            resident = db.session.execute(select(Resident).where(Resident.member_code == code)).scalar_one_or_none()
            household = resident.household if resident else None
    user = me()
    if household is not None and user.role != "admin" and household.community_id != user.community_id \
            and (resident is None or guest_wallet(resident.id, user.community_id) is None):
        household = None  # another community's card; a guest (候鸟) pays with their own card or pay code
    if household is None:
        raise NotFound("No household with this card or code here.", code="unknown_member")
    return household, resident


def _guest_wallet(place, household, resident) -> str | None:
    """The guest wallet the sale would charge, when the buyer is a guest of this community."""
    if resident is None or household.community_id == place.id:
        return None
    return guest_wallet(resident.id, place.id)


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
    if member or ids:  # a basket: its sale key goes with it (the next resident starts a new one)
        params.append(("sale", _sale_key()))
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
    household = resident = guest = None
    balance = None
    if member:
        try:
            household, resident = _identify(member)
            guest = _guest_wallet(place, household, resident)
            balance = ledger.balance(db.session, guest) if guest else shop.household_balance(household.id)
        except DomainError as exc:
            if error is None:
                error, status = message(exc), exc.status
            member = None
    lines = _basket(place.id, ids)
    total = sum(line["points"] for line in lines)
    shown = [line["item"].id for line in lines] + [item.id for item in results or []]
    photo_urls = {item_id: _photo_url(item_id, v) for item_id, v in photos.photo_versions(shown).items()}
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
        guest=guest,
        lines=lines, total=total, ids=ids, error=error, query=query, results=results or [], searched=searched,
        done=done, done_household=db.session.get(Household, done.household_id) if done else None, recent=recent,
        photo_urls=photo_urls, again=request.args.get("again") == "1", stale=request.args.get("stale") == "1",
        sale_key=_sale_key(),
        pos_url=_pos_url, is_pay_code=_is_pay_code(member or ""), till=_till_settings(place),
        seller=db.session.get(PartnerShop, partner) if partner is not None else None,
        can_sell=can_write(*SELLERS)), (200 if request.headers.get("X-Requested-With") == "pos" else status)


def _till_settings(place) -> dict:
    """What ``static/till.js`` needs on both till pages: addresses, the user (each clerk's queue is
    their own), and the words it shows, in the page's language."""
    user = me()
    extra = {"community": request.values["community"]} if user.role == "admin" and request.values.get(
        "community") else {}
    refusals = {code: message(DomainError(code=code)) for code in SALE_REFUSALS}
    refusals["read_only_role"] = _("Not done: %(reason)s", reason=_("you may not do this."))
    return {
        "user": user.id, "community": place.code,
        "online_url": url_for(".pos", **extra), "goods_url": url_for(".goods_json", **extra),
        "api_url": url_for("shop.Redemptions"), "sw_url": url_for(".service_worker"),
        "scope": url_for(".pos"), "login_url": url_for("web_auth.login", next=url_for(".pos", **extra)),
        "can_sell": can_write(*SELLERS),
        "refusals": refusals,
        "texts": {
            "offline": _("Offline: the network is down. The till keeps working: each charge is kept on this "
                         "device and sent when the network is back."),
            "online_again": _("The network is back."),
            "back_online": _("Back to the online till"),
            "queued": _("Waiting to be sent (kept on this device at %(time)s)", time="{time}"),
            "sending": _("Sending…"),
            "sent": _("Sent: receipt No. %(no)s, %(total)s points; %(balance)s points left.",
                      no="{no}", total="{total}", balance="{balance}"),
            "refused": "{reason}",  # the refusal in words says "没有办成" itself
            "login": _("Log in again to send the waiting sales."),
            "waiting": _("%(n)s sales waiting to be sent.", n="{n}"),
            "charge": _("Charge %(total)s points (kept on this device)", total="{total}"),
            "saved": _("Kept on this device: %(names)s, %(total)s points for card %(card)s. It is sent when the "
                       "network is back; the outcome is shown below.", names="{names}", total="{total}",
                       card="{card}"),
            "pay_code_offline": _("A phone pay code cannot be used offline (it expires within two minutes). "
                                  "Scan the resident's card."),
            "no_goods": _("No goods with the barcode or name “%(text)s”.", text="{text}"),
            "card": _("Card %(card)s (checked when the sale is sent)", card="{card}"),
            "each": _("%(n)s points each", n="{n}"),
            "short": _("only %(n)s in stock on this device's list", n="{n}"),
            "limit": _("at most %(n)s a month", n="{n}"),
            "add_one": _("Add one"),
            "one_less": _("One less %(name)s", name="{name}"),
            "scan_first": _("Scan the card and the goods first."),
            "no_goods_list": _("The goods list is not on this device yet: open the till once while online."),
            "goods_as_of": _("Goods list of %(time)s", time="{time}"),
            "full": _("The basket is full."),
        },
    }


@bp.get("/pos")
@roles_required(*VIEWERS)
@pay_code_guess_limit(["GET"])
def pos():
    """The till. Every step is this GET form; the sale is the POST below."""
    place = community()
    shop.require_staff_view(me(), place.id)
    member = (request.args.get("member") or "").strip() or None
    ids = _item_ids()
    given = request.args.get("sale") or ""
    if (member or ids) and _SALE_KEY.match(given):
        charged = form_outcome(given)
        if charged is not None:
            # This basket was charged already (the Back button, a reload of an old address): never
            # offer it again; show its receipt and start afresh.
            return redirect(_pos_url(None, [], done=charged.get("done"), stale=1))
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
@pay_code_guess_limit(["POST"])
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


# --- the till as an installable web app that works offline ------------------------------------------

@bp.get("/pos/goods.json")
@roles_required(*VIEWERS)
def goods_json():
    """The goods the till sells, for the offline till: prices, stock, barcodes, photos; and a fresh CSRF
    token, which the queued sales need when they are sent. The service worker keeps the last copy."""
    from flask_wtf.csrf import generate_csrf

    place = community()
    shop.require_staff_view(me(), place.id)
    items = db.session.execute(select(Item).where(Item.community_id == place.id, Item.active.is_(True))
                               .order_by(Item.name, Item.id)).scalars().all()
    versions = photos.photo_versions(i.id for i in items)
    return jsonify({
        "community_code": place.code, "user": me().id, "csrf_token": generate_csrf(),
        "as_of": now().isoformat(timespec="seconds"),
        "items": [{"id": i.id, "sku": i.sku, "name": i.name, "barcode": i.barcode, "price_points": i.price_points,
                   "on_hand": i.on_hand, "monthly_limit_per_household": i.monthly_limit_per_household,
                   "photo_url": _photo_url(i.id, versions.get(i.id))} for i in items],
    })


@bp.get("/pos/offline")
@roles_required(*VIEWERS)
def offline():
    """The till's offline page: the service worker keeps it and shows it for the till's address when the
    network is down; ``static/till.js`` runs the basket there against the kept goods list."""
    place = community()
    shop.require_staff_view(me(), place.id)
    return render_template("clerk/pos_offline.html", place=place, till=_till_settings(place),
                           can_sell=can_write(*SELLERS))


@bp.get("/pos/manifest.webmanifest")
def manifest():
    """The web app manifest: the till installs as an app of its own (no login needed to read it; the
    browser fetches it without cookies)."""
    data = {
        "name": _("Love supermarket till"), "short_name": _("Till"), "lang": "zh-CN",
        "start_url": url_for(".pos"), "scope": url_for(".pos"), "display": "standalone",
        "background_color": "#ffffff", "theme_color": "#12355b",
        "icons": [{"src": url_for("static", filename=f"till-{size}.png"), "sizes": f"{size}x{size}",
                   "type": "image/png", "purpose": "any"} for size in (192, 512)],
    }
    return Response(json.dumps(data, ensure_ascii=False), mimetype="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})


#: What the service worker keeps besides the offline page and the goods list.
_TILL_ASSETS = ("site.css", "till.js", "pos.js", "till-192.png", "till-512.png")


def _static_version() -> str:
    """A digest of the service worker and the files it keeps: a change to any of them is a new
    service worker, which the browsers install (and so drop the old copies)."""
    cached = current_app.extensions.get("timebank.till_version")
    if cached is None:
        digest = hashlib.sha256()
        folder = Path(current_app.static_folder)
        for name in ("till-sw.js", *_TILL_ASSETS):
            digest.update((folder / name).read_bytes())
        cached = current_app.extensions["timebank.till_version"] = digest.hexdigest()[:16]
    return cached


@bp.get("/pos-sw.js")
def service_worker():
    """The till's service worker, served from ``/clerk/`` so that it may control ``/clerk/pos`` (its
    scope); a plain script file of the app, as the Content-Security-Policy wants."""
    config = {
        "version": _static_version(), "scope": url_for(".pos"), "shell": url_for(".offline"),
        "goods": url_for(".goods_json"), "photos": url_for("goods_photos.photo", item_id=0).rsplit("/0/", 1)[0],
        "assets": [url_for("static", filename=name) for name in _TILL_ASSETS] + [url_for(".manifest")],
    }
    source = (Path(current_app.static_folder) / "till-sw.js").read_text(encoding="utf-8")
    source = source.replace("__TILL_CONFIG__", json.dumps(config))
    return Response(source, mimetype="text/javascript", headers={"Cache-Control": "no-cache"})


# --- goods: new goods, changes, prices, photos ----------------------------------------------------

def _photo_url(item_id: int, version: str | None) -> str | None:
    return url_for("goods_photos.photo", item_id=item_id, v=version) if version else None


def _item_of(place, item_id: int) -> Item:
    item = db.session.get(Item, item_id)
    if item is None or item.community_id != place.id:
        abort(404)
    return item


def _writer(place):
    user = me()
    shop.require_shop_staff(user, place.id)
    return user


@bp.route("/goods", methods=["GET", "POST"])
@roles_required(*VIEWERS)
def goods():
    """Every item with its photo, price and stock; a form for new goods (clerk, committee)."""
    place = community()
    shop.require_staff_view(me(), place.id)
    if request.method == "POST":
        form = request.form
        data = {"sku": (form.get("sku") or "").strip(), "name": (form.get("name") or "").strip(),
                "price_points": form_number(form.get("price_points")),
                "barcode": (form.get("barcode") or "").strip() or None,
                "monthly_limit_per_household": form_number(form.get("monthly_limit_per_household")),
                "low_stock_threshold": form_number(form.get("low_stock_threshold")) or 0}
        try:
            if not take_form_key():
                return replay_form(url_for(".goods"))
            user = _writer(place)
            missing = {k: [_("Required.")] for k in ("sku", "name", "price_points") if data[k] in (None, "")}
            if missing:
                raise ValidationFailed(errors=missing)
            check_form(ItemIn(), {"community_code": place.code, **data})
            item = shop.create_item(place, user, **data)
        except DomainError as exc:
            db.session.rollback()
            flash(message(exc), "error")
            return redirect(url_for(".goods"))
        return form_done(url_for(".goods_item", item_id=item.id),
                         _("New goods added: %(name)s at %(points)d points. Record the goods in on the stock page.",
                           name=item.name, points=item.price_points))
    items = db.session.execute(select(Item).where(Item.community_id == place.id)
                               .order_by(Item.active.desc(), Item.name, Item.id)).scalars().all()
    versions = photos.photo_versions(i.id for i in items)
    return render_template("clerk/goods.html", place=place, items=items,
                           photo_urls={i.id: _photo_url(i.id, versions.get(i.id)) for i in items},
                           can_sell=can_write(*SELLERS))


@bp.get("/goods/<int:item_id>")
@roles_required(*VIEWERS)
def goods_item(item_id: int):
    """One item: change it, its price (with the history kept), its photo."""
    place = community()
    shop.require_staff_view(me(), place.id)
    item = _item_of(place, item_id)
    photo = db.session.get(ItemPhoto, item.id)
    return render_template("clerk/goods_item.html", place=place, item=item, prices=shop.price_history(item),
                           photo=photo, photo_url=_photo_url(item.id, photo.sha256[:16] if photo else None),
                           photo_limit_mb=photos.max_bytes() / 2**20, can_sell=can_write(*SELLERS))


def _item_form(item_id: int, action, success):
    """A keyed form on one item: ``action(place, user, item)`` once; refusals said in words."""
    place = community()
    back = url_for(".goods_item", item_id=item_id)
    try:
        if not take_form_key():
            return replay_form(back)
        user = _writer(place)
        item = _item_of(place, item_id)
        result = action(place, user, item)
    except DomainError as exc:
        db.session.rollback()
        flash(message(exc), "error")
        return redirect(back)
    return form_done(back, success(item, result))


@bp.post("/goods/<int:item_id>/change")
@roles_required(*SELLERS)
def change_goods(item_id: int):
    """Name, barcode, monthly limit, low-stock threshold, on sale or not (as ``PATCH /items/{id}``)."""
    form = request.form

    def change(place, user, item):
        changes = {"name": (form.get("name") or "").strip(),
                   "barcode": (form.get("barcode") or "").strip() or None,
                   "monthly_limit_per_household": form_number(form.get("monthly_limit_per_household")),
                   "low_stock_threshold": form_number(form.get("low_stock_threshold")) or 0,
                   "active": form.get("active") == "1"}
        if not changes["name"]:
            raise ValidationFailed(errors={"name": [_("Required.")]})
        check_form(ItemPatch(), changes)
        changes = {k: v for k, v in changes.items() if getattr(item, k) != v}
        return shop.update_item(item, user, **changes) if changes else item

    return _item_form(item_id, change, lambda item, _r: _("Saved: %(name)s.", name=item.name))


@bp.post("/goods/<int:item_id>/price")
@roles_required(*SELLERS)
def change_price(item_id: int):
    """A new price from now on; receipts keep the price they were sold at; the history is kept."""
    form = request.form

    def change(place, user, item):
        price, note = form_number(form.get("price_points")), (form.get("note") or "").strip()
        if price is None:
            raise ValidationFailed(errors={"price_points": [_("Required.")]})
        check_form(PriceIn(), {"price_points": price, "note": note})
        before = item.price_points
        shop.change_price(item, user, price, note)
        return before

    return _item_form(item_id, change, lambda item, before: _(
        "New price of %(name)s: %(points)d points (was %(before)d).", name=item.name, points=item.price_points,
        before=before))


@bp.url_value_preprocessor
def _photo_bodies(endpoint, _values):
    if endpoint == "web_clerk.goods_photo":
        request.max_content_length = photos.max_bytes() + 64 * 1024  # the form's other fields and framing


@bp.post("/goods/<int:item_id>/photo")
@roles_required(*SELLERS)
def goods_photo(item_id: int):
    """Upload (or remove) the item's photo: JPEG, PNG or WebP, checked by its first bytes."""
    remove = request.form.get("action") == "remove"

    def change(place, user, item):
        if remove:
            return photos.remove_photo(item, user)
        upload = request.files.get("photo")
        return photos.set_photo(item, user, upload.read() if upload else b"")

    return _item_form(item_id, change, lambda item, _r: _("Photo removed.") if remove else _("Photo saved."))


# --- one receipt and its returns --------------------------------------------------------------------

@bp.get("/receipts/<int:redemption_id>")
@roles_required(*VIEWERS)
def receipt_page(redemption_id: int):
    """One receipt with what is still charged per line, its returns, and a form to take goods back."""
    place = community()
    shop.require_staff_view(me(), place.id)
    try:
        redemption = shop.visible_redemption(me(), redemption_id)
    except NotFound:
        abort(404)
    if redemption.community_id != place.id:
        abort(404)
    user = me()
    own = user.household_id is not None and user.household_id == redemption.household_id
    return render_template("clerk/receipt.html", r=redemption,
                           household=db.session.get(Household, redemption.household_id),
                           names={line.item_id: line.name for line in redemption.lines},
                           can_sell=can_write(*SELLERS), own_household=own)


@bp.post("/receipts/<int:redemption_id>/return")
@roles_required(*SELLERS)
def return_goods(redemption_id: int):
    """Take goods back: the points of the units at the receipt's prices and the units come back."""
    back = url_for(".receipt_page", redemption_id=redemption_id)
    reason = (request.form.get("reason") or "").strip()
    try:
        if not take_form_key():
            return replay_form(back)
        lines = []
        for key, value in request.form.items():
            if key.startswith("qty-") and key[4:].isdigit():
                quantity = form_number(value)
                if quantity not in (None, 0):
                    lines.append({"item_id": int(key[4:]), "quantity": quantity})
        if not lines:
            raise ValidationFailed(errors={"lines": [_("Say how many of which goods come back.")]})
        check_form(ReturnIn(), {"lines": lines, "reason": reason})
        returned = shop.return_goods(redemption_id, me(), lines, reason)
    except DomainError as exc:
        db.session.rollback()
        flash(_("Not done: %(reason)s", reason=_(
            "this is a receipt of your own household: another clerk voids it or takes the goods back."))
              if exc.code == "self_approval" else message(exc), "error")
        return redirect(back)
    return form_done(back, _("Goods taken back: %(points)d points returned to the household.",
                             points=returned.points))


# --- photos, for every reader of the goods --------------------------------------------------------

photos_bp = Blueprint("goods_photos", __name__)


@photos_bp.get("/goods/<int:item_id>/photo")
@login_required
def photo(item_id: int):
    """The item's photo, for staff and residents of its community (as ``GET /api/v1/items/{id}``).
    Its address carries the photo's version (``?v=``), so a browser may keep it for a day."""
    item = db.session.get(Item, item_id)
    found = db.session.get(ItemPhoto, item_id) if item is not None else None
    if found is None:
        abort(404)
    try:
        shop.require_browse(me(), item.community_id)
    except DomainError:
        abort(404)
    response = Response(found.data, mimetype=found.content_type)
    response.headers["Cache-Control"] = "private, max-age=86400"
    response.set_etag(found.sha256)
    return response.make_conditional(request)


def init_app(app) -> None:
    from timebank.people import staff_pages

    staff_pages.register(app)
    app.register_blueprint(bp)
    app.register_blueprint(photos_bp)
