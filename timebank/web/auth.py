"""Logging in and out of the pages (Flask-Login session, CSRF-protected forms).

Residents log in with their phone number, staff with their username: both are the login's username,
so one form serves both. Failed attempts are limited per address and per account, together with the
API's (:func:`timebank.core.auth.login_limits`), so a password cannot be guessed by trying.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from timebank.core.audit_log import record
from timebank.core.auth import authenticate, login_limits, login_name
from timebank.core.errors import InvalidCredentials
from timebank.core.extensions import db
from timebank.core.pages import safe_next

bp = Blueprint("web_auth", __name__)


def home_for(user) -> str:
    return url_for("web_resident.home") if user.role == "resident" else url_for("web.home")


def _limited(view):
    for limit in reversed(login_limits()):
        view = limit(view)
    return view


@bp.route("/login", methods=["GET", "POST"])
@_limited
def login():
    target = request.values.get("next")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(target, home_for(current_user)))
    username = ""
    status = 200
    if request.method == "POST":
        username = login_name(request.form.get("username", ""))
        password = request.form.get("password", "")
        try:
            user = authenticate(username, password)
        except InvalidCredentials:
            db.session.rollback()
            flash(_("The phone number (or username) or the password is wrong."), "error")
            status = 401
        else:
            lang = session.get("lang")
            session.clear()  # a fresh session for the new login
            if lang:
                session["lang"] = lang
            login_user(user)
            record("auth.login", user=user, via="web")
            return redirect(safe_next(target, home_for(user)))
    return render_template("login.html", username=username, next=target or ""), status


@bp.post("/logout")
def logout():
    lang = session.get("lang")
    if current_user.is_authenticated:
        user = current_user._get_current_object()
        user.end_sessions()  # a copy of this session's cookie stops working too
        record("auth.logout", user=user, via="web")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You are logged out."), "success")
    return redirect(url_for("web_auth.login"))


def init_app(app) -> None:
    app.register_blueprint(bp)
