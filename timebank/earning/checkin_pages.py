"""The page a check-in QR code opens: ``/checkin?token=...``.

A resident logged in on the phone opens the link and is checked in: the page shows the task and
submits its one-button form by itself (a POST with CSRF protection, so that merely fetching the URL
never changes anything; without JavaScript the big button does the same). Someone not logged in is
sent to the login page and comes back here afterwards. The result is said plainly, in large type.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from timebank.core.errors import DomainError
from timebank.core.extensions import db, limiter
from timebank.core.pages import domain_message, login_redirect, remember_outcome, sent_before, take_form_key
from timebank.earning import tasks as ops
from timebank.earning.models import Claim, Task

bp = Blueprint("checkin", __name__)


def _page(status=200, **context):
    context.setdefault("task", None)
    context.setdefault("form", False)
    context.setdefault("claim", None)
    context.setdefault("message", None)
    context.setdefault("ok", None)
    context.setdefault("token", "")
    context.setdefault("again", False)
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
    try:
        task = ops.read_token(token)
        if request.method != "POST":  # GET, and HEAD (which Flask routes here too): never check in
            return _page(task=task, form=True, token=token)
        claim, new = ops.check_in(current_user._get_current_object(), token)
    except DomainError as exc:
        db.session.rollback()
        return _page(exc.status, ok=False, message=_("Not checked in: %(reason)s", reason=_reason(exc)))
    message = _("You are checked in.") if new else _("You had already checked in.")
    current_app.logger.info("check-in task=%s user=%s new=%s", task.id, current_user.id, new)
    remember_outcome(task_id=task.id, claim_id=claim.id, message=message)
    return _page(201 if new else 200, ok=True, task=task, claim=claim, message=message)


def _sent_before():
    """This check-in form was sent before (a reload, a resend after an error page): say so, and show
    the first sending's result, even when the code has expired since."""
    outcome = sent_before()
    task = db.session.get(Task, outcome["task_id"]) if outcome.get("task_id") else None
    claim = db.session.get(Claim, outcome["claim_id"]) if outcome.get("claim_id") else None
    return _page(200, again=True, ok=True, task=task, claim=claim, message=outcome.get("message"))


def init_app(app) -> None:
    app.register_blueprint(bp)
