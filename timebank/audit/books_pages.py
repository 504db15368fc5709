"""The committee's books (台账): the ledger browser and its exports, verification, month close.

Routes on their own blueprint ``web_books`` under ``/committee``, beside the claim and task pages
(:mod:`timebank.earning.pages`). Committee members and
supervisors read all of it (supervisors never write); only committee members sign a month off.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select

from ledger.models import Account, Posting, Transaction
from timebank.audit import export_runs, month_close
from timebank.audit.ledger_browser import count_postings, export_csv_chunks, export_xlsx, ledger_query
from timebank.audit.models import ExportRun
from timebank.audit.verify import verify_everything
from timebank.core.accounts import CATEGORIES
from timebank.core.audit_log import record_export
from timebank.core.clock import current_month, local_zone, months_before, now, to_local, utc_naive
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import KIND_LABELS, form_done, replay_form, roles_required, take_form_key
from timebank.people import staff_pages as staff
from timebank.people.models import Household, Resident
from timebank.people.staff_pages import me, refuse_supervisor_writes

bp = Blueprint("web_books", __name__, url_prefix="/committee")


@bp.before_request
def _supervisors_read_only():
    # Asking for a background export changes nothing of the books: supervisors may.
    if request.endpoint != "web_books.export_start":
        refuse_supervisor_writes()


#: Who opens the books (admin always): committee members and supervisors, who read only.
BOOK_READERS = ("committee", "supervisor")
LEDGER_PAGE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- the ledger browser (账本) ----------------------------------------------------------------------

def _local_day(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=local_zone()) if text else None
    except ValueError:
        return None


def _ledger_filters(place_id: int, args=None):
    """The filtered query (the community's transactions only), the filters as the form shows them,
    the household chosen, and ``ledger_query``'s arguments (for a background export)."""
    args = request.args if args is None else args
    filters = {k: (args.get(k) or "").strip() for k in ("household", "resident", "category", "kind", "since", "until")}
    household = None
    household_id = None
    if filters["household"]:
        text = filters["household"]
        household = db.session.execute(select(Household).where(
            Household.community_id == place_id,
            (Household.member_code == text) | (Household.id == (int(text) if text.isdigit() else -1)))
        ).scalar_one_or_none()
        household_id = household.id if household else -1  # an unknown card shows nothing
    since, until = _local_day(filters["since"]), _local_day(filters["until"])
    arguments = {"community_id": place_id, "household_id": household_id,
                 "resident_id": int(filters["resident"]) if filters["resident"].isdigit() else None,
                 "category": filters["category"] or None, "kind": filters["kind"] or None,
                 "since": since, "until": until + timedelta(days=1) if until else None}
    return ledger_query(**arguments), filters, household, arguments


@bp.get("/ledger")
@roles_required(*BOOK_READERS)
def ledger():
    place = staff.place()
    query, filters, household, _arguments = _ledger_filters(place.id)
    before = request.args.get("before", type=int)
    page_query = query.order_by(Transaction.id.desc()).limit(LEDGER_PAGE + 1)
    if before:
        page_query = page_query.where(Transaction.id < before)
    rows = db.session.execute(page_query).scalars().all()
    more = len(rows) > LEDGER_PAGE
    rows = rows[:LEDGER_PAGE]
    legs: dict[int, list] = {t.id: [] for t in rows}
    if rows:
        for r in db.session.execute(
                select(Posting.transaction_id, Account.code, Posting.amount, Posting.unit)
                .join(Account, Account.id == Posting.account_id)
                .where(Posting.transaction_id.in_(list(legs))).order_by(Posting.id)):
            legs[r.transaction_id].append(r)
    names = _owner_names(leg.code for rows_ in legs.values() for leg in rows_)
    kinds = sorted(KIND_LABELS)
    args = {k: v for k, v in filters.items() if v}
    return render_template("committee/ledger.html", rows=rows, legs=legs, filters=filters, household=household,
                           categories=[*CATEGORIES, "time_bank", "shop"], kinds=kinds, args=args,
                           next_before=rows[-1].id if more else None, verify=None, names=names,
                           there=_there(place))


def _owner_names(codes) -> dict:
    """The names of the households and residents whose wallets these account codes are, for the
    accounts in words (:func:`timebank.core.pages.account_words`)."""
    wanted: dict[str, set[int]] = {"household": set(), "resident": set()}
    for code in codes:
        owner, _sep, rest = code.partition(":")
        number = rest.partition(":")[0]
        if owner in wanted and number.isdigit():
            wanted[owner].add(int(number))
    names: dict = {}
    if wanted["household"]:
        for id_, name in db.session.execute(select(Household.id, Household.name)
                                            .where(Household.id.in_(wanted["household"]))):
            names[("household", id_)] = name
    if wanted["resident"]:
        for id_, name in db.session.execute(select(Resident.id, Resident.name)
                                            .where(Resident.id.in_(wanted["resident"]))):
            names[("resident", id_)] = name
    return names


@bp.get("/ledger/verify")
@roles_required(*BOOK_READERS)
def verify():
    """Re-derive the hash chain, the balances and the checkpoints (reads only; the same as ``timebank verify``)."""
    staff.place()
    result = verify_everything()
    return render_template("committee/verify.html", result=result)


@bp.get("/ledger/export.<fmt>")
@roles_required(*BOOK_READERS)
def ledger_export(fmt: str):
    """The filtered ledger as CSV (UTF-8 with BOM) or XLSX, one row per posting."""
    place = staff.place()
    if fmt not in ("csv", "xlsx"):
        abort(404)
    query, filters, _household, _arguments = _ledger_filters(place.id)
    stem = f"ledger-{place.code}-{to_local(now()).strftime('%Y%m%d')}"
    record_export("ledger.export", user=me(), community_id=place.id, target="ledger", fmt=fmt,
                  filters={"community_code": place.code, **{k: v for k, v in filters.items() if v}},
                  rows=count_postings(query))
    if fmt == "csv":
        return Response(stream_with_context(export_csv_chunks(query)), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    return Response(export_xlsx(query), mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


# --- background exports (后台导出) ------------------------------------------------------------------

@bp.post("/ledger/exports")
@roles_required(*BOOK_READERS)
def export_start():
    """Ask for the filtered ledger as a file made in the background; then its page shows the progress.
    The form is keyed: sent twice (a double tap), it asks once."""
    place = staff.place()
    fmt = request.form.get("fmt", "csv")
    if fmt not in export_runs.FORMATS:
        abort(400)
    _query, filters, _household, arguments = _ledger_filters(place.id, request.form)
    name = f"ledger-{place.code}-{to_local(now()).strftime('%Y%m%d-%H%M%S')}.{fmt}"
    listing = url_for(".exports", **_there(place))
    try:
        if not take_form_key():
            return replay_form(listing)
        run = export_runs.start(me(), community_id=place.id, filters=arguments, fmt=fmt, file_name=name)
    except DomainError as exc:  # two being made already
        db.session.rollback()
        flash(staff.message(exc), "error")
        return redirect(listing, code=303)
    record_export("ledger.export", user=me(), community_id=place.id, target=f"export_run:{run.id}", fmt=fmt,
                  filters={"community_code": place.code, **{k: v for k, v in filters.items() if v}},
                  rows=run.rows_expected)
    return form_done(url_for(".export_one", run_id=run.id, **_there(place)))


def _there(place) -> dict:
    """An administrator's pages name their community in the address."""
    return {"community": place.code} if me().role == "admin" else {}


def _run_of_place(run_id: int):
    place = staff.place()
    run = db.session.get(ExportRun, run_id)
    if run is None or run.community_id != place.id:
        abort(404)
    return place, run


@bp.get("/ledger/exports")
@roles_required(*BOOK_READERS)
def exports():
    """The community's background exports of the last while, newest first."""
    place = staff.place()
    moment = utc_naive()
    runs = [(run, export_runs.state(run, moment)) for run in export_runs.recent(place.id)]
    return render_template("committee/exports.html", place=place, runs=runs, there=_there(place))


@bp.get("/ledger/exports/<int:run_id>")
@roles_required(*BOOK_READERS)
def export_one(run_id: int):
    place, run = _run_of_place(run_id)
    return render_template("committee/export_run.html", place=place, run=run,
                           status=export_runs.state(run, utc_naive()), there=_there(place))


@bp.get("/ledger/exports/<int:run_id>/file")
@roles_required(*BOOK_READERS)
def export_file(run_id: int):
    _place, run = _run_of_place(run_id)
    response = export_runs.download(run)
    if response is None:
        abort(404)
    return response


# --- month close (月结) -----------------------------------------------------------------------------

@bp.route("/month-close", methods=["GET", "POST"], endpoint="month_close")
@roles_required(*BOOK_READERS)
def month_close_list():
    place = staff.place()
    user = me()
    if request.method == "POST":
        month = request.form.get("month", "")

        def act():
            return month_close.sign_off(user, place, month)

        def said(result):
            status, _close = result
            if status == "closed":
                return _("%(month)s is closed and signed.", month=month)
            return _("Signed. A second committee member must sign %(month)s too.", month=month)

        return staff.write_once(act, said, url_for(".month_close"))
    this_month = current_month()
    months = months_before(this_month, 7)[::-1]
    rows = []
    for month in months:
        described = month_close.describe(place, month, preview=False)
        rows.append({"month": month, "status": described["status"], "signoffs": described["signoffs"],
                     "current": month == this_month})
    return render_template("committee/month_close.html", place=place, rows=rows,
                           can_sign=user.role == "committee" and user.community_id == place.id)


# --- anomalies (异常提示) ---------------------------------------------------------------------------

@bp.get("/anomaly-flags")
@roles_required(*BOOK_READERS)
def anomalies():
    """The first address of the anomalies page, kept for old links and bookmarks."""
    return redirect(url_for("web_reports.anomalies", **request.args))


def init_app(app) -> None:
    app.register_blueprint(bp)
