"""The roster import over the API: ``POST /api/v1/imports/households`` (see :mod:`timebank.people.imports`)."""

from __future__ import annotations

from flask import jsonify, request
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from timebank.core.database import defers_write_lock
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import current_user, idempotent
from timebank.core.policy import require_community
from timebank.people import imports
from timebank.people import operations as ops

blp = Blueprint("imports", __name__, url_prefix="/api/v1", description="Roster import (花名册导入).")


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class ImportArgs(Schema):
    community_code = fields.String(required=True, metadata={"description": "The community to import into."})
    dry_run = fields.Boolean(load_default=False,
                             metadata={"description": "Check the file and count what it would create; write nothing."})


class RowErrorOut(Schema):
    row = fields.Integer(allow_none=True, metadata={"description": "As the spreadsheet numbers it (header: 1)"})
    column = fields.String(allow_none=True, metadata={"description": "The column's header"})
    message = fields.String()


class ImportOut(Schema):
    rows = fields.Integer(metadata={"description": "Rows of people in the file (the header not counted)"})
    households_created = fields.Integer()
    residents_created = fields.Integer()
    opening_points_posted = fields.Integer(metadata={"description": "Points of the opening balances posted"})
    opening_balances_posted = fields.Integer(metadata={"description": "Households whose opening balance was posted"})
    errors = fields.List(fields.Nested(RowErrorOut))


_FILE = {"type": "string", "format": "binary"}
REQUEST_BODY = {
    "required": True,
    "description": "The roster, one row per person, the column names in row 1 (Chinese or English): "
                   "户名/household, 地址/address, 网格/grid, 标签/color (红/黄/绿 or red/yellow/green), "
                   "姓名/name, 手机/phone, 出生年份/birth_year and, optionally, 期初积分/opening_points. "
                   "CSV in UTF-8 (with or without BOM) or GB18030, or XLSX; at most 20 MB.",
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        imports.XLSX_TYPE: {"schema": _FILE},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": _FILE}}},
    },
}


@blp.url_value_preprocessor
def _larger_bodies(_endpoint, _values):
    """A roster is larger than any other request: its own limit (before any hook reads the body)."""
    request.max_content_length = imports.limit("TIMEBANK_IMPORT_MAX_BYTES", imports.MAX_BYTES)


def uploaded_file() -> bytes:
    """The file: the body itself (CSV or XLSX), or the form field ``file``."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed(errors={"file": ["Send the roster in the form field 'file'."]})
        return upload.read()
    if request.mimetype in (*imports.CSV_TYPES, imports.XLSX_TYPE, "application/octet-stream"):
        return request.get_data(cache=True)
    raise UnsupportedMediaType("Send the roster as text/csv, as an XLSX workbook, or as the field 'file' "
                               "of a multipart form.")


def invalid(report: dict):
    """422 ``import_invalid``: a problem whose other members are the report itself."""
    db.session.rollback()
    body = {"type": "about:blank", "status": 422, "title": "Import invalid",
            "detail": _("Nothing was imported: %(n)d problems in the file.", n=len(report["errors"])),
            "error": "import_invalid", **report}
    response = jsonify(body)
    response.status_code = 422
    response.mimetype = "application/problem+json"
    return response


@blp.route("/imports/households")
class HouseholdImport(MethodView):
    @defers_write_lock  # the file is read and checked before the write lock (imports.lock_community)
    @blp.arguments(ImportArgs, location="query")
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.doc(requestBody=REQUEST_BODY)
    @blp.response(201, ImportOut, description="Imported")
    @blp.alt_response(200, schema=ImportOut, description="The dry run: what the file would create; nothing written")
    @blp.alt_response(404, description="not_found: no such community")
    @blp.alt_response(413, description="payload_too_large: the file is larger than 20 MB")
    @blp.alt_response(415, description="unsupported_media_type: neither CSV, XLSX nor a multipart form")
    @blp.alt_response(422, description="import_invalid: a row is wrong, listed in `errors` by row and column; "
                                       "nothing was imported")
    def post(self, args):
        """Import the roster of a community: households, residents and opening balances (committee).

        All or nothing. Importing the same file again creates nothing new: households are found by name
        and address, residents by phone or by name within the household, and an opening balance is
        posted at most once per household (a ledger transaction of kind ``opening_balance``). With
        ``dry_run=true`` the file is checked and counted, and nothing is written."""
        user = current_user()
        community = ops.community_by_code(args["community_code"])
        require_community(user, community.id, "committee")
        data = uploaded_file()
        plan, report = imports.run(community, user, data, dry_run=args["dry_run"], via="api")
        if plan.errors:
            return invalid(report)
        return report, 200 if args["dry_run"] else 201
