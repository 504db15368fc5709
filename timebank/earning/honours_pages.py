"""The committee's pages for honours (荣誉评选与半年审核) and deductions (扣分项, 红黑榜).

* ``/committee/honours``: the honour list, nominations waiting for the committee, those on the
  notice board, honours under their half-yearly review (keep or withdraw, with a reason) and the
  honours held. Grid workers nominate; the committee decides.
* ``/committee/deductions``: the deduction items, deductions waiting for review and on the notice
  board, those applied (what the wallet lost and what counted against the ranking only), and the
  committee's choice to publish the black list.

Access is the API's: the operations check the roles and the community; supervisors read and change
nothing. Every form that changes something carries the CSRF token and a one-time ``form_key``.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from timebank.core.clock import to_local
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import check_form, form_number, roles_required
from timebank.earning import deductions as deduction_ops
from timebank.earning import honours as honour_ops
from timebank.earning.deductions_api import DeductionItemIn
from timebank.earning.honours_api import HonourIn
from timebank.earning.models import Deduction, DeductionItem, Honour, HonourAward
from timebank.people import staff_pages as staff
from timebank.people.models import Household
from timebank.people.staff_pages import can_write, me, refuse_supervisor_writes

bp = Blueprint("web_honours", __name__, url_prefix="/committee")
bp.before_request(refuse_supervisor_writes)

READERS = ("committee", "grid_worker", "supervisor")
WRITERS = ("committee", "grid_worker")


#: Refusals of these pages in words (the shared words of some codes speak of claims).
REFUSALS = {
    "self_approval": _l("nobody decides an honour or a deduction of their own household, nor one they proposed "
                        "themselves: another committee member decides."),
    "honour_already_held": _l("this household already holds this honour, or is nominated for it."),
    "honour_inactive": _l("this honour is no longer awarded."),
    "honour_exists": _l("this code is already used by another honour."),
    "award_not_pending": _l("this nomination was already decided."),
    "award_not_publicized": _l("objections are taken only while the notice is on the board."),
    "award_not_under_review": _l("this honour is not under review."),
    "award_not_held": _l("only an honour that is held can be withdrawn."),
    "deduction_item_exists": _l("this code is already used by another deduction item."),
    "deduction_item_inactive": _l("this deduction item is not in force."),
    "deduction_not_pending": _l("this deduction was already decided."),
    "deduction_not_publicized": _l("objections are taken only while the notice is on the board."),
}


def _in_words(action):
    """``action``, its refusals said in this page's words."""
    def run():
        try:
            return action()
        except DomainError as exc:
            words = REFUSALS.get(exc.code)
            if words is None:
                raise
            raise DomainError(str(words), code=f"{exc.code}_in_words", status=exc.status) from exc
    return run


def _back(endpoint: str) -> str:
    community = request.values.get("community")
    return url_for(endpoint, **({"community": community} if community else {}))


def _text(name: str, most: int = 500) -> str:
    return (request.form.get(name) or "").strip()[:most]


def _id(name: str) -> int:
    """A whole number chosen in a form (a household's id), 0 when there is none."""
    value = form_number(request.form.get(name))
    return value if isinstance(value, int) and 0 < value < 2**63 else 0


def _households(place_id: int) -> list[Household]:
    return list(db.session.execute(
        select(Household).where(Household.community_id == place_id).order_by(Household.grid, Household.name,
                                                                              Household.id)).scalars())


# --- honours --------------------------------------------------------------------------------------

@bp.route("/honours", methods=["GET", "POST"])
@roles_required(*READERS)
def honours():
    """The honour list and its awards; a POST nominates a household (评优评先)."""
    place = staff.place()
    user = me()
    if request.method == "POST":
        @_in_words
        def act():
            household_id = _id("household_id")
            return honour_ops.nominate(user, place, request.form.get("honour_code") or "", household_id,
                                       _text("note"))

        return staff.write_once(act, lambda award: _("%(household)s nominated for %(honour)s.",
                                                     household=award.household.name, honour=award.honour.title),
                                _back(".honours"))

    def awards(*statuses, order=HonourAward.id):
        return db.session.execute(select(HonourAward).where(
            HonourAward.community_id == place.id, HonourAward.status.in_(statuses)).order_by(order, HonourAward.id)
            .limit(200)).scalars().all()

    return render_template(
        "committee/honours.html", place=place,
        honours=db.session.execute(select(Honour).where(Honour.community_id == place.id).order_by(Honour.id))
        .scalars().all(),
        pending=awards("pending"), publicized=awards("publicized", order=HonourAward.publicity_ends_at),
        under_review=awards("under_review", order=HonourAward.next_review_at),
        held=awards("held", order=HonourAward.next_review_at),
        households=_households(place.id), own_household=user.household_id, me_id=user.id,
        can_nominate=can_write(*honour_ops.NOMINATORS), can_decide=can_write(*honour_ops.DECIDERS),
        can_object=user.role != "supervisor")


@bp.post("/honours/list")
@roles_required(*honour_ops.DECIDERS)
def new_honour():
    """A new honour of the list (committee)."""
    place = staff.place()
    numbers = {name: form_number(request.form.get(name)) for name in
               ("points", "publicity_days", "term_months", "review_months")}

    @_in_words

    def act():
        check_form(HonourIn(), {k: v for k, v in numbers.items() if v is not None})
        return honour_ops.create_honour(
            me(), place, _text("code", 64), _text("title", 200) or "?", numbers["points"] or 0,
            numbers["publicity_days"] if numbers["publicity_days"] is not None else 7,
            numbers["term_months"] or 12, numbers["review_months"] or 6)

    return staff.write_once(act, lambda h: _("Honour %(title)s added to the list.", title=h.title),
                            _back(".honours"))


AWARD_ACTIONS = ("approve", "reject", "object", "keep", "withdraw")


@bp.post("/honours/awards/<int:award_id>/<action>")
@roles_required(*WRITERS)
def award_action(award_id: int, action: str):
    """Approve, reject or object to a nomination; keep or withdraw an award under review (with a reason)."""
    if action not in AWARD_ACTIONS:
        abort(404)
    user = me()
    reason = _text("reason")
    back = _back(".honours")
    if action != "approve" and not reason:
        flash(_("Give a reason."), "error")
        return redirect(back)

    @_in_words

    def act():
        if action == "object":
            return honour_ops.object_award(user, award_id, reason)
        award = honour_ops.visible_award(user, award_id)
        if action == "approve":
            return honour_ops.approve_award(user, award)
        if action == "reject":
            return honour_ops.reject_award(user, award, reason)
        if action == "keep":
            return honour_ops.keep_award(user, award, reason)
        return honour_ops.withdraw_award(user, award, reason)

    def said(award):
        name, title = award.household.name, award.honour.title
        if action == "approve" and award.status == "publicized":
            return _("%(household)s: %(honour)s on the notice board until %(day)s.", household=name, honour=title,
                     day=to_local(award.publicity_ends_at).strftime("%Y-%m-%d %H:%M"))
        if action == "approve":
            return _("%(household)s holds %(honour)s now.", household=name, honour=title)
        if action == "reject":
            return _("The nomination of %(household)s was not approved.", household=name)
        if action == "object":
            return _("Objection recorded; the nomination is back for review.")
        if action == "keep":
            return _("%(household)s keeps %(honour)s; next review on %(day)s.", household=name, honour=title,
                     day=to_local(award.next_review_at).strftime("%Y-%m-%d"))
        return _("%(honour)s of %(household)s withdrawn.", household=name, honour=title)

    return staff.write_once(act, said, back)


# --- deductions and the rankings -----------------------------------------------------------------

@bp.route("/deductions", methods=["GET", "POST"])
@roles_required(*READERS)
def deductions():
    """Deduction items and deductions; a POST enters a deduction against a household."""
    place = staff.place()
    user = me()
    if request.method == "POST":
        @_in_words
        def act():
            household_id = _id("household_id")
            return deduction_ops.create_deduction(user, place, request.form.get("item_code") or "", household_id,
                                                  None, _text("note"))

        return staff.write_once(act, lambda d: _("Deduction entered for %(household)s; the committee reviews it.",
                                                 household=d.household.name), _back(".deductions"))

    def rows(*statuses, order=Deduction.id):
        return db.session.execute(select(Deduction).where(
            Deduction.community_id == place.id, Deduction.status.in_(statuses)).order_by(order, Deduction.id)
            .limit(200)).scalars().all()

    return render_template(
        "committee/deductions.html", place=place,
        items=db.session.execute(select(DeductionItem).where(DeductionItem.community_id == place.id)
                                 .order_by(DeductionItem.id)).scalars().all(),
        pending=rows("pending"), publicized=rows("publicized", order=Deduction.publicity_ends_at),
        applied=db.session.execute(select(Deduction).where(
            Deduction.community_id == place.id, Deduction.status.in_(("applied", "rejected")))
            .order_by(Deduction.id.desc()).limit(30)).scalars().all(),
        households=_households(place.id), own_household=user.household_id, me_id=user.id,
        publish_black_list=deduction_ops.publishes_black_list(place.id),
        can_enter=can_write(*deduction_ops.ENTERING_STAFF), can_decide=can_write(*deduction_ops.DECIDERS),
        can_object=user.role != "supervisor")


@bp.post("/deductions/items")
@roles_required(*deduction_ops.DECIDERS)
def new_deduction_item():
    place = staff.place()
    points, days = form_number(request.form.get("points")), form_number(request.form.get("publicity_days"))
    if isinstance(points, int) and points > 0:
        points = -points  # the form asks "how many points it takes"

    @_in_words

    def act():
        check_form(DeductionItemIn(), {k: v for k, v in {"points": points, "publicity_days": days}.items()
                                       if v is not None})
        return deduction_ops.create_item(me(), place, _text("code", 64), _text("title", 200) or "?", points or 0,
                                         days if days is not None else 3)

    return staff.write_once(act, lambda i: _("Deduction item %(title)s added.", title=i.title), _back(".deductions"))


@bp.post("/deductions/<int:deduction_id>/<action>")
@roles_required(*WRITERS)
def deduction_action(deduction_id: int, action: str):
    if action not in ("approve", "reject", "object"):
        abort(404)
    user = me()
    reason = _text("reason")
    back = _back(".deductions")
    if action != "approve" and not reason:
        flash(_("Give a reason."), "error")
        return redirect(back)

    @_in_words

    def act():
        if action == "object":
            return deduction_ops.object_deduction(user, deduction_id, reason)
        deduction = deduction_ops.visible_deduction(user, deduction_id)
        if action == "approve":
            return deduction_ops.approve_deduction(user, deduction)
        return deduction_ops.reject_deduction(user, deduction, reason)

    def said(d):
        if action == "approve" and d.status == "publicized":
            return _("Deduction on the notice board until %(day)s.",
                     day=to_local(d.publicity_ends_at).strftime("%Y-%m-%d %H:%M"))
        if action == "approve":
            return _("Deduction applied: %(wallet)d points taken from the wallet, %(rest)d counted against the "
                     "ranking only.", wallet=d.wallet_points, rest=d.ranking_points)
        if action == "reject":
            return _("Deduction not approved.")
        return _("Objection recorded; the deduction is back for review.")

    return staff.write_once(act, said, back)


@bp.post("/rankings/settings")
@roles_required(*deduction_ops.DECIDERS)
def ranking_settings():
    """Whether the public board shows the black list (红黑榜)."""
    place = staff.place()
    publish = request.form.get("publish_black_list") == "1"

    @_in_words

    def act():
        return deduction_ops.set_black_list(me(), place, publish)

    return staff.write_once(act, lambda s: _("The public board shows the black list.") if s.publish_black_list
                            else _("The public board does not show the black list."), _back(".deductions"))


def init_app(app) -> None:
    app.register_blueprint(bp)
