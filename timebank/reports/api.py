"""Reports and exports (台账), anomalies, and the public notice board's JSON (公示栏).

Definitions of every figure and the anomaly thresholds: docs/reports.md.
"""

from __future__ import annotations

from datetime import UTC

from flask import Response, current_app, stream_with_context, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.audit import export_runs
from timebank.audit.ledger_api import AUDITORS, LedgerFilters, TransactionQuery, transaction_filters, transaction_query
from timebank.audit.ledger_browser import count_postings, export_csv_chunks, export_xlsx
from timebank.core.audit_log import record_export
from timebank.core.clock import current_month, month_bounds, to_local, utc_naive
from timebank.core.errors import Conflict, Gone, ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import LocalDateTime, current_user
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_community, require_role, require_sight, visible_household
from timebank.earning import deductions as deduction_ops
from timebank.people.models import Household
from timebank.people.operations import community_by_code
from timebank.reports import anomalies as anomaly_ops
from timebank.reports import operations as ops

blp = Blueprint("reports", __name__, url_prefix="/api/v1",
                description="Reports and exports (台账), anomalies, and the public notice board (公示栏).")

PUBLIC = [{}]  # OpenAPI: no authentication needed
#: Default upper bound of posting rows in an XLSX export (a sheet holds at most 1,048,576 rows).
XLSX_MAX_ROWS = 1_000_000
CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(filename: str) -> dict:
    return {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}


# --- ledger export -----------------------------------------------------------------------------------

class ExportArgs(TransactionQuery):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


class ExportRunIn(LedgerFilters):
    # Kept with the run: as long as the ledger's columns at most.
    category = fields.String(load_default=None, validate=validate.Length(max=32))
    kind = fields.String(load_default=None, validate=validate.Length(max=32))
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


def _filters(args: dict) -> dict:
    out = {}
    for key in ("community_code", "household_id", "resident_id", "category", "kind", "since", "until"):
        value = args.get(key)
        if value is not None and value != "":
            out[key] = to_local(utc_naive(value)).isoformat() if key in ("since", "until") else value
    return out


@blp.route("/ledger/transactions/export")
class LedgerExport(MethodView):
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200, description="CSV (UTF-8 with BOM, streamed) or XLSX: one row per posting")
    @blp.alt_response(403, description="forbidden: not committee, supervisor or admin; another community")
    @blp.alt_response(422, description="validation_error: bad filters; export_too_large: too many rows for "
                                       "XLSX (use CSV)")
    def get(self, args):
        """Export any filtered view of the ledger browser (same filters) as CSV or XLSX.

        One row per posting, transactions in ledger order (oldest first); the postings of a
        transaction share `transaction_id` and sum to zero per unit. Logged as `ledger.export` on the
        `timebank.audit.exports` log (a GET writes nothing)."""
        user = current_user()
        require_role(user, *AUDITORS)
        query = transaction_query(args, user)
        filters = _filters(args)
        name = _export_name(args, user)
        # Counted before anything is sent: the XLSX limit, and the export log's row count. It also
        # runs the filters once, so one the database refuses (an id beyond PostgreSQL's INTEGER, say)
        # is answered like any other error, not by a broken stream.
        rows = count_postings(query)
        if args["format"] == "xlsx":
            limit = int(current_app.config.get("TIMEBANK_XLSX_MAX_ROWS", XLSX_MAX_ROWS))
            if rows > limit:
                raise ValidationFailed(f"{rows} rows are more than an XLSX export holds ({limit}); export in "
                                       "the background (POST /api/v1/ledger/transactions/exports), as CSV, "
                                       "or narrow the filters.", code="export_too_large")
            body = export_xlsx(query)
            record_export("ledger.export", user=user, target="ledger", fmt="xlsx", filters=filters, rows=rows)
            return Response(body, mimetype=XLSX, headers=_attachment(name + ".xlsx"))
        record_export("ledger.export", user=user, target="ledger", fmt="csv", filters=filters, rows=rows)
        # Streamed: a big ledger never sits in memory; the rows are read in keyset batches.
        return Response(stream_with_context(export_csv_chunks(query)), content_type=CSV,
                        headers={**_attachment(name + ".csv"), "X-Export-Rows": str(rows)})


def _export_name(args: dict, user) -> str:
    stamp = to_local(utc_naive()).strftime("%Y%m%d-%H%M%S")
    return f"ledger-{args.get('community_code') or (user.community.code if user.community else 'all')}-{stamp}"


class ExportRunOut(Schema):
    id = fields.Integer()
    status = fields.Function(lambda run: export_runs.state(run), metadata={
        "description": "queued, running, done, failed, interrupted (its process stopped; ask again) or "
                       "expired (its file was removed a day after)"})
    format = fields.String(attribute="fmt")
    file_name = fields.String()
    rows_expected = fields.Integer(metadata={"description": "posting rows counted when it was asked for"})
    rows_written = fields.Integer()
    size_bytes = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = LocalDateTime()
    started_at = LocalDateTime(allow_none=True)
    finished_at = LocalDateTime(allow_none=True)
    file_url = fields.Function(lambda run: url_for("reports.ExportRunFile", run_id=run.id)
                               if run.status == "done" else None, allow_none=True)


@blp.route("/ledger/transactions/exports")
class LedgerExportRuns(MethodView):
    @blp.arguments(ExportRunIn, location="json")
    @blp.response(202, ExportRunOut)
    @blp.alt_response(403, description="forbidden: not committee, supervisor or admin; another community")
    def post(self, args):
        """Export the ledger in the background (same filters and formats as the export above): for
        exports too big for one request. Answers at once with the run; `GET` it for its progress, and
        download `file_url` once `status` is `done` (kept a day). A workbook of more rows than a sheet
        holds continues on further sheets. Supervisors may ask too (it changes nothing)."""
        user = current_user()
        require_role(user, *AUDITORS)
        filters = transaction_filters(args, user)
        name = f"{_export_name(args, user)}.{args['format']}"
        run = export_runs.start(user, community_id=filters["community_id"], filters=filters, fmt=args["format"],
                                file_name=name)
        record_export("ledger.export", user=user, target=f"export_run:{run.id}", fmt=args["format"],
                      filters=_filters(args), rows=run.rows_expected)
        return run, 202, {"Location": url_for("reports.ExportRunOne", run_id=run.id)}


@blp.route("/ledger/transactions/exports/<int:run_id>")
class ExportRunOne(MethodView):
    @blp.response(200, ExportRunOut)
    @blp.alt_response(403, description="forbidden: another community's export")
    @blp.alt_response(404, description="not_found")
    def get(self, run_id):
        """A background export: its status and progress."""
        user = current_user()
        require_role(user, *AUDITORS)
        return export_runs.visible(user, run_id)


@blp.route("/ledger/transactions/exports/<int:run_id>/file")
class ExportRunFile(MethodView):
    @blp.response(200, description="the export's file (CSV or XLSX)")
    @blp.alt_response(403, description="forbidden: another community's export")
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="export_not_ready: not done (yet)")
    @blp.alt_response(410, description="export_expired: the file was removed")
    def get(self, run_id):
        """The file of a finished background export."""
        user = current_user()
        require_role(user, *AUDITORS)
        run = export_runs.visible(user, run_id)
        return export_file(run)


def export_file(run):
    """The finished run's file as an attachment; 409 before it is done, 410 once removed."""
    if run.status not in ("done", "expired"):
        raise Conflict(f"This export is {export_runs.state(run)}, not done.", code="export_not_ready")
    response = export_runs.download(run)
    if response is None:
        raise Gone("This export's file was removed; ask for it again.", code="export_expired")
    return response


# --- the monthly report ------------------------------------------------------------------------------

class MonthlyArgs(Schema):
    community_code = fields.String(required=True)
    month = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$"))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv", "xlsx")))


class MonthlyDonorItemOut(Schema):
    item_id = fields.Integer()
    name = fields.String()
    quantity = fields.Integer()


class MonthlyDonationOut(Schema):
    donor = fields.String()
    donor_kind = fields.String(allow_none=True)
    units = fields.Integer()
    items = fields.List(fields.Nested(MonthlyDonorItemOut))
    last_donation_at = fields.String()


class MonthlyRankOut(Schema):
    rank = fields.Integer()
    household_id = fields.Integer()
    household_name = fields.String()
    points = fields.Integer()


class MonthlyOut(Schema):
    community_code = fields.String()
    community_name = fields.String()
    month = fields.String()
    period = fields.Dict()
    points = fields.Dict(metadata={"description": "issued_by_category, issued_total, redeemed, voided, "
                                                 "voided_by_void, voided_by_return, redeemed_net, "
                                                 "expired, reversed (taken back by claim reversals), "
                                                 "deducted (taken from wallets by deductions), outstanding"})
    hours = fields.Dict(metadata={"description": "deposited_minutes, withdrawn_minutes, help_minutes, "
                                                "pool_balance_minutes, outstanding_minutes"})
    participation = fields.Dict(metadata={"description": "households_earning, households_total, rate"})
    activity = fields.Dict(metadata={"description": "claims_posted, claims_reversed, receipts"})
    top_households = fields.List(fields.Nested(MonthlyRankOut))
    donations = fields.List(fields.Nested(MonthlyDonationOut))
    communities = fields.List(fields.Nested(lambda: MonthlyCommunityOut()), metadata={
        "description": "A community with communities below it (a 街道 over its 社区): the figures of each "
                       "of them (and its own, when it holds or moved anything), which add up to the report's; "
                       "empty for a community with none below it"})


class MonthlyCommunityOut(Schema):
    code = fields.String()
    name = fields.String()
    parent_code = fields.String(allow_none=True)
    points = fields.Dict()
    hours = fields.Dict()
    participation = fields.Dict()
    activity = fields.Dict()


@blp.route("/reports/monthly")
class MonthlyReport(MethodView):
    @blp.arguments(MonthlyArgs, location="query")
    @blp.response(200, MonthlyOut)
    @blp.alt_response(403, description="forbidden: not committee, supervisor or admin of the community")
    @blp.alt_response(404, description="not_found: no such community")
    @blp.alt_response(422, description="validation_error: month is not YYYY-MM, unknown format")
    def get(self, args):
        """The month's figures (JSON, CSV with BOM, or XLSX). A community with communities below it (a
        街道) covers all of them, with `communities`: each one's figures. Its staff (committee,
        supervisor) read the reports of the communities below it too. CSV and XLSX exports are logged as
        `report.export` on the `timebank.audit.exports` log (a GET writes nothing)."""
        user = current_user()
        community = community_by_code(args["community_code"])
        require_sight(user, community.id, *AUDITORS)
        report = ops.monthly_report(community, args["month"])
        if args["format"] == "json":
            return report
        record_export("report.export", user=user, community_id=community.id,
                      target=f"report:monthly:{community.code}:{args['month']}", fmt=args["format"],
                      filters={"community_code": community.code, "month": args["month"]},
                      rows=ops.monthly_report_rows(report))
        name = f"monthly-{community.code}-{args['month']}"
        if args["format"] == "csv":
            return Response("\ufeff" + ops.monthly_report_csv(report), content_type=CSV,
                            headers=_attachment(name + ".csv"))
        return Response(ops.monthly_report_xlsx(report), mimetype=XLSX, headers=_attachment(name + ".xlsx"))


# --- rankings (积分榜, 红黑榜) -------------------------------------------------------------------------

MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$")


class RankingArgs(Schema):
    community_code = fields.String(required=True)
    month = fields.String(load_default=None, validate=MONTH)


class BlackListOut(Schema):
    household_id = fields.Integer()
    household_name = fields.String()
    deducted_points = fields.Integer()
    items = fields.List(fields.String())
    ranking_score = fields.Integer()


class RankingOut(Schema):
    community_code = fields.String()
    month = fields.String()
    ranking = fields.List(fields.Nested(MonthlyRankOut), metadata={
        "description": "every household with a positive ranking score (earned less deductions), most first; "
                       "``points`` is the ranking score"})
    red_list = fields.List(fields.Nested(MonthlyRankOut), metadata={
        "description": "the ranking without the households that had a deduction in the month"})
    black_list = fields.List(fields.Nested(BlackListOut))
    black_list_published = fields.Boolean(metadata={"description": "whether the public board shows the black list"})


@blp.route("/rankings")
class Rankings(MethodView):
    @blp.arguments(RankingArgs, location="query")
    @blp.response(200, RankingOut)
    @blp.alt_response(404, description="not_found: no such community")
    def get(self, args):
        """The month's rankings with names (staff of the community; default this month): the ranking
        by ranking score (积分榜), the red list and the black list (红黑榜). The public board shows them
        with masked names, the black list only when the committee publishes it."""
        user = current_user()
        community = community_by_code(args["community_code"])
        require_community(user, community.id)
        month = args["month"] or current_month()
        start, end = month_bounds(month)
        earned = ops.earned_by_household(community.id, start, end)
        deducted = ops.deducted_by_household(community.id, start, end)
        size = 10_000
        return {"community_code": community.code, "month": month,
                "ranking": ops.ranking(community.id, start, end, size=size, earned=earned),
                "red_list": ops.ranking(community.id, start, end, earned=earned, leave_out=set(deducted)),
                "black_list": ops.black_list(community.id, start, end, earned=earned),
                "black_list_published": deduction_ops.publishes_black_list(community.id)}


class StandingArgs(Schema):
    month = fields.String(load_default=None, validate=MONTH)


class StandingOut(Schema):
    household_id = fields.Integer()
    month = fields.String()
    balance_points = fields.Integer(metadata={"description": "the spendable balance of the wallet now"})
    earned_points = fields.Integer(metadata={"description": "earned in the month (claims, honours; less reversals)"})
    deducted_points = fields.Integer(metadata={
        "description": "deductions applied in the month, in full (also what the wallet could not cover)"})
    ranking_score = fields.Integer(metadata={"description": "earned_points - deducted_points: the 积分榜 score, "
                                                            "apart from the balance; may be negative"})


@blp.route("/households/<int:household_id>/ranking")
class HouseholdRanking(MethodView):
    @for_any_login
    @blp.arguments(StandingArgs, location="query")
    @blp.response(200, StandingOut)
    def get(self, args, household_id):
        """A household's spendable balance and, apart from it, its ranking score of the month (default this
        month): the household itself, or staff of its community."""
        household = visible_household(current_user(), db.session.get(Household, household_id))
        return ops.household_standing(household, args["month"] or current_month())


# --- anomalies -------------------------------------------------------------------------------------

class AnomalyArgs(Schema):
    community_code = fields.String(required=True)
    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    until = fields.AwareDateTime(load_default=None, default_timezone=UTC)


class AnomalyOut(Schema):
    kind = fields.String(metadata={"description": ", ".join(anomaly_ops.KINDS)})
    reason = fields.String()
    subjects = fields.List(fields.Dict())
    evidence = fields.Dict()


class AnomalyPage(Schema):
    community_code = fields.String()
    since = LocalDateTime()
    until = LocalDateTime()
    items = fields.List(fields.Nested(AnomalyOut))


@blp.route("/reports/anomalies")
class Anomalies(MethodView):
    @blp.arguments(AnomalyArgs, location="query")
    @blp.response(200, AnomalyPage)
    @blp.alt_response(403, description="forbidden: not committee, supervisor or admin of the community")
    @blp.alt_response(422, description="validation_error: until not after since")
    def get(self, args):
        """Patterns worth a look (reciprocal help, claim bursts, one approver, clerks' volume and voids,
        shared check-in devices and addresses, a rule paying on its first day, one staff member entering
        most claims, the pool paying the same few households, repeated refused insider attempts) in
        `[since, until)`; by default the last 30 days."""
        user = current_user()
        community = community_by_code(args["community_code"])
        require_sight(user, community.id, *AUDITORS)
        start, end = ops.parse_window(args["since"], args["until"])
        return {"community_code": community.code, "since": start, "until": end,
                "items": anomaly_ops.find_anomalies(community, start, end)}


# --- the public board --------------------------------------------------------------------------------

class PublicClaimOut(Schema):
    claim_id = fields.Integer()
    resident_name = fields.String(metadata={"description": "masked: 张*明"})
    household_name = fields.String()
    rule_title = fields.String()
    category = fields.String()
    points = fields.Integer()
    minutes = fields.Integer()
    publicity_ends_at = LocalDateTime()


class PublicRankOut(Schema):
    rank = fields.Integer()
    household_name = fields.String()
    points = fields.Integer()


class PublicBlackListOut(Schema):
    household_name = fields.String()
    deducted_points = fields.Integer()
    items = fields.List(fields.String())
    ranking_score = fields.Integer()


class PublicHonourOut(Schema):
    household_name = fields.String()
    honour_title = fields.String()
    held_from = LocalDateTime()
    held_until = LocalDateTime()
    under_review = fields.Boolean(metadata={"description": "in its half-yearly review (半年一审核)"})


class PublicHonourNoticeOut(Schema):
    award_id = fields.Integer()
    household_name = fields.String()
    honour_title = fields.String()
    points = fields.Integer()
    publicity_ends_at = LocalDateTime()


class PublicDeductionNoticeOut(Schema):
    deduction_id = fields.Integer()
    household_name = fields.String()
    item_title = fields.String()
    points = fields.Integer(metadata={"description": "negative"})
    publicity_ends_at = LocalDateTime()


class PublicDonorItemOut(Schema):
    name = fields.String()
    quantity = fields.Integer()


class PublicDonorOut(Schema):
    donor = fields.String()
    donor_kind = fields.String(allow_none=True)
    units = fields.Integer()
    items = fields.List(fields.Nested(PublicDonorItemOut))
    last_donation_at = LocalDateTime()


class PublicCosignatureOut(Schema):
    name = fields.String()
    key_id = fields.String()
    timestamp = fields.Integer(metadata={"description": "POSIX seconds, as the witness signed it"})


class PublicCheckpointOut(Schema):
    tree_size = fields.Integer()
    root_hash = fields.String()
    timestamp = LocalDateTime()
    key_id = fields.String()
    public_key_url = fields.String()
    cosignatures = fields.List(fields.Nested(PublicCosignatureOut), metadata={
        "description": "the witnesses who cosigned it"})


class PublicBoardOut(Schema):
    community_code = fields.String()
    community_name = fields.String()
    generated_at = LocalDateTime()
    month = fields.String()
    publicity = fields.List(fields.Nested(PublicClaimOut))
    ranking = fields.List(fields.Nested(PublicRankOut), metadata={
        "description": "the red list (红榜): by ranking score, without households that had a deduction this month"})
    black_list_published = fields.Boolean()
    black_list = fields.List(fields.Nested(PublicBlackListOut), metadata={
        "description": "the black list (黑榜); empty unless the committee publishes it"})
    honours = fields.List(fields.Nested(PublicHonourOut))
    honours_publicity = fields.List(fields.Nested(PublicHonourNoticeOut))
    deductions_publicity = fields.List(fields.Nested(PublicDeductionNoticeOut))
    donors = fields.List(fields.Nested(PublicDonorOut))
    donors_since = LocalDateTime()
    checkpoint = fields.Nested(PublicCheckpointOut, allow_none=True)
    board_url = fields.String()


@blp.route("/public/<community_code>")
class PublicBoard(MethodView):
    @blp.response(200, PublicBoardOut)
    @blp.alt_response(404, description="not_found: no such community")
    @blp.doc(security=PUBLIC)
    def get(self, community_code):
        """The public notice board (公示栏) as JSON, no login: claims under publicity with masked names,
        the month's ranking (masked household names), donors thanked, the latest signed checkpoint."""
        from flask import url_for

        board = ops.public_board(community_by_code(community_code))
        if board["checkpoint"] is not None:
            board["checkpoint"]["public_key_url"] = url_for("audit.PublicKey")
        board["board_url"] = f"/public/{board['community_code']}"
        return board
