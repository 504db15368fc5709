"""The page a check-in QR code opens: ``/checkin?token=...``.

A resident logged in on the phone opens the link and is checked in: the page shows the task and
submits its one-button form by itself (a POST with CSRF protection, so that merely fetching the URL
never changes anything; without JavaScript the big button does the same). Someone not logged in is
sent to the login page and comes back here afterwards. The result is said plainly, in large type.

A team's leader who opens the link checks the whole team in (:func:`timebank.earning.teams.check_in_team`):
the page names the team and its members, and its form sends the team's id.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from timebank.core.errors import DomainError
from timebank.core.extensions import db, limiter
from timebank.core.pages import domain_message, login_redirect, remember_outcome, sent_before, take_form_key
from timebank.earning import tasks as ops
from timebank.earning import teams
from timebank.earning.models import Claim, Task, TaskTeam

bp = Blueprint("checkin", __name__)


def _page(status=200, **context):
    context.setdefault("task", None)
    context.setdefault("form", False)
    context.setdefault("claim", None)
    context.setdefault("message", None)
    context.setdefault("ok", None)
    context.setdefault("token", "")
    context.setdefault("again", False)
    context.setdefault("team", None)
    context.setdefault("newly", None)
    return render_template("checkin.html", **context), status


def _rate_key() -> str:
    return f"checkin-page:{current_user.id}" if current_user.is_authenticated else (request.remote_addr or "-")


def _reason(exc: DomainError) -> str:
    return domain_message(exc)


@bp.route("/checkin", methods=["GET", "POST"])
@limiter.limit(lambda: ops.checkin_rate_limit(), key_func=_rate_key, methods=["POST"])
def checkin():
    token = (request.values.get("token") or "").strip()
    if not current_user.is_authenticated:
        return login_redirect()
    if not token:
        return _page(422, ok=False, message=_("No check-in code. Scan the QR code on site."))
    if request.method == "POST" and not take_form_key():
        return _sent_before()
    user = current_user._get_current_object()
    try:
        task = ops.read_token(token)
        if request.method != "POST":  # GET, and HEAD (which Flask routes here too): never check in
            return _page(task=task, form=True, token=token, team=_led_team(user, task))
        if request.form.get("team_id"):
            return _team_check_in(user, task, token, request.form.get("team_id", type=int) or 0)
        claim, new = ops.check_in(user, token)
    except DomainError as exc:
        db.session.rollback()
        return _page(exc.status, ok=False, message=_("Not checked in: %(reason)s", reason=_reason(exc)))
    message = _("You are checked in.") if new else _("You had already checked in.")
    current_app.logger.info("check-in task=%s user=%s new=%s", task.id, current_user.id, new)
    remember_outcome(task_id=task.id, claim_id=claim.id, message=message)
    return _page(201 if new else 200, ok=True, task=task, claim=claim, message=message)


def _led_team(user, task: Task) -> dict | None:
    """The team of ``task`` that ``user`` leads, as :func:`teams.team_view` shows it."""
    if user.role != "resident" or user.resident_id is None:
        return None
    team = teams.team_of(task, user.resident_id)
    if team is None or team.leader_resident_id != user.resident_id:
        return None
    return teams.team_view(user, team)


def _team_check_in(user, task: Task, token: str, team_id: int):
    team = teams.visible_team(user, team_id)
    claims, newcomers = teams.check_in_team(user, team, token)
    view = teams.team_view(user, team)
    if newcomers:
        message = _("Your team “%(name)s” is checked in: %(n)d members now.", name=team.name, n=len(newcomers))
    else:
        message = _("Everyone in your team had already checked in.")
    current_app.logger.info("team check-in task=%s team=%s user=%s new=%s", task.id, team.id, user.id, len(newcomers))
    remember_outcome(task_id=task.id, team_id=team.id, message=message)
    return _page(201 if newcomers else 200, ok=True, task=task, team=view, newly=newcomers, message=message)


def _sent_before():
    """This check-in form was sent before (a reload, a resend after an error page): say so, and show
    the first sending's result, even when the code has expired since."""
    outcome = sent_before()
    task = db.session.get(Task, outcome["task_id"]) if outcome.get("task_id") else None
    claim = db.session.get(Claim, outcome["claim_id"]) if outcome.get("claim_id") else None
    team = db.session.get(TaskTeam, outcome["team_id"]) if outcome.get("team_id") else None
    view = teams.team_view(current_user._get_current_object(), team) if team is not None else None
    return _page(200, again=True, ok=True, task=task, claim=claim, team=view, message=outcome.get("message"))


def init_app(app) -> None:
    app.register_blueprint(bp)
