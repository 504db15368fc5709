"""The committee's reports pages: the monthly report with charts and its exports (报表), and the
anomalies page (异常提示), the back-office patterns of :mod:`timebank.reports.anomalies` over a chosen
period. For committee members and supervisors (who read only)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from timebank.core.accounts import CATEGORIES
from timebank.core.audit_log import record_export
from timebank.core.clock import current_month, local_today, local_zone, months_before, parse_month, utc_naive
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import CATEGORY_LABELS, label, roles_required
from timebank.core.policy import require_community, require_sight
from timebank.earning.models import Deduction, HonourAward
from timebank.people import staff_pages as staff
from timebank.people.models import Community
from timebank.people.operations import community_by_code
from timebank.people.staff_pages import refuse_supervisor_writes
from timebank.reports import anomalies as anomaly_ops
from timebank.reports import charts
from timebank.reports import operations as reports

bp = Blueprint("web_reports", __name__)
bp.before_request(refuse_supervisor_writes)

#: Who opens the reports (admin always).
READERS = ("committee", "supervisor")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHART_MONTHS = 6

ANOMALY_LABELS = {
    "reciprocal_help": _l("Two households helping each other again and again"),
    "claim_burst": _l("Many claims in a short time"),
    "approver_concentration": _l("One approver approves most of a household's claims"),
    "clerk_volume": _l("A clerk redeems far more than the others"),
    "clerk_voids": _l("A clerk voids many receipts"),
    "shared_device": _l("Several residents checked in from one phone"),
    "shared_address": _l("Many residents checked in from one address"),
    "fresh_rule": _l("A new rule paid many points on its first day"),
    "entry_concentration": _l("One staff member entered most of the claims"),
    "pool_concentration": _l("The community pool pays mostly the same few households"),
    "refused_self_dealing": _l("Repeated attempts to act for one's own household"),
}


def _day(text: str | None, default):
    if not text:
        return default
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return default


@bp.get("/committee/anomalies")
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


# --- reports with charts (报表) ---------------------------------------------------------------------

def _month_arg() -> str:
    month = request.args.get("month") or current_month()
    try:
        parse_month(month)
    except DomainError:
        abort(404)
    return month


def _report_place() -> Community:
    """The community the report is for: the user's own, or one below it named by ``community_code`` (a
    街道's staff open each of its communities' reports)."""
    code = request.args.get("community_code")
    if not code:
        return staff.place()
    place = _community_or_404(code)
    try:
        require_sight(current_user._get_current_object(), place.id, *READERS)
    except DomainError:
        abort(403)
    return place


@bp.get("/committee/reports", endpoint="reports")
@roles_required(*READERS)
def report():
    place = _report_place()
    month = _month_arg()
    months = months_before(month, CHART_MONTHS)
    monthly = [reports.monthly_report(place, m) for m in months]
    current = monthly[-1]
    stacks = [(cat, str(label(CATEGORY_LABELS, cat)), [r["points"]["issued_by_category"].get(cat, 0) for r in monthly])
              for cat in CATEGORIES]
    redeemed = ("redeemed", _("Redeemed (after voids and returns)"), [r["points"]["redeemed_net"] for r in monthly])
    chart = charts.month_bars(months, stacks, redeemed, _("Points issued by category and redeemed, by month"))
    key = charts.legend([(k, lbl) for k, lbl, _v in stacks] + [(redeemed[0], redeemed[1])])
    # A sub-district (街道): each of its communities this month, on one scale.
    by_community = charts.community_bars(
        [(c["name"], [(cat, str(label(CATEGORY_LABELS, cat)), c["points"]["issued_by_category"].get(cat, 0))
                      for cat in CATEGORIES], ("redeemed", redeemed[1], c["points"]["redeemed_net"]))
         for c in current["communities"]],
        _("Points issued by category and redeemed, by community")) if current["communities"] else None
    return render_template("committee/reports.html", place=place, month=month, report=current, chart=chart,
                           legend=key, monthly=list(zip(months, monthly, strict=True)),
                           community_chart=by_community, own=place.id == staff.community().id,
                           previous=months_before(month, 2)[0],
                           following=None if month >= current_month() else _next(month))


def _next(month: str) -> str:
    year, number = (int(p) for p in month.split("-"))
    return f"{year + (number == 12):04d}-{number % 12 + 1:02d}"


@bp.get("/committee/reports/<month>.<fmt>")
@roles_required(*READERS)
def report_export(month: str, fmt: str):
    place = _report_place()
    try:
        parse_month(month)
    except DomainError:
        abort(404)
    if fmt not in ("csv", "xlsx"):
        abort(404)
    data = reports.monthly_report(place, month)
    stem = f"report-{place.code}-{month}"
    record_export("report.export", user=current_user._get_current_object(), community_id=place.id,
                  target=f"report:monthly:{place.code}:{month}", fmt=fmt,
                  filters={"community_code": place.code, "month": month}, rows=reports.monthly_report_rows(data))
    if fmt == "csv":
        return Response("\ufeff" + reports.monthly_report_csv(data), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    return Response(reports.monthly_report_xlsx(data), mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


def _community_or_404(code: str) -> Community:
    try:
        return community_by_code(code)
    except DomainError:
        abort(404)


def init_app(app) -> None:
    app.register_blueprint(bp)


# --- the household's page: its ranking score, honours and deductions -----------------------------

def standing_of(household) -> dict:
    """What the household's pages show beside the balance: the month's ranking score (积分榜, kept
    apart from the spendable balance), the honours it holds, and its deductions."""
    awards = db.session.execute(
        select(HonourAward).where(HonourAward.household_id == household.id,
                                  HonourAward.status.in_(("publicized", "held", "under_review", "withdrawn", "ended")))
        .order_by(HonourAward.id.desc()).limit(20)).scalars().all()
    deductions = db.session.execute(
        select(Deduction).where(Deduction.household_id == household.id,
                                Deduction.status.in_(("publicized", "applied")))
        .order_by(Deduction.id.desc()).limit(20)).scalars().all()
    return {"standing": reports.household_standing(household, current_month()), "awards": awards,
            "deductions": deductions}


def household_panel(household):
    """The section of the committee's household page (``timebank.household_panels``)."""
    return Markup(render_template("reports/_household_standing.html", **standing_of(household)))
