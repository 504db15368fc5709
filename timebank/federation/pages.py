"""Staff pages for hour vouchers (docs/federation.md): issue one for a resident and print it with its QR
code; redeem one of another deployment, pasted or typed in by a handheld scanner.

Committee members and grid workers act for the residents of their community (the operations' rules,
the same as the API's); supervisors see the page and change nothing. Forms carry a one-time key.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import (
    form_done,
    form_number,
    hours_text,
    qr_svg,
    replay_form,
    roles_required,
    take_form_key,
)
from timebank.federation import operations as ops
from timebank.federation import voucher as fmt
from timebank.federation.models import IssuedVoucher, RedeemedVoucher
from timebank.people.models import Household, Resident
from timebank.people.staff_pages import can_write, community, me, message, refuse_supervisor_writes

bp = Blueprint("web_vouchers", __name__)
bp.before_request(refuse_supervisor_writes)

READERS = (*ops.HELPING_STAFF, "supervisor")


def _resident_by_phone(community_id: int, phone: str) -> Resident | None:
    phone = (phone or "").strip()
    if not phone:
        return None
    return db.session.execute(select(Resident).join(Household).where(
        Resident.phone == phone, Household.community_id == community_id)).scalar_one_or_none()


def _stop(message: str, back: str):
    """A form that cannot be done as filled in: nothing is kept (its key neither), say why."""
    db.session.rollback()
    flash(message, "error")
    return redirect(back)


def _refused(exc: DomainError) -> None:
    db.session.rollback()
    flash(_("Not done: %(reason)s", reason=_voucher_message(exc)), "error")


def _voucher_message(exc: DomainError) -> str:
    messages = {
        "voucher_invalid": _("this is not a valid voucher (changed, damaged, or made out to another place)."),
        "voucher_untrusted": _("this voucher comes from a deployment this one does not trust."),
        "voucher_used": _("this voucher was redeemed already."),
        "voucher_expired": _("this voucher has expired; its minutes go back to the resident at home."),
        "voucher_wrong_person": _("this voucher is made out to another person (phone number)."),
        "voucher_not_outstanding": _("this voucher was given back already."),
    }
    return messages.get(exc.code) or message(exc)


@bp.get("/committee/vouchers")
@roles_required(*READERS)
def vouchers():
    place = community()
    issued = db.session.execute(select(IssuedVoucher).where(IssuedVoucher.community_id == place.id)
                                .order_by(IssuedVoucher.id.desc()).limit(20)).scalars().all()
    redeemed = db.session.execute(select(RedeemedVoucher).where(RedeemedVoucher.community_id == place.id)
                                  .order_by(RedeemedVoucher.id.desc()).limit(20)).scalars().all()
    names = {r.id: r.name for r in db.session.execute(select(Resident).where(Resident.id.in_(
        [v.resident_id for v in issued] + [v.resident_id for v in redeemed]))).scalars()}
    return render_template("committee/vouchers.html", community=place, issued=issued, redeemed=redeemed,
                           names=names, audiences=ops.counterparties(), can_write=can_write(*ops.HELPING_STAFF))


@bp.post("/committee/vouchers/issue")
@roles_required(*ops.HELPING_STAFF)
def issue():
    place = community()
    back = url_for(".vouchers")
    if not take_form_key():  # first: a form without its key is refused (400), one sent twice is done once
        return replay_form(back)
    resident = _resident_by_phone(place.id, request.form.get("phone", ""))
    minutes = form_number(request.form.get("minutes"))
    days = form_number(request.form.get("days"))
    if resident is None:
        return _stop(_("No resident with this phone number in this community."), back)
    if not isinstance(minutes, int) or not 1 <= minutes <= 100_000 or not isinstance(days, int) \
            or not 1 <= days <= ops.MAX_DAYS:
        return _stop(_("Choose how many minutes, and for how many days."), back)
    try:
        row = ops.issue_voucher(me(), resident.id, minutes, request.form.get("audience") or None, days)
    except DomainError as exc:
        _refused(exc)
        return redirect(back)
    return form_done(url_for(".voucher", voucher_id=row.voucher_id),
                     _("Voucher made: %(time)s for %(name)s. Print it and hand it over.",
                       time=hours_text(minutes), name=resident.name))


@bp.get("/committee/vouchers/<voucher_id>")
@roles_required(*READERS)
def voucher(voucher_id: str):
    """The voucher to print: its QR code (the whole signed text) and the text itself."""
    try:
        row = ops.visible_voucher(me(), voucher_id)
    except DomainError:
        abort(404)
    resident = db.session.get(Resident, row.resident_id)
    return render_template("committee/voucher.html", voucher=row, resident=resident, qr=qr_svg(row.text, scale=4),
                           issuer=fmt.parse(row.text).issuer)


@bp.post("/committee/vouchers/redeem")
@roles_required(*ops.HELPING_STAFF)
def redeem():
    place = community()
    back = url_for(".vouchers")
    if not take_form_key():
        return replay_form(back)
    resident = _resident_by_phone(place.id, request.form.get("phone", ""))
    text = request.form.get("voucher", "")
    if resident is None:
        return _stop(_("No resident with this phone number in this community."), back)
    if not text.strip():
        return _stop(_("Paste or scan the voucher."), back)
    try:
        row = ops.redeem_voucher(me(), text, resident.id)
    except DomainError as exc:
        _refused(exc)
        return redirect(back)
    return form_done(back, _("Redeemed: %(time)s from %(issuer)s for %(name)s.", time=hours_text(row.minutes),
                             issuer=row.issuer, name=resident.name))


def init_app(app) -> None:
    app.register_blueprint(bp)
