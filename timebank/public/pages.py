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

from datetime import datetime, time, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from timebank.core.clock import local_today, local_zone, utc_naive
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.people.models import Community
from timebank.earning.models import Claim
from timebank.reports import anomalies as anomaly_ops
from timebank.earning import operations as earning
from timebank.reports import operations as ops
from timebank.people.operations import community_by_code
from timebank.core.policy import require_community
from timebank.core.pages import login_required, roles_required

bp = Blueprint("web_public", __name__)
reports_bp = Blueprint("web_reports", __name__)

ANOMALY_LABELS = {
    "reciprocal_help": _l("Two households helping each other again and again"),
    "claim_burst": _l("Many claims in a short time"),
    "approver_concentration": _l("One approver approves most of a household's claims"),
    "clerk_volume": _l("A clerk redeems far more than the others"),
    "clerk_voids": _l("A clerk voids many receipts"),
    "shared_device": _l("Several residents checked in from one phone"),
    "shared_address": _l("Many residents checked in from one address"),
}


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
            earning.object_claim(current_user._get_current_object(), claim.id, reason[:1000])
            db.session.commit()
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
        flash(_("Thank you. The claim goes back to the committee for review."), "success")
        return redirect(back)
    entry = _publicized_claim(community, claim.id)
    return render_template("public/object.html", community=community, claim=entry, back=back)


# --- the committee's anomalies page -----------------------------------------------------------------

def _day(text: str | None, default):
    if not text:
        return default
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return default


@reports_bp.get("/committee/anomalies")
@roles_required("committee", "supervisor")
def anomalies():
    user = current_user._get_current_object()
    code = request.args.get("community_code") or (user.community.code if user.community else None)
    if not code:
        abort(404)
    community = _community_or_404(code)
    try:
        require_community(user, community.id, "committee", "supervisor")
    except DomainError:
        abort(403)
    today = local_today()
    first = _day(request.args.get("since"), today - timedelta(days=30))
    last = _day(request.args.get("until"), today)
    if last < first:
        first, last = last, first
    zone = local_zone()
    start = utc_naive(datetime.combine(first, time(), zone))
    end = utc_naive(datetime.combine(last + timedelta(days=1), time(), zone))
    items = anomaly_ops.find_anomalies(community, start, end)
    return render_template("reports/anomalies.html", community=community, items=items, since=first, until=last,
                           labels=ANOMALY_LABELS)


def init_app(app) -> None:
    # No menu entry of its own: the committee's menu links to the books' anomalies page, which leads
    # here when this page exists.
    app.register_blueprint(bp)
    app.register_blueprint(reports_bp)
