"""The printable monthly household statement (户积分月结单): A4, large type, the month's entries in
words, the opening and closing balance (also in capital numerals), and a QR code that pins the
entries to the signed checkpoint (:mod:`timebank.audit.statements`).

* ``/committee/households/<id>/statement?month=YYYY-MM``: committee, grid workers and supervisors of
  the household's community, and admins (from the household's page);
* ``/me/statement?month=YYYY-MM``: a resident, for their own household.

Without ``month`` the page shows the month before this one (the last whole month). The same
statement as JSON, with every proof, is ``GET /api/v1/households/<id>/statement``.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user

from timebank.audit import statements
from timebank.core.clock import current_month, months_before, parse_month
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import qr_svg, resident_required, roles_required
from timebank.core.policy import visible_household
from timebank.people.models import Household

bp = Blueprint("web_statement", __name__)

#: Staff who print statements for a household (admin always); supervisors read.
PRINTERS = ("committee", "grid_worker", "supervisor")


def _month() -> str:
    month = request.args.get("month") or months_before(current_month(), 2)[0]
    try:
        parse_month(month)
    except DomainError:
        abort(404)
    return month


def _next_month(month: str) -> str:
    year, mon = parse_month(month)
    return f"{year + (mon == 12):04d}-{mon % 12 + 1:02d}"


def _page(household: Household, month: str, link):
    try:
        statement = statements.household_statement(household, month)
    except DomainError:  # a month that has not started
        abort(404)
    balance, entries = statement["opening"], []
    for tx in statement["transactions"]:
        balance += tx["amount"]
        entries.append({**tx, "balance": balance})
    proven = {p["transaction_id"] for p in statement["proofs"]}
    previous = months_before(month, 2)[0]
    following = _next_month(month)
    return render_template(
        "committee/statement.html", s=statement, household=household, entries=entries, proven=proven,
        opening_words=statements.capital_numerals(statement["opening"]),
        closing_words=statements.capital_numerals(statement["closing"]),
        qr=qr_svg(statement["qr_text"], 3), year=int(month[:4]), mon=int(month[5:]),
        previous_url=link(previous), next_url=link(following) if following <= current_month() else None,
        json_url=url_for("audit.HouseholdStatement", household_id=household.id, month=month))


@bp.get("/committee/households/<int:household_id>/statement")
@roles_required(*PRINTERS)
def household_statement(household_id: int):
    try:
        household = visible_household(current_user, db.session.get(Household, household_id))
    except DomainError:
        abort(404)
    return _page(household, _month(),
                 lambda m: url_for(".household_statement", household_id=household.id, month=m))


@bp.get("/me/statement")
@resident_required
def my_statement():
    household = current_user.resident.household
    return _page(household, _month(), lambda m: url_for(".my_statement", month=m))


def init_app(app) -> None:
    app.register_blueprint(bp)
