"""The public notice board (公示栏) and the objection form; the committee's anomalies page.

* ``/public/<community_code>``: no login. Claims on the notice board with masked names (张*明), the
  month's ranking of households (masked), donors thanked, the latest signed checkpoint. ``?print=1``
  gives the A4 print layout for the village blackboard (no navigation, large type); the normal page
  prints the same way (``@media print``).
* ``/public/<community_code>/claims/<id>/object``: the objection form. It needs a login (to the login
  page and back with ``next=``); residents and writing staff of the community may object, through
  :func:`timebank.earning.operations.object_claim`, which sends the claim back to review.
* ``/committee/anomalies``: the anomaly report for committee members and supervisors.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import form_done, login_required, replay_form, take_form_key
from timebank.earning import operations as earning
from timebank.earning.models import Claim
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


def init_app(app) -> None:
    app.register_blueprint(bp)
