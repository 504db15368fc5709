"""Server-rendered pages (Jinja). Residents, clerks and committees use these, not the API.

The frame: ``templates/base.html`` (mobile-first, large type, high contrast; CSS in
``static/site.css``, no CDN), navigation by role (:data:`NAV`), flash messages, a language switch
(Chinese by default, English on request) and session login (:mod:`timebank.web.auth`). Feature
modules register their own blueprints in :func:`init_app`.
"""

import os

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import text

from timebank.core import postgres
from timebank.core.extensions import db
from timebank.core.pages import register_filters, safe_next

bp = Blueprint("web", __name__)

#: The navigation per role: (endpoint, label). Entries whose endpoint is not registered (yet) are
#: left out, so a page module only has to exist for its link to appear.
NAV = {
    "resident": [
        ("web_resident.home", _l("Home")),
        ("web_resident.pay_code", _l("Pay code")),
        ("web_resident.claims", _l("Earn points")),
        ("web_resident.history", _l("History")),
        ("web_resident.help_requests", _l("Neighbour help")),
        ("web_resident.goods", _l("Supermarket")),
        ("web_notices.mine", _l("Notices")),
    ],
    "clerk": [
        ("web.home", _l("Home")),
        ("web_clerk.pos", _l("Till")),
        ("web_clerk.receipts", _l("Receipts")),
        ("web_clerk.stock", _l("Stock")),
        ("web_clerk.goods", _l("Goods")),
        ("web_notices.mine", _l("Notices")),
        ("web_services.services", _l("Services")),
    ],
    "committee": [
        ("web.home", _l("Home")),
        ("web_committee.claims", _l("Claims")),
        ("web_serve.desk", _l("Serve a resident")),
        ("web_committee.tasks", _l("Tasks")),
        ("web_committee.rules", _l("Points list")),
        ("web_honours.honours", _l("Honours")),
        ("web_honours.deductions", _l("Deductions")),
        ("web_people.households", _l("Households")),
        ("web_import.upload", _l("Import roster")),
        ("web_books.ledger", _l("Ledger")),
        ("web_reports.reports", _l("Reports")),
        ("web_books.month_close", _l("Month close")),
        ("web_reports.anomalies", _l("Anomalies")),
        ("web_logins.logins_page", _l("Logins")),
        ("web_vouchers.vouchers", _l("Hour vouchers")),
        ("web_clerk.pos", _l("Till")),
        ("web_clerk.stock", _l("Stock")),
        ("web_clerk.goods", _l("Goods")),
        ("web_notices.dead_letters", _l("Notices not sent")),
        ("web_notices.print_list", _l("Printed notices")),
        ("web_notices.mine", _l("Notices")),
        ("web_services.services", _l("Services")),
        ("web_partners.partners", _l("Partner shops")),
    ],
    "grid_worker": [
        ("web.home", _l("Home")),
        ("web_committee.claims", _l("Claims")),
        ("web_serve.desk", _l("Serve a resident")),
        ("web_committee.tasks", _l("Tasks")),
        ("web_honours.honours", _l("Honours")),
        ("web_honours.deductions", _l("Deductions")),
        ("web_people.households", _l("Households")),
        ("web_notices.print_list", _l("Printed notices")),
        ("web_notices.mine", _l("Notices")),
        ("web_vouchers.vouchers", _l("Hour vouchers")),
    ],
    "admin": [
        ("web.home", _l("Home")),
        ("web_logins.logins_page", _l("Logins")),
        ("web_vouchers.vouchers", _l("Hour vouchers")),
    ],
}
#: A supervisor sees what the committee sees, except the till (they sell nothing).
NAV["supervisor"] = [entry for entry in NAV["committee"] if entry[0] not in ("web_clerk.pos", "web_import.upload")]

LANGUAGES = (("zh_CN", "中文"), ("en", "English"))


def nav_items() -> list[tuple[str, str, bool]]:
    """(url, label, is_current) for the logged-in user's role."""
    if not current_user.is_authenticated:
        return []
    items = []
    for endpoint, label in NAV.get(current_user.role, []):
        if endpoint in current_app.view_functions:
            items.append((url_for(endpoint), str(label), request.endpoint == endpoint))
    return items


@bp.app_context_processor
def _frame():
    locale = get_locale()
    chinese = locale is None or locale.language == "zh"
    return {"nav_items": nav_items, "current_locale": "zh_CN" if chinese else "en", "languages": LANGUAGES,
            "html_lang": "zh-CN" if chinese else "en"}


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("web_auth.login"))
    if current_user.role == "resident":
        return redirect(url_for("web_resident.home"))
    return render_template("staff_home.html", links=[(url, label) for url, label, _ in nav_items()[1:]])


@bp.get("/favicon.ico")
def favicon():
    """Pages name no icon (``data:``), but browsers still ask for this one (the API docs page does):
    nothing, rather than a 404 in their console."""
    return "", 204, {"Cache-Control": "public, max-age=86400"}


@bp.get("/lang/<code>")
def set_language(code: str):
    """Remember the chosen language in the session (a preference, not a change of any record)."""
    if code in dict(LANGUAGES):
        session["lang"] = code
    return redirect(safe_next(request.args.get("next"), url_for("web.home")))


@bp.get("/healthz")
def healthz():
    """200 while the app can serve. On PostgreSQL it also asks the database (``SELECT 1``, at most
    ``TIMEBANK_HEALTHZ_TIMEOUT_MS`` per wait, plus the connect timeout when a new connection is
    needed): 503 ``service_unavailable`` when it does not answer. On SQLite the file is local and a
    query would queue behind writers, so it is not asked."""
    if db.engine.dialect.name == "postgresql":
        with postgres.answer_within(current_app.config["TIMEBANK_HEALTHZ_TIMEOUT_MS"] / 1000):
            db.session.execute(text("SELECT 1"))
    return {"status": "ok"}


def init_app(app) -> None:
    from timebank.core.extensions import login_manager

    register_filters(app)
    # Secure cookies behind HTTPS: instance/config.py, or TIMEBANK_SESSION_COOKIE_SECURE=1.
    secure = os.environ.get("TIMEBANK_SESSION_COOKIE_SECURE")
    if secure:
        app.config["SESSION_COOKIE_SECURE"] = secure.lower() in ("1", "true", "yes", "on")
    app.config["REMEMBER_COOKIE_SECURE"] = bool(app.config.get("REMEMBER_COOKIE_SECURE")
                                                or app.config.get("SESSION_COOKIE_SECURE", False))
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    login_manager.login_view = "web_auth.login"
    login_manager.login_message = _l("Please log in first.")
    app.register_blueprint(bp)
    from timebank.web import auth, resident, serve

    auth.init_app(app)
    resident.init_app(app)
    serve.init_app(app)
