"""The grid worker's desk for a resident without a phone (居民代办): everything a resident does on the
phone, done for them by a grid worker or a committee member from the printed card.

``/committee/serve``: scan the card (a resident's own card, the household's card, or the phone
number typed); a household card of several members asks which member. Then, for that person: their
household's points and their own minutes, a claim from the points list (代录), a request for help
(time bank), help they give (a request they take on) and help they received (confirmed for them, which
pays the helper), and gifts of their minutes to kin or to the community pool. Each write is the
operation the resident's own page uses, with the staff member as the one who acted (recorded as
entered for the resident, as the API records it). The household's member cards print from here.

Supervisors see the desk and change nothing (every POST refused, no forms). Forms carry the CSRF
token and a one-time ``form_key``.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

import ledger
from timebank.core import accounts
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import check_form, form_number, hours_text, roles_required
from timebank.core.policy import require_community, visible_resident
from timebank.earning import operations as earning
from timebank.earning.models import Claim, Rule
from timebank.earning.pages import chosen_member, find_card
from timebank.hours import operations as hours
from timebank.hours.api import HelpIn, TransferIn
from timebank.hours.models import HelpRequest
from timebank.people import staff_pages as staff
from timebank.people.models import Resident
from timebank.people.staff_pages import can_write, me, refuse_supervisor_writes

bp = Blueprint("web_serve", __name__, url_prefix="/committee/serve")
bp.before_request(refuse_supervisor_writes)

READERS = ("committee", "grid_worker", "supervisor")
#: The lengths of help offered in the form (minutes), as on the resident's own page.
HELP_LENGTHS = (30, 60, 90, 120, 180, 240)
NO_SUCH_CARD = _l("No resident of this community has this card or phone number.")


def _resident(resident_id: int) -> Resident:
    resident = visible_resident(me(), db.session.get(Resident, resident_id))
    require_community(me(), resident.household.community_id, *READERS)
    return resident


def _desk_url(resident: Resident) -> str:
    args = {"card": resident.member_code}
    if me().role == "admin":
        args["community"] = resident.household.community.code
    return url_for(".desk", **args)


def _rules(community_id: int) -> list:
    listed = []
    for rule in db.session.execute(select(Rule).where(Rule.community_id == community_id).order_by(Rule.code)).scalars():
        version = earning.version_at(rule)
        if version is not None and version.active:
            listed.append((rule, version))
    return listed


def _panel(resident: Resident) -> dict:
    """What the desk shows of one person: points, minutes, their claims, help and kin."""
    household = resident.household
    members = [m.id for m in household.members]
    return {
        "points": ledger.balance(db.session, accounts.household_points(household.id)),
        "minutes": ledger.balance(db.session, accounts.resident_minutes(resident.id)),
        "rules": _rules(household.community_id),
        "claims": db.session.execute(select(Claim).where(Claim.household_id == household.id)
                                     .order_by(Claim.id.desc()).limit(8)).scalars().all(),
        "theirs": db.session.execute(select(HelpRequest).where(
            or_(HelpRequest.requester_id == resident.id, HelpRequest.volunteer_id == resident.id))
            .order_by(HelpRequest.id.desc()).limit(20)).scalars().all(),
        "open_requests": db.session.execute(select(HelpRequest).where(
            HelpRequest.community_id == household.community_id, HelpRequest.status == "open",
            HelpRequest.requester_id.not_in(members)).order_by(HelpRequest.id.desc()).limit(20)).scalars().all(),
        "kin": [m for m in household.members if m.active and m.id != resident.id],
    }


@bp.get("")
@roles_required(*READERS)
def desk():
    place = staff.place()
    card = (request.args.get("card") or "").strip()[:32]
    context = {"place": place, "card": card, "household": None, "resident": None, "members": [], "error": None,
               "can_act": can_write(*hours.HELPING_STAFF), "help_lengths": HELP_LENGTHS}
    if card:
        try:
            household, resident = find_card(place.id, card)
        except DomainError:
            context["error"] = str(NO_SUCH_CARD)
            return render_template("committee/serve.html", **context), 404
        if resident is None:
            resident = chosen_member(household, request.args.get("resident", type=int))
        context.update(household=household, resident=resident,
                       members=[m for m in household.members if m.active])
        if resident is not None:
            context.update(_panel(resident))
    return render_template("committee/serve.html", **context)


@bp.post("/<int:resident_id>/claim")
@roles_required(*earning.ENTERING_STAFF)
def claim(resident_id: int):
    """代录 from the desk: the claim is entered for this person and follows the usual review."""
    resident = _resident(resident_id)
    user = me()

    def act():
        note = (request.form.get("note") or "").strip()[:500]
        return earning.create_claim(user, resident.household.community, request.form.get("rule_code") or "",
                                    resident.id, note)

    return staff.write_once(act, lambda c: _("Claim %(id)d entered for %(name)s.", id=c.id, name=resident.name),
                            _desk_url(resident))


@bp.post("/<int:resident_id>/help")
@roles_required(*hours.HELPING_STAFF)
def help_request(resident_id: int):
    """The time bank for this person: ask for help (``post``), take on a neighbour's request as the
    helper (``accept``), or confirm that the help they asked for was given (``complete``: the minutes
    move to the helper, or from the pool for a red household)."""
    resident = _resident(resident_id)
    user = me()
    action = request.form.get("action")

    def act():
        if action == "post":
            title = (request.form.get("title") or "").strip()
            minutes = form_number(request.form.get("minutes"))
            check_form(HelpIn(), {"resident_id": resident.id, "title": title, "minutes": minutes})
            if not title or not isinstance(minutes, int):
                raise ValidationFailed(errors={"title": [_("Say what help is needed and for how long.")]})
            hours.create_help_request(user, resident.id, title[:200], minutes)
            return _("Help request posted for %(name)s: %(title)s.", name=resident.name, title=title[:200])
        found = hours.visible_help_request(user, request.form.get("request_id", type=int) or 0)
        if action == "accept":
            hours.accept_help_request(user, found, resident.id)
            return _("%(name)s is the helper for: %(title)s.", name=resident.name, title=found.title)
        if action == "complete":
            if found.requester_id != resident.id:
                raise ValidationFailed(errors={"request_id": [_("This is not a request of this person.")]})
            hours.complete_help_request(user, found)
            return _("Confirmed for %(name)s: %(time)s went to %(helper)s.", name=resident.name,
                     time=hours_text(found.minutes), helper=found.volunteer.name)
        raise ValidationFailed(errors={"action": [_("Choose what to do.")]})

    return staff.write_once(act, lambda said: said, _desk_url(resident))


@bp.post("/<int:resident_id>/gift")
@roles_required(*hours.HELPING_STAFF)
def gift(resident_id: int):
    """A gift of this person's minutes to kin in the same household or to the community pool."""
    resident = _resident(resident_id)
    user = me()
    target = request.form.get("to", "")

    def act():
        minutes = form_number(request.form.get("minutes"))
        if not isinstance(minutes, int):
            raise ValidationFailed(errors={"minutes": [_("Choose how many minutes to give.")]})
        check_form(TransferIn(), {"from_resident_id": resident.id, "minutes": minutes})
        if target == "pool":
            hours.transfer(user, resident.id, minutes, to_pool=True)
            return _("%(name)s gave %(time)s to the community pool.", name=resident.name, time=hours_text(minutes))
        receiver = chosen_member(resident.household, int(target) if target.isdigit() else None)
        if receiver is None:
            raise ValidationFailed(errors={"to": [_("Time goes to family in the same household or to the pool.")]})
        hours.transfer(user, resident.id, minutes, to_resident_id=receiver.id)
        return _("%(name)s gave %(time)s to %(receiver)s.", name=resident.name, time=hours_text(minutes),
                 receiver=receiver.name)

    return staff.write_once(act, lambda said: said, _desk_url(resident))


def init_app(app) -> None:
    app.register_blueprint(bp)
