"""The notices' pages: one's own notices (``/me/notices``: large type, unread marked, "mark as read"),
the committee's dead letters (``/committee/notices``) and the grid worker's printed list
(``/grid/notices``, an A4 page to hand over to residents without a phone, marked delivered here).

Access is the operations'; supervisors read and change nothing. Every form carries a one-time
``form_key``.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import login_required, roles_required
from timebank.notices import messages
from timebank.notices import operations as ops
from timebank.notices.models import Notification
from timebank.people import staff_pages as staff
from timebank.people.staff_pages import can_write, me, refuse_supervisor_writes

bp = Blueprint("web_notices", __name__)
bp.before_request(refuse_supervisor_writes)

#: Notices shown on one's own page.
PAGE = 50


#: The notices' refusals in words.
REFUSALS = {
    "notice_not_dead": _l("this notice is not a dead letter (it was sent again or printed already)."),
    "notice_not_printable": _l("only a notice to a resident goes on the printed list."),
    "notice_not_printed": _l("this notice is not on the printed list."),
}


def _in_words(action):
    """Run ``action``; a refusal of the notices is said in words."""
    try:
        return action()
    except DomainError as exc:
        words = REFUSALS.get(exc.code)
        if words is None:
            raise
        raise DomainError(str(words), code="notice_refused", status=exc.status) from exc


def _back(endpoint: str) -> str:
    community = request.values.get("community")
    return url_for(endpoint, **({"community": community} if community else {}))


# --- one's own notices -----------------------------------------------------------------------------

@bp.get("/me/notices")
@login_required
def mine():
    user = me()
    notices = db.session.execute(ops.my_notices(user).order_by(Notification.id.desc()).limit(PAGE)).scalars().all()
    return render_template("notices/mine.html", notices=notices, unread=ops.unread_count(user),
                           text_of=messages.text, EVENT_LABELS=messages.EVENT_LABELS)


@bp.post("/me/notices/<int:notice_id>/read")
@login_required
def read(notice_id: int):
    return staff.write_once(lambda: ops.mark_read(me(), notice_id), _("Marked as read."), url_for(".mine"))


@bp.post("/me/notices/read-all")
@login_required
def read_all():
    return staff.write_once(lambda: ops.mark_all_read(me()),
                            lambda n: _("Notices marked as read: %(num)d", num=n),
                            url_for(".mine"))


# --- dead letters (the committee) --------------------------------------------------------------------

@bp.get("/committee/notices")
@roles_required(*ops.DEAD_LETTER_READERS)
def dead_letters():
    place = staff.place()
    dead = db.session.execute(
        ops.dead_letters(me(), place).order_by(Notification.id.desc()).limit(200)).scalars().all()
    counts = dict(db.session.execute(
        select(Notification.channel + ":" + Notification.status, func.count())
        .where(Notification.community_id == place.id).group_by(Notification.channel, Notification.status)).all())
    recipients = _recipients(dead)
    return render_template("notices/dead_letters.html", place=place, dead=dead, counts=counts,
                           recipients=recipients, text_of=messages.text, EVENT_LABELS=messages.EVENT_LABELS,
                           DELIVERY_LABELS=messages.DELIVERY_LABELS, can_act=can_write(*ops.DEAD_LETTER_WRITERS))


def _recipients(notices) -> dict[int, str]:
    from timebank.core.users import User
    from timebank.people.models import Resident

    residents = {r.id: r.name for r in db.session.execute(
        select(Resident).where(Resident.id.in_({n.resident_id for n in notices if n.resident_id}))).scalars()}
    users = {u.id: u.username for u in db.session.execute(
        select(User).where(User.id.in_({n.user_id for n in notices if n.user_id}))).scalars()}
    return {n.id: residents.get(n.resident_id, "") if n.resident_id else users.get(n.user_id, "") for n in notices}


@bp.post("/committee/notices/<int:notice_id>/<action>")
@roles_required(*ops.DEAD_LETTER_WRITERS)
def dead_letter_action(notice_id: int, action: str):
    back = _back(".dead_letters")
    if action == "retry":
        return staff.write_once(lambda: _in_words(lambda: ops.retry(me(), notice_id)),
                                _("Notice %(id)d will be sent again.", id=notice_id), back)
    if action == "print":
        return staff.write_once(lambda: _in_words(lambda: ops.print_instead(me(), notice_id)),
                                _("Notice %(id)d moved to the printed list.", id=notice_id), back)
    flash(_("Not done: %(reason)s", reason=_("it was not found.")), "error")
    return redirect(back)


# --- the printed list (grid workers) -------------------------------------------------------------------

@bp.get("/grid/notices")
@roles_required(*ops.PRINT_READERS)
def print_list():
    place = staff.place()
    grid = request.args.get("grid") or None
    rows = db.session.execute(ops.print_list(me(), place, grid)).all()
    households: list[dict] = []
    for notice, resident, household in rows:
        if not households or households[-1]["household"].id != household.id:
            households.append({"household": household, "notices": []})
        households[-1]["notices"].append((notice, resident))
    return render_template("notices/print.html", place=place, households=households, grid=grid,
                           grids=ops.grids(place), text_of=messages.text, EVENT_LABELS=messages.EVENT_LABELS,
                           can_mark=can_write(*ops.PRINTERS), printing=request.args.get("print") == "1")


@bp.post("/grid/notices/delivered")
@roles_required(*ops.PRINTERS)
def delivered():
    grid = request.values.get("grid")
    back = url_for(".print_list", **{k: v for k, v in (("community", request.values.get("community")),
                                                       ("grid", grid)) if v})
    ids = [int(i) for i in request.form.getlist("notice_id") if i.isdigit()]

    def act():
        return _in_words(lambda: [ops.mark_delivered(me(), notice_id) for notice_id in ids])

    return staff.write_once(act, lambda done: _("Notices marked as handed over: %(num)d", num=len(done)), back)


def init_app(app) -> None:
    app.register_blueprint(bp)
