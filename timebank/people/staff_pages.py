"""Shared pieces of the staff pages (clerk and committee): which community, refusals in words, read-only.

* The community of a page is the staff member's own; an admin (who belongs to none) picks one with
  ``?community=<code>`` and gets the first one otherwise.
* Supervisors (监督小组) see the committee pages and change nothing: every POST of a staff blueprint
  is refused with 403 before the view runs (:func:`refuse_supervisor_writes`), and the templates
  show them no action buttons (``can_write``).
* A refusal of the operations (a ``DomainError``) is shown in plain words (:func:`message`).

They live in the people feature because a staff page works in one of its communities; the shop's,
earning's and the reports' pages use them.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import domain_message, form_done, replay_form, take_form_key
from timebank.core.policy import require_community
from timebank.people.models import Community

#: The three-colour care label of a household (三色管理).
COLOR_LABELS = {"red": _l("Red"), "yellow": _l("Yellow"), "green": _l("Green")}


def register(app) -> None:
    app.jinja_env.globals.setdefault("COLOR_LABELS", COLOR_LABELS)


def me():
    return current_user._get_current_object()


def community() -> Community:
    """The community the page works in (404 when an admin names an unknown one)."""
    user = me()
    if user.role != "admin":
        if user.community is None:
            abort(403)
        return user.community
    code = request.values.get("community")
    query = select(Community).order_by(Community.id)
    if code:
        query = query.where(Community.code == code)
    found = db.session.execute(query.limit(1)).scalar_one_or_none()
    if found is None:
        abort(404)
    return found


def can_write(*roles: str) -> bool:
    """Whether the logged-in user may press the buttons of a page meant for ``roles``."""
    user = me()
    return user.is_authenticated and (user.role == "admin" or user.role in roles)


def refuse_supervisor_writes():
    """A ``before_request`` hook: supervisors read only, so any POST of theirs is refused."""
    if request.method == "POST" and current_user.is_authenticated and current_user.role == "supervisor":
        abort(403)


def message(exc: DomainError) -> str:
    """The refusal in plain words (Chinese by default)."""
    messages = {
        "insufficient_points": _("the household does not have enough points for these goods."),
        "insufficient_stock": _("there is not enough stock of these goods."),
        "limit_exceeded": _("the household has reached this month's limit for these goods."),
        "unknown_member": _("no household with this card or code in this community."),
        "unknown_item": _("no goods with this barcode here."),
        "no_places_left": _("no places left today for this service; come another day."),
        "mixed_sellers": _("one receipt sells the goods of one shop: ring up the partner shop's goods apart."),
        "not_stocked": _("a service has no stock."),
        "partner_taken": _("a partner shop of this name exists."),
        "unknown_partner": _("no such partner shop in this community."),
        "pay_code_expired": _("the pay code has expired. Ask the resident to show the new code."),
        "pay_code_used": _("this pay code was already used. Ask the resident to show the new code."),
        "pay_code_invalid": _("this is not a card or pay code of this community."),
        "already_voided": _("this receipt is already voided."),
        "fully_returned": _("every item of this receipt was returned already."),
        "self_approval": _("nobody approves a claim of their own household, nor a claim they entered themselves."),
        "claim_not_pending": _("this claim was already decided."),
        "claim_not_publicized": _("objections are taken only while the claim is on the notice board."),
        "cap_exceeded": _("the household has reached the limit for this item in this period."),
        "rule_exists": _("this code is already used by another item of the points list."),
        "phone_taken": _("a resident with this phone number exists."),
        "username_taken": _("another login already uses this phone number as its username."),
        "resident_inactive": _("this resident has left; their record is kept as it was."),
        "other_community": _("a resident moves only to a household of the same community."),
        "same_household": _("the resident already lives in this household."),
        "already_closed": _("this month is already closed."),
        "same_signer": _("you have signed already; a second committee member must sign."),
        "month_not_ended": _("this month has not ended yet; it can be closed once it is over."),
        "month_closed": _("this month is closed; nothing can be added to it."),
        "not_found": _("it was not found."),
        "exports_busy": _("two exports of this community are being made; ask again once one of them is done."),
        "person_required": _("this login does not belong to a person yet; ask an admin or the committee to add "
                             "the person's phone number to it."),
        "person_has_login": _("this person already has a staff login here; one person, one login."),
        "person_already_set": _("this login already belongs to another person."),
        "login_inactive": _("this login is deactivated."),
        "wrong_password": _("the current password is wrong."),
    }
    text = messages.get(exc.code)
    if text is None:
        text = domain_message(exc)
    if exc.code == "validation_error" and exc.errors:
        text += " (" + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.errors.items()) + ")"
    return _("Not done: %(reason)s", reason=text)


def place():
    """The page's community, after checking that the user may work in it."""
    place = community()
    require_community(me(), place.id)
    return place


def write_once(action, success, back: str):
    """Run ``action`` once per form and say what happened (the request's boundary commits); a
    refusal is rolled back and said in words. The same form sent again is told it was sent already,
    with what the first sending did."""
    try:
        if not take_form_key():
            return replay_form(back)
        result = action()
    except DomainError as exc:
        db.session.rollback()
        flash(message(exc), "error")
        return redirect(back)
    return form_done(back, success if not callable(success) else success(result))
