"""The page a check-in QR code opens: ``/checkin?token=...``.

A resident logged in on the phone sees the task and one big button; pressing it checks them in (a
POST with CSRF protection, so that merely opening a link never changes anything). Someone not logged
in is sent to the login page and comes back here afterwards. A later pages issue styles this page.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template_string, request, url_for
from flask_login import current_user

from timebank.errors import DomainError
from timebank.extensions import db, login_manager
from timebank.operations import tasks as ops

bp = Blueprint("checkin", __name__)

_PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>签到 Check-in</title>
<body style="font: 22px/1.6 sans-serif; max-width: 30em; margin: 2em auto; padding: 0 1em">
<h1>签到 Check-in</h1>
{% if message %}<p role="status" style="font-size: 1.2em"><strong>{{ message }}</strong></p>{% endif %}
{% if task and form %}
<p>活动 Task: <strong>{{ task.title }}</strong></p>
<form method="post" action="{{ url_for('checkin.checkin') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="token" value="{{ token }}">
<button type="submit" style="font-size: 1.4em; padding: .6em 2em">签到 Check in</button>
</form>
{% endif %}
{% if claim %}<p>申报编号 Claim no. {{ claim.id }} · {{ claim.points }} 分 points · 状态 status: {{ claim.status }}</p>{% endif %}
<p><a href="/">返回首页 / Home</a></p>
</body></html>"""


def _page(status=200, **context):
    context.setdefault("task", None)
    context.setdefault("form", False)
    context.setdefault("claim", None)
    context.setdefault("message", None)
    context.setdefault("token", "")
    return render_template_string(_PAGE, **context), status


def _login_redirect():
    view = login_manager.login_view
    try:
        target = url_for(view) if view else "/login"
    except Exception:  # the login page is not registered (yet)
        target = "/login"
    return redirect(f"{target}?next={request.full_path if request.query_string else request.path}")


@bp.route("/checkin", methods=["GET", "POST"])
def checkin():
    token = (request.values.get("token") or "").strip()
    if not current_user.is_authenticated:
        return _login_redirect()
    if not token:
        return _page(422, message="没有签到码。请扫描现场的二维码。 No check-in code: scan the QR code on site.")
    try:
        task = ops.read_token(token)
        if request.method == "GET":
            return _page(task=task, form=True, token=token,
                         message=f"{current_user.username}，请按下面的按钮签到。 Press the button to check in.")
        claim, new = ops.check_in(current_user._get_current_object(), token)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _page(exc.status, message=f"签到没有成功 Not checked in: {exc.detail}")
    message = "签到成功！ You are checked in." if new else "您已经签到过了。 You had already checked in."
    current_app.logger.info("check-in task=%s user=%s new=%s", task.id, current_user.id, new)
    return _page(201 if new else 200, task=task, claim=claim, message=message)


def init_app(app) -> None:
    app.register_blueprint(bp)
