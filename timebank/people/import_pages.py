"""The committee's roster import page (导入花名册): upload the file, see what it would do, confirm.

1. ``POST /committee/import`` with the file (``action=check``): the file is kept in the instance
   folder, under ``imports/<community id>/<sha256>``, and the browser goes to
   ``GET /committee/import?file=<sha256>``.
2. That page checks the kept file against the roster as it is now (a dry run: it reads only) and
   shows the rows, the households, and every error by row and column; without errors, a button to
   confirm.
3. ``POST /committee/import`` with ``action=confirm`` and the hash imports the kept file, after
   checking that its bytes still have that hash: what is imported is exactly the file that was
   checked, never a file sent again. The import checks everything once more, under the lock; if the
   roster changed meanwhile and a row is now wrong, nothing is imported and the page says so.
   A kept file is deleted once imported, and any kept file after a day.

Both forms carry a one-time ``form_key``: a double tap imports once. Only the committee (and an
admin) imports; grid workers and supervisors get 403.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    after_this_request,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from timebank.core.errors import DomainError
from timebank.core.exports import append_row, csv_writer
from timebank.core.extensions import db
from timebank.core.pages import form_done, replay_form, roles_required, take_form_key
from timebank.core.policy import require_community
from timebank.people import imports
from timebank.people import staff_pages as staff
from timebank.people.staff_pages import me

bp = Blueprint("web_import", __name__, url_prefix="/committee")

_HASH = re.compile(r"^[0-9a-f]{64}$")
#: A kept file not confirmed within this many seconds is deleted.
KEEP_SECONDS = 24 * 3600
#: Households shown in the check's table (the counts cover them all).
PREVIEW = 200


@bp.url_value_preprocessor
def _larger_bodies(endpoint, _values):
    if endpoint == "web_import.upload":
        request.max_content_length = imports.limit("TIMEBANK_IMPORT_MAX_BYTES", imports.MAX_BYTES)


def _folder(community_id: int) -> Path:
    return Path(current_app.instance_path) / "imports" / str(community_id)


def _kept(community_id: int, sha256: str | None) -> Path | None:
    if not sha256 or not _HASH.match(sha256):
        return None
    path = _folder(community_id) / sha256
    return path if path.is_file() else None


def _keep(community_id: int, data: bytes) -> str:
    folder = _folder(community_id)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.iterdir():  # files checked and never confirmed
        if old.is_file() and now - old.stat().st_mtime > KEEP_SECONDS:
            old.unlink(missing_ok=True)
    sha256 = imports.file_hash(data)
    target = folder / sha256
    partial = folder / f".{sha256}.part"
    partial.write_bytes(data)
    partial.replace(target)
    return sha256


class ImportInvalid(DomainError):
    status, code, title = 422, "import_invalid", "Import invalid"


def _place():
    place = staff.place()
    require_community(me(), place.id, "committee")
    return place


@bp.route("/import", methods=["GET", "POST"])
@roles_required("committee")
def upload():
    place = _place()
    if request.method == "POST":
        return _check_file(place) if request.form.get("action") != "confirm" else _confirm(place)
    sha256 = request.args.get("file")
    if sha256 is None:
        return render_template("committee/import.html", place=place, plan=None, report=None, sha256=None,
                               limit_mb=imports.limit("TIMEBANK_IMPORT_MAX_BYTES", imports.MAX_BYTES) // 2**20)
    path = _kept(place.id, sha256)
    if path is None:
        flash(_("That file is no longer kept here; upload it again."), "error")
        return redirect(url_for(".upload", **_community_arg()))
    plan = imports.check(place, path.read_bytes())
    return render_template("committee/import.html", place=place, plan=plan, report=plan.report(), sha256=sha256,
                           preview=plan.households[:PREVIEW], more=max(0, len(plan.households) - PREVIEW),
                           limit_mb=None)


def _community_arg() -> dict:
    return {"community": request.values["community"]} if me().role == "admin" and request.values.get("community") \
        else {}


def _check_file(place):
    if not take_form_key():
        return replay_form(url_for(".upload", **_community_arg()))
    upload_ = request.files.get("file")
    data = upload_.read() if upload_ is not None else b""
    if not data:
        db.session.rollback()
        flash(_("Choose the roster file (CSV or XLSX) first."), "error")
        return redirect(url_for(".upload", **_community_arg()))
    try:
        sha256 = _keep(place.id, data)
    except OSError:  # the instance folder is full or read-only
        db.session.rollback()
        flash(_("The file cannot be kept on the server just now; try again later."), "error")
        return redirect(url_for(".upload", **_community_arg()))
    return form_done(url_for(".upload", file=sha256, **_community_arg()))


def _confirm(place):
    sha256 = request.form.get("file") or ""
    back = url_for(".upload", file=sha256, **_community_arg()) if _HASH.match(sha256) else url_for(".upload")
    if not take_form_key():
        return replay_form(back)
    path = _kept(place.id, sha256)
    data = path.read_bytes() if path is not None else None
    if data is None or imports.file_hash(data) != sha256:
        db.session.rollback()
        flash(_("That file is no longer kept here; upload it again."), "error")
        return redirect(url_for(".upload", **_community_arg()))
    try:
        plan, report = imports.run(place, me(), data, dry_run=False, via="web")
        if plan.errors:
            raise ImportInvalid()
    except DomainError as exc:
        db.session.rollback()
        if exc.code == "import_invalid":
            flash(_("Not done: the file has problems now (the roster changed since the check); see the table."),
                  "error")
        else:
            flash(staff.message(exc), "error")
        return redirect(back)

    @after_this_request
    def _forget(response):
        if response.status_code < 400:
            path.unlink(missing_ok=True)
        return response

    message = _("Imported: %(households)d households and %(residents)d residents created, %(points)d opening "
                "points posted to %(balances)d households.", households=report["households_created"],
                residents=report["residents_created"], points=report["opening_points_posted"],
                balances=report["opening_balances_posted"])
    return form_done(url_for("web_people.households", **_community_arg()), message)


# --- the template ------------------------------------------------------------------------------------------

def _template_rows():
    return [list(imports.COLUMNS.values()), list(imports.EXAMPLE)]


@bp.get("/import/template.csv")
@roles_required("committee")
def template_csv():
    _place()
    buffer = io.StringIO()
    csv_writer(buffer).writerows(_template_rows())
    # With a BOM: Excel then opens the Chinese headers as UTF-8.
    body = "\ufeff" + buffer.getvalue()
    return Response(body.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=roster-template.csv"})


@bp.get("/import/template.xlsx")
@roles_required("committee")
def template_xlsx():
    import openpyxl

    _place()
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("花名册")
    for row in _template_rows():
        append_row(sheet, row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return Response(buffer.getvalue(), mimetype=imports.XLSX_TYPE,
                    headers={"Content-Disposition": "attachment; filename=roster-template.xlsx"})


def init_app(app) -> None:
    app.register_blueprint(bp)
