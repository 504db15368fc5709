"""The public notice board (公示栏) and the objection form; the committee's anomalies page.

* ``/public/<community_code>``: no login. Claims, honour awards and deductions on the notice board
  with masked names (张*明), the month's red list (积分榜 by ranking score, masked) and, when the
  committee publishes it, the black list (红黑榜), the honours held, donors thanked, the latest
  signed checkpoint. ``?print=1``
  gives the A4 print layout for the village blackboard (no navigation, large type); the normal page
  prints the same way (``@media print``).
* ``/public/<community_code>/claims/<id>/object``: the objection form. It needs a login (to the login
  page and back with ``next=``); residents and writing staff of the community may object, through
  :func:`timebank.earning.operations.object_claim`, which sends the claim back to review.
* ``/public/<community_code>/honours/<id>/object`` and ``/deductions/<id>/object``: the same form for
  an honour award or a deduction on the notice board.
* ``/committee/anomalies``: the anomaly report for committee members and supervisors.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import form_done, login_required, replay_form, take_form_key
from timebank.earning import deductions, honours
from timebank.earning import operations as earning
from timebank.earning.models import Claim, Deduction, HonourAward
from timebank.people.models import Community
from timebank.people.operations import community_by_code
from timebank.reports import operations as ops

bp = Blueprint("web_public", __name__)



def _community_or_404(code: str) -> Community:
    try:
        return community_by_code(code)
    except DomainError:
        abort(404)


@bp.get("/public/<community_code>")
def board(community_code: str):
    """The notice board; ``?print=1`` is the A4 print layout."""
    community = _community_or_404(community_code)
    data = ops.public_board(community)
    template = "public/board_print.html" if request.args.get("print") == "1" else "public/board.html"
    return render_template(template, board=data, community=community)


def _publicized_claim(community: Community, claim_id: int) -> dict:
    for entry in ops.publicity(community.id):
        if entry["claim_id"] == claim_id:
            return entry
    abort(404)


@bp.route("/public/<community_code>/claims/<int:claim_id>/object", methods=("GET", "POST"))
@login_required
def object_form(community_code: str, claim_id: int):
    community = _community_or_404(community_code)
    claim = db.session.get(Claim, claim_id)
    if claim is None or claim.community_id != community.id:
        abort(404)
    back = url_for("web_public.board", community_code=community.code)
    if request.method == "POST":
        reason = (request.form.get("reason") or "").strip()
        if not reason:
            flash(_("Please say why you object."), "error")
            return redirect(request.path)
        try:
            if not take_form_key():
                return replay_form(back)
            earning.object_claim(current_user._get_current_object(), claim.id, reason[:1000])
        except DomainError as exc:
            db.session.rollback()
            messages = {
                "claim_not_publicized": _("This claim is no longer on the notice board."),
                "not_found": _("Only residents of this community can object to its claims."),
                "forbidden": _("Your login cannot object to claims."),
                "read_only_role": _("Your login cannot object to claims."),
            }
            flash(messages.get(exc.code, _("This did not work.")), "error")
            return redirect(back)
        return form_done(back, _("Thank you. The claim goes back to the committee for review."))
    entry = _publicized_claim(community, claim.id)
    return render_template("public/object.html", community=community, claim=entry, back=back)


def _object_to(community: Community, what: str, entry: dict | None, objector, back: str):
    """The objection form for an honour award or a deduction on the notice board (the claims' form,
    above, for these two): a login of the community says why; the item goes back to the committee."""
    if request.method == "POST":
        reason = (request.form.get("reason") or "").strip()
        if not reason:
            flash(_("Please say why you object."), "error")
            return redirect(request.path)
        try:
            if not take_form_key():
                return replay_form(back)
            objector(current_user._get_current_object(), reason[:1000])
        except DomainError as exc:
            db.session.rollback()
            messages = {
                "award_not_publicized": _("This is no longer on the notice board."),
                "deduction_not_publicized": _("This is no longer on the notice board."),
                "not_found": _("Only residents of this community can object to its notices."),
                "forbidden": _("Your login cannot object to notices."),
                "read_only_role": _("Your login cannot object to notices."),
            }
            flash(messages.get(exc.code, _("This did not work.")), "error")
            return redirect(back)
        return form_done(back, _("Thank you. It goes back to the committee for review."))
    if entry is None:
        abort(404)
    return render_template("public/object_notice.html", community=community, what=what, entry=entry, back=back)


@bp.route("/public/<community_code>/honours/<int:award_id>/object", methods=("GET", "POST"))
@login_required
def object_honour(community_code: str, award_id: int):
    """An objection to an honour award on the notice board (公示): it goes back to the committee."""
    community = _community_or_404(community_code)
    award = db.session.get(HonourAward, award_id)
    if award is None or award.community_id != community.id:
        abort(404)
    entry = next((e for e in ops.honours_publicity(community.id) if e["award_id"] == award_id), None)
    return _object_to(community, "honour", entry, lambda user, reason: honours.object_award(user, award_id, reason),
                      url_for("web_public.board", community_code=community.code))


@bp.route("/public/<community_code>/deductions/<int:deduction_id>/object", methods=("GET", "POST"))
@login_required
def object_deduction(community_code: str, deduction_id: int):
    """An objection to a deduction on the notice board (公示): it goes back to the committee."""
    community = _community_or_404(community_code)
    deduction = db.session.get(Deduction, deduction_id)
    if deduction is None or deduction.community_id != community.id:
        abort(404)
    entry = next((e for e in ops.deductions_publicity(community.id) if e["deduction_id"] == deduction_id), None)
    return _object_to(community, "deduction", entry,
                      lambda user, reason: deductions.object_deduction(user, deduction_id, reason),
                      url_for("web_public.board", community_code=community.code))


def init_app(app) -> None:
    app.register_blueprint(bp)
