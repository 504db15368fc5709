"""The printable month statement (月结报表): /committee/month-close/<community_code>/<YYYY-MM>.

Staff of the community (committee, supervisor, ...) and admins, logged in with a page session.
Minimal, clean HTML meant for printing and pinning on the notice board, in the reader's language; the
signed statement's hashes and signature are bytes and stay as they are.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from timebank.audit.month_close import describe
from timebank.core.clock import parse_month
from timebank.core.errors import Unauthenticated
from timebank.core.policy import require_community
from timebank.people.operations import community_by_code

bp = Blueprint("month_close_page", __name__)

@bp.get("/committee/month-close/<community_code>/<month>")
def month_close_page(community_code: str, month: str):
    if not current_user.is_authenticated:
        raise Unauthenticated("Log in to see the month statement.")
    community = community_by_code(community_code)
    require_community(current_user, community.id)
    parse_month(month)
    return render_template("committee/month_statement.html", c=community, d=describe(community, month))


def init_app(app) -> None:
    if "month_close_page" not in app.blueprints:
        app.register_blueprint(bp)
