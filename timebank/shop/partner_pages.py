"""Pages for services (特色服务) and partner shops (爱心商家).

* ``/clerk/services``: the community's services with their price, places per day and places left
  today; a clerk or committee member adds one (a partner shop's clerk adds one of that shop).
* ``/committee/partners``: the partner shops, their clerk logins; the committee adds a partner shop
  and makes a clerk login the partner's.
* ``/committee/partners/settlement``: the month's settlement per partner shop from the ledger, as a
  printable table (and CSV).

Every form is one-time (``form_key``); refusals are said in words.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from timebank.core import clock
from timebank.core.clock import local_zone, now
from timebank.core.errors import ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import check_form, form_number, roles_required
from timebank.core.users import User
from timebank.people.staff_pages import can_write, community, me, refuse_supervisor_writes, write_once
from timebank.shop import operations as shop
from timebank.shop import partners as partner_ops
from timebank.shop.api import ItemIn, PartnerIn
from timebank.shop.models import Item

services_bp = Blueprint("web_services", __name__, url_prefix="/clerk/services")
services_bp.before_request(refuse_supervisor_writes)
partners_bp = Blueprint("web_partners", __name__, url_prefix="/committee/partners")
partners_bp.before_request(refuse_supervisor_writes)

VIEWERS = (*shop.SHOP_ROLES, "supervisor")
MANAGERS_AND_READERS = ("committee", "supervisor")


# --- services ---------------------------------------------------------------------------------------

@services_bp.route("", methods=["GET", "POST"])
@roles_required(*VIEWERS)
def services():
    """The services and their places today; add one."""
    place = community()
    user = me()
    shop.require_staff_view(user, place.id)
    own = shop.partner_of(user)
    if request.method == "POST":
        if not can_write(*shop.SHOP_ROLES):
            abort(403)
        form = request.form
        data = {"sku": (form.get("sku") or "").strip(), "name": (form.get("name") or "").strip(),
                "price_points": form_number(form.get("price_points")),
                "daily_places": form_number(form.get("daily_places")),
                "partner_id": form_number(form.get("partner_id")) if own is None else own}

        def add():
            if not data["sku"] or not data["name"] or data["price_points"] is None:
                raise ValidationFailed(errors={"name": [_("Give the code, the name and the price.")]})
            check_form(ItemIn(), {"community_code": place.code, "kind": "service", **data})
            shop.require_shop_staff(user, place.id)
            return shop.create_item(place, user, kind="service", **data)

        return write_once(add, lambda item: _("Service added: %(name)s.", name=item.name),
                          url_for(".services", **_admin_args()))
    query = select(Item).where(Item.community_id == place.id, Item.kind == "service")
    if own is not None:
        query = query.where(Item.partner_id == own)
    rows = db.session.execute(query.order_by(Item.active.desc(), Item.name)).scalars().all()
    partners = partner_ops.partners(place.id, active_only=True)
    names = {p.id: p.name for p in partner_ops.partners(place.id)}
    return render_template("clerk/services.html", services=[(s, shop.places_left_today(s)) for s in rows],
                           partners=partners, partner_names=names, own=own,
                           can_sell=can_write(*shop.SHOP_ROLES))


def _admin_args() -> dict:
    code = request.values.get("community")
    return {"community": code} if code and me().role == "admin" else {}


# --- partner shops ----------------------------------------------------------------------------------

@partners_bp.route("", methods=["GET", "POST"])
@roles_required(*MANAGERS_AND_READERS)
def partners():
    """The partner shops with their clerk logins; add one."""
    place = community()
    user = me()
    shop.require_staff_view(user, place.id)
    if request.method == "POST":
        form = request.form
        data = {"name": (form.get("name") or "").strip(), "address": (form.get("address") or "").strip()}

        def add():
            check_form(PartnerIn(), {"community_code": place.code, **data})
            return partner_ops.create_partner(place, user, **data)

        return write_once(add, lambda p: _("Partner shop added: %(name)s.", name=p.name),
                          url_for(".partners", **_admin_args()))
    rows = partner_ops.partners(place.id)
    linked = partner_ops.clerks([p.id for p in rows])
    taken = {u.id for users in linked.values() for u in users}
    free = db.session.execute(
        select(User).where(User.community_id == place.id, User.role == "clerk", User.active.is_(True))
        .order_by(User.username)).scalars().all()
    return render_template("committee/partners.html", partners=rows, linked=linked,
                           clerks=[u for u in free if u.id not in taken], can_manage=can_write("committee"),
                           month=_this_month())


@partners_bp.post("/<int:partner_id>/clerks")
@roles_required("committee")
def link_clerk(partner_id: int):
    """Make a clerk login the partner shop's."""
    place = community()
    user = me()
    username = (request.form.get("username") or "").strip()

    def link():
        partner = partner_ops.get_partner(partner_id, place.id)
        clerk = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        partner_ops.link_clerk(partner, user, clerk)
        return partner

    return write_once(link, lambda p: _("%(username)s now works the till of %(name)s.", username=username,
                                         name=p.name), url_for(".partners", **_admin_args()))


def _this_month() -> str:
    today = now().astimezone(local_zone()).date()
    return f"{today.year:04d}-{today.month:02d}"


def _month_arg() -> str:
    month = (request.args.get("month") or "").strip() or _this_month()
    try:
        clock.parse_month(month)
    except ValidationFailed:
        abort(404)
    return month


def _step(month: str, months: int) -> str:
    year, mon = clock.parse_month(month)
    index = year * 12 + mon - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@partners_bp.get("/settlement")
@roles_required(*MANAGERS_AND_READERS)
def settlement():
    """The month's settlement with each partner shop: a printable table."""
    place = community()
    shop.require_staff_view(me(), place.id)
    month = _month_arg()
    report = partner_ops.settlement(place.id, month)
    following = _step(month, 1)
    this = _this_month()
    return render_template("committee/partner_settlement.html", report=report, month=month, place=place,
                           previous=_step(month, -1), following=following if following <= this else None,
                           printed=now().astimezone(local_zone()).date())


@partners_bp.get("/settlement.csv")
@roles_required(*MANAGERS_AND_READERS)
def settlement_export():
    """The month's settlement as CSV (every cell through the export's formula guard)."""
    place = community()
    shop.require_staff_view(me(), place.id)
    month = _month_arg()
    report = partner_ops.settlement(place.id, month)
    filename = f"partners-{place.code}-{report['month']}.csv"
    return Response("\ufeff" + partner_ops.settlement_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def init_app(app) -> None:
    app.register_blueprint(services_bp)
    app.register_blueprint(partners_bp)
