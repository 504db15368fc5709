"""Ledger exports in the background (后台导出): asked for on a page or by the API, written to a file in
the instance folder by a process of their own, downloaded when done.

Why: a big export does not fit in a request. At a million transactions the CSV streams in about 25 s,
but an XLSX workbook is built whole before its first byte (openpyxl, about 10 s per 100,000 rows
here): its request was silent past the worker's timeout and was killed, and a proxy in front waits
no longer than that either. In the background it takes what it takes while the page shows how far
it is; the file is the same as the one the request would have sent (the CSV with its ``#end`` trailer
row), and a workbook of more rows than a sheet holds continues on further sheets.

The run's row (:class:`timebank.audit.models.ExportRun`) holds the filters as ``ledger_query``'s
arguments, checked and scoped to the asking user's community when asked. The request that asks
commits the row, then starts ``timebank export-run ID`` as a process of its own (a new session, so
it outlives the worker that started it: a worker is recycled now and then). That process marks the
run ``running``, writes ``<id>.<fmt>.part`` in ``instance/exports``, records its progress at most
once a second in a short transaction of its own (the export reads in one reading transaction, on
the replica when there is one), renames the file and marks the run ``done``; on an error, ``failed``
with the reason. A run silent for two minutes is shown as interrupted; asking again starts a new
one. Files are removed a day after (``TIMEBANK_EXPORT_KEEP_HOURS``) by the ``export_cleanup`` job.

``TIMEBANK_EXPORT_RUNNER``: ``process`` (the default) or ``none`` (nothing is started: the tests run
:func:`run` themselves, an operator can with ``timebank export-run ID``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path

import click
from flask import after_this_request, current_app, has_request_context, send_file
from flask.cli import with_appcontext
from sqlalchemy import select, update

from timebank.audit.ledger_browser import count_postings, export_csv_chunks, ledger_query, write_xlsx
from timebank.audit.models import ExportRun
from timebank.core import in_use
from timebank.core.clock import utc_naive
from timebank.core.database import writing
from timebank.core.errors import Conflict, Forbidden, NotFound
from timebank.core.extensions import db
from timebank.core.jobs import job
from timebank.core.policy import can_see_community

log = logging.getLogger(__name__)

FORMATS = ("csv", "xlsx")
#: A run that has given no sign of life for this long was interrupted (its process died).
STALE_AFTER = timedelta(minutes=2)
#: Seconds between two progress records of a running export.
PROGRESS_EVERY_S = 1.0
KEEP_HOURS = 24
#: Exports of one community being made at once: each is a process reading the whole ledger.
AT_ONCE = 2

_DATES = ("since", "until")


def stored_filters(filters: dict) -> str:
    """``ledger_query``'s arguments as JSON (datetimes as ISO 8601, naive UTC)."""
    return json.dumps({key: value.isoformat() if isinstance(value, datetime) else value
                       for key, value in filters.items() if value is not None}, sort_keys=True)


def query_of(run: ExportRun):
    filters = json.loads(run.filters)
    for key in _DATES:
        if filters.get(key):
            filters[key] = datetime.fromisoformat(filters[key])
    if filters.get("household_or_resident"):
        filters["household_or_resident"] = tuple(filters["household_or_resident"])
    return ledger_query(**filters)


def folder() -> Path:
    return Path(current_app.instance_path) / "exports"


def file_path(run: ExportRun) -> Path:
    return folder() / f"{run.id}.{run.fmt}"


def state(run: ExportRun, moment: datetime | None = None) -> str:
    """The run's status as shown: its stored one, or ``interrupted`` for an unfinished run whose
    process has been silent for :data:`STALE_AFTER`."""
    if run.status in ("queued", "running"):
        last = run.heartbeat_at or run.created_at
        if last < (moment or utc_naive()) - STALE_AFTER:
            return "interrupted"
    return run.status


def start(user, *, community_id: int | None, filters: dict, fmt: str, file_name: str) -> ExportRun:
    """Ask for an export of the ledger filtered by ``filters`` (``ledger_query``'s arguments, already
    checked against what ``user`` may see). Adds the run; its process starts after the request's
    commit (or at once outside a request)."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    moment = utc_naive()
    unfinished = db.session.execute(
        select(ExportRun).where(ExportRun.status.in_(("queued", "running")),
                                ExportRun.community_id.is_(None) if community_id is None
                                else ExportRun.community_id == community_id)).scalars().all()
    if sum(state(other, moment) != "interrupted" for other in unfinished) >= AT_ONCE:
        raise Conflict(f"{AT_ONCE} exports of this community are being made; ask again once one is done.",
                       code="exports_busy")
    rows = count_postings(ledger_query(**filters))
    run = ExportRun(community_id=community_id, user_id=user.id, fmt=fmt, filters=stored_filters(filters),
                    file_name=file_name, status="queued", rows_expected=rows, rows_written=0,
                    created_at=moment)
    db.session.add(run)
    db.session.flush()
    run_id = run.id
    if has_request_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        @after_this_request
        def _launch(response):
            if response.status_code < 400:  # committed (the request's commit ran before this)
                launch(app, run_id)
            return response
    else:
        launch(current_app._get_current_object(), run_id)  # type: ignore[attr-defined]
    return run


def launch(app, run_id: int) -> None:
    """Start ``timebank export-run RUN_ID`` as a process of its own, on this app's database."""
    if app.config.get("TIMEBANK_EXPORT_RUNNER", "process") != "process":
        return
    env = dict(os.environ)
    env.update(TIMEBANK_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               TIMEBANK_INSTANCE_PATH=app.instance_path, TIMEBANK_SECRET_KEY=app.config["SECRET_KEY"])
    for key in ("TIMEBANK_READ_DATABASE_URL", "TIMEBANK_TIMEZONE"):
        if app.config.get(key):
            env[key] = str(app.config[key])
    child = subprocess.Popen([sys.executable, "-c", "from timebank.cli import main; main()", "export-run",
                              str(run_id)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             start_new_session=True)
    # Reaped when it ends, so no finished export lingers as a zombie of the worker.
    threading.Thread(target=child.wait, name=f"export-run-{run_id}", daemon=True).start()


def _record_progress(run_id: int, **values) -> None:
    """Write the run's progress in a short transaction of its own (the export reads in another)."""
    with writing(), db.engine.begin() as connection:
        connection.execute(update(ExportRun).where(ExportRun.id == run_id).values(**values))


def run(run_id: int) -> str:
    """Write the export of a queued run; returns its final status. A run that is not queued (done,
    or taken by another process) is left alone."""
    moment = utc_naive()
    with writing(), db.engine.begin() as connection:
        taken = connection.execute(update(ExportRun).where(ExportRun.id == run_id, ExportRun.status == "queued")
                                   .values(status="running", started_at=moment, heartbeat_at=moment)).rowcount
    if taken != 1:
        found = db.session.get(ExportRun, run_id)
        return found.status if found is not None else "missing"
    export = db.session.get(ExportRun, run_id)
    assert export is not None
    target, fmt, query = file_path(export), export.fmt, query_of(export)
    db.session.rollback()  # the export's reads go in a reading transaction of their own
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    last = [time.monotonic()]

    def progress(rows: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            _record_progress(run_id, rows_written=rows, heartbeat_at=utc_naive())

    try:
        if fmt == "csv":
            with open(partial, "w", encoding="utf-8", newline="") as handle:
                for chunk in export_csv_chunks(query, progress=progress):
                    handle.write(chunk)
            rows = _csv_rows(partial)
        else:
            with open(partial, "wb") as handle:
                rows = write_xlsx(query, handle, progress=progress)
        db.session.rollback()  # the end of the reading transaction
        os.replace(partial, target)
    except Exception as exc:
        db.session.rollback()
        with suppress(OSError):
            partial.unlink()
        log.exception("export run %s failed", run_id)
        _record_progress(run_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000],
                         finished_at=utc_naive(), heartbeat_at=utc_naive())
        return "failed"
    _record_progress(run_id, status="done", rows_written=rows, size_bytes=target.stat().st_size,
                     finished_at=utc_naive(), heartbeat_at=utc_naive())
    return "done"


def _csv_rows(path: Path) -> int:
    """The row count of a finished CSV export, from its trailer row (``#end,<rows>``)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 200))
        tail = handle.read().decode("utf-8", errors="replace").strip().splitlines()[-1]
    return int(tail.split(",")[1])


MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def download(run: ExportRun):
    """The finished run's file as an attachment (never cached); None when there is none (not done,
    or removed)."""
    path = file_path(run)
    if run.status != "done" or not path.exists():
        return None
    response = send_file(path, mimetype=MIMETYPES[run.fmt], as_attachment=True, download_name=run.file_name,
                         max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


def visible(user, run_id: int) -> ExportRun:
    """The run, if ``user`` may see it: an administrator any; staff those of their community and of
    the communities below it (a 街道's staff, who may export those, as for the ledger itself)."""
    found = db.session.get(ExportRun, run_id)
    if found is None:
        raise NotFound("No such export.", code="not_found")
    if user.role != "admin" and (found.community_id is None or not can_see_community(user, found.community_id)):
        raise Forbidden("This export belongs to another community.")
    return found


def recent(community_id: int | None, limit: int = 20) -> list[ExportRun]:
    query = select(ExportRun).order_by(ExportRun.id.desc()).limit(limit)
    query = query.where(ExportRun.community_id.is_(None) if community_id is None
                        else ExportRun.community_id == community_id)
    return list(db.session.execute(query).scalars())


@job("export_cleanup", "Remove the files of background exports a day old (TIMEBANK_EXPORT_KEEP_HOURS).",
     trigger="interval", minutes=30)
def cleanup() -> dict:
    hours = int(current_app.config.get("TIMEBANK_EXPORT_KEEP_HOURS", KEEP_HOURS))
    before = utc_naive() - timedelta(hours=hours)
    old = db.session.execute(select(ExportRun).where(ExportRun.status == "done",
                                                     ExportRun.finished_at < before)).scalars().all()
    for export in old:
        export.status = "expired"
        with suppress(FileNotFoundError):
            file_path(export).unlink()
    db.session.flush()
    return {"expired": len(old)}


@click.command("export-run")
@click.argument("run_id", type=int)
@with_appcontext
def export_run_command(run_id: int):
    """Write the file of background export RUN_ID (started by the app; for operators: a queued one).

    The database is marked in use while it runs: `timebank restore` refuses until it ends."""
    in_use.hold(current_app.config)
    status = run(run_id)
    click.echo(f"export {run_id}: {status}")
    if status == "failed":
        raise SystemExit(1)
