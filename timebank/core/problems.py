"""One place decides how errors look: problem+json for API clients, an HTML page for browsers.

API clients never get an HTML page: anything under ``/api/`` (or asking for JSON) gets
``application/problem+json`` with ``status``, ``title``, ``detail``, a stable ``error`` code and,
for field validation, ``errors``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from flask import current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from timebank.core.errors import GENERIC_CODES, TITLES, DomainError
from timebank.core.extensions import db

log = logging.getLogger(__name__)

# Database failures that are the machine's, not the request's: the client should retry later.
# SQLite names them (``sqlite_errorname``), PostgreSQL gives an SQLSTATE; the messages are the fallback.
_UNAVAILABLE_MARKERS = (
    "database is locked", "readonly database", "disk is full", "disk i/o error", "unable to open database",
    "could not connect", "connection refused", "no space left", "read-only", "lock timeout",
    "canceling statement due to lock timeout", "canceling statement due to statement timeout",
    "server closed the connection", "connection timeout expired", "connection timed out",
)
_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_FULL", "SQLITE_IOERR",
                       "SQLITE_CANTOPEN", "SQLITE_PROTOCOL")
# 08 connection, 40 serialization/deadlock (the whole transaction was undone), 53 disk full, out of
# memory, too many connections, 57 statement timeout / shutdown, 58 I/O; 55P03 lock timeout;
# 25006 read-only transaction (a standby, or default_transaction_read_only).
_PG_UNAVAILABLE_CLASSES = ("08", "40", "53", "57", "58")
_PG_UNAVAILABLE_STATES = ("55P03", "25006")
# 22 data exception: a value the database cannot hold (string too long, number out of range). The
# schemas should have refused it first; if one did not, it is still the request's fault, not a 500.
_PG_INVALID_INPUT_CLASSES = ("22",)


def _driver_error(exc):
    """The driver's exception: SQLAlchemy wraps it in ``orig``; the ledger's hot path raises it bare."""
    return getattr(exc, "orig", None) or exc


def database_unavailable(exc) -> bool:
    """True when a database error means "not now" (locked, full, read-only, timed out, gone)."""
    if getattr(exc, "connection_invalidated", False):  # SQLAlchemy saw the connection break
        return True
    orig = _driver_error(exc)
    name = getattr(orig, "sqlite_errorname", None)
    if name and name.startswith(_SQLITE_UNAVAILABLE):
        return True
    state = getattr(orig, "sqlstate", None)
    if state and (state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE_STATES):
        return True
    if not state and _is_psycopg_operational(orig):
        # No SQLSTATE: the client's own failure to reach the server (connect or answer timeout, a
        # socket the kernel closed after TCP user timeout or keepalives, a connection already closed).
        return True
    message = str(orig).lower()
    return any(marker in message for marker in _UNAVAILABLE_MARKERS)


def _is_psycopg_operational(orig) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        return False
    return isinstance(orig, psycopg.OperationalError)


def database_refused_value(exc) -> bool:
    state: Any = getattr(_driver_error(exc), "sqlstate", None)  # str or None, by driver
    return bool(state) and state[:2] in _PG_INVALID_INPUT_CLASSES


def driver_error_classes() -> tuple:
    classes: list[type[Exception]] = [sqlite3.Error]
    try:
        import psycopg

        classes.append(psycopg.Error)
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        pass
    return tuple(classes)


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def problem(status: int, code: str | None = None, detail: str | None = None, title: str | None = None,
            errors: dict | None = None, headers: dict | None = None):
    body = {
        "type": "about:blank",
        "status": status,
        "title": title or TITLES.get(status, "Error"),
        "detail": detail or title or TITLES.get(status, "Error"),
        "error": code or GENERIC_CODES.get(status, "error"),
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>{{ status }} {{ title }}</title>
<body style="font: 20px/1.5 sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em">
<h1>{{ status }} {{ title }}</h1><p>{{ detail }}</p><p><a href="/">返回首页 / Home</a></p></body></html>"""


#: What a person reads on an error page: a title and a sentence per status, in their language.
PAGE_TEXTS = {
    400: (_l("The request could not be understood"),
          _l("Something in what was sent is not right. Go back, check the form and send it again.")),
    403: (_l("Not allowed"), _l("Your account may not open this page or do this. Ask the community office if "
                               "you think it should.")),
    404: (_l("Page not found"), _l("There is no page at this address. Check the link, or start again from the "
                                  "home page.")),
    405: (_l("Not possible here"), _l("This page cannot be used that way. Go back and use its buttons.")),
    413: (_l("Too large"), _l("What was sent is too large. Send a smaller file.")),
    422: (_l("Please check the form"), _l("Some of what was entered is not valid. Go back, correct it and send "
                                         "it again.")),
    429: (_l("Too many attempts"), _l("There were too many attempts in a short time.")),
    500: (_l("Something went wrong"), _l("The system made a mistake; nothing was changed. Please try again; if it "
                                        "happens again, tell the community office.")),
}
#: A form sent after its CSRF token expired (Flask-WTF's 400): the common case of a page left open.
_FORM_EXPIRED = (_l("The form has expired"),
                 _l("The page was open too long. Go back, reload the page and fill in the form again."))


def _back_link() -> str | None:
    """The page the person came from, when it is on this site (never an outside address)."""
    referrer = request.referrer or ""
    if referrer.startswith(request.host_url) and referrer.rstrip("/") != request.url.rstrip("/"):
        return referrer
    return None


def _framed_page(status, title, detail, headers):
    """The error page in the site's frame (menu, language, the signed-in user). It needs the
    database for the signed-in user; when that fails too, the bare page (:data:`_PAGE`)."""
    try:
        retry = (headers or {}).get("Retry-After") if status in (429, 503) else None
        return render_template("error.html", status=status, title=title, detail=detail, back=_back_link(),
                               retry_after=retry)
    except Exception:  # noqa: BLE001 - the frame needs the database; the bare page never does
        log.warning("error page without the site's frame", exc_info=True)
        _rollback()
        return None


def _render(status, code, detail, title=None, errors=None, headers=None, page_title=None, page_detail=None,
            framed=True):
    """problem+json for programs; for people an HTML page in the site's frame and their language
    (``page_*`` where given, else the status's own words)."""
    if wants_json():
        return problem(status, code, detail, title, errors, headers)
    default_title, default_detail = PAGE_TEXTS.get(status, PAGE_TEXTS[500] if status >= 500 else PAGE_TEXTS[400])
    page_title, page_detail = page_title or default_title, page_detail or default_detail
    if framed:
        html = _framed_page(status, page_title, page_detail, headers)
        if html is not None:
            return html, status, headers or {}
    # Rendered from the bare Jinja environment, without the app's context processors: those look up
    # the signed-in user (``current_user``) and so need the database, and the page saying that the
    # database is unavailable must not need it (it would fail again and turn a 503 into a 500).
    html = current_app.jinja_env.from_string(_PAGE).render(status=status, title=page_title, detail=page_detail)
    return html, status, headers or {}


def _http_headers(exc, status: int) -> dict:
    """What an HTTP error's answer keeps of it, page or problem: when to try again, what is allowed."""
    headers = {}
    if status == 429:
        headers["Retry-After"] = str(getattr(exc, "retry_after", None) or 60)
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return headers


def page_for_http_error(exc) -> tuple | None:
    """The HTML page for a werkzeug ``HTTPException`` raised by a page request; None for requests that
    want problem+json (flask-smorest's handler, which the API registers for every HTTPException,
    asks this first)."""
    if wants_json():
        return None
    status = exc.code or 500
    headers = _http_headers(exc, status)
    title = detail = None
    if status == 400 and type(exc).__name__ == "CSRFError":
        title, detail = _FORM_EXPIRED
    _rollback()
    return _render(status, GENERIC_CODES.get(status), None, headers=headers, page_title=title, page_detail=detail)


def _busy_page() -> tuple[str, str]:
    """The 503 page's title and text for people (a form may have been done although its commit failed;
    its one-time key makes sending it again safe)."""
    return (_("The system is busy"),
            _("The system is busy; please wait a moment and try again. To send a form "
              "again, reload this page: what was already done is not done twice."))


def _rollback():
    try:
        db.session.rollback()
    except Exception:  # pragma: no cover - the connection may be gone; nothing more to undo
        log.exception("rollback failed")


def init_app(app):
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        _rollback()
        headers = dict(exc.headers)
        if exc.status == 503:  # the database is unavailable, or a commit failed (boundary.CommitFailed)
            headers.setdefault("Retry-After", str(current_app.config.get("TIMEBANK_RETRY_AFTER_SECONDS", 5)))
            return _render(503, exc.code, exc.detail, exc.title, exc.errors, headers, *_busy_page(), framed=False)
        from timebank.core.pages import domain_message

        words = domain_message(exc)
        return _render(exc.status, exc.code, exc.detail, exc.title, exc.errors, headers,
                       page_detail=words if words != (exc.detail or exc.code) else None)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        page = page_for_http_error(exc)
        if page is not None:
            return page
        _rollback()
        status = exc.code or 500
        headers = _http_headers(exc, status)
        detail = exc.description if isinstance(exc.description, str) else None
        errors = None
        data = getattr(exc, "data", None)
        if status == 422 and data and "messages" in data:
            errors = flatten_messages(data["messages"])
            detail = "The request has invalid fields."
        return _render(status, GENERIC_CODES.get(status), detail, errors=errors, headers=headers)

    def _database(exc: Exception):
        _rollback()
        if database_unavailable(exc):
            log.warning("database unavailable: %s", _driver_error(exc))
            # A page's form may have been done although its commit failed (the answer was lost): the
            # person is told to send the same form again, which its one-time key makes safe.
            page_title, page_detail = _busy_page()
            return _render(503, "service_unavailable",
                           "The database is busy or cannot be written just now; nothing was changed. Try again.",
                           headers={"Retry-After": str(current_app.config.get("TIMEBANK_RETRY_AFTER_SECONDS", 5))},
                           page_title=page_title, page_detail=page_detail, framed=False)
        if database_refused_value(exc):
            log.warning("database refused a value: %s", _driver_error(exc))
            return _render(422, "validation_error", "A value is too long or out of range; nothing was changed.")
        log.exception("database error")
        return _render(500, "internal_error", "An unexpected error occurred; nothing was changed.")

    @app.errorhandler(OverflowError)
    def _overflow(exc: OverflowError):
        # sqlite3 refuses to bind an integer beyond 64 bits (an id of 10**25 in a query string, say):
        # the request's number is out of range, not a fault of the server.
        _rollback()
        if "too large to convert" in str(exc):
            return _render(422, "validation_error", "A number in the request is out of range.")
        current_app.logger.exception("unhandled error")
        return _render(500, "internal_error", "An unexpected error occurred; nothing was changed.")

    # SQLAlchemy's wrapped errors, and the drivers' own (the ledger's hot path uses driver cursors).
    app.register_error_handler(DBAPIError, _database)
    for driver_error in driver_error_classes():
        app.register_error_handler(driver_error, _database)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        _rollback()
        current_app.logger.exception("unhandled error")
        return _render(500, "internal_error", "An unexpected error occurred; nothing was changed.")


def flatten_messages(messages) -> dict:
    """webargs gives {"json": {"field": [...]}}; clients want {"field": [...]}."""
    if not isinstance(messages, dict):
        return {"_schema": [str(messages)]}
    flat: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            for name, msgs in fields.items():
                flat[name] = msgs if isinstance(msgs, (list, dict)) else [str(msgs)]
        else:
            flat[location] = fields if isinstance(fields, list) else [str(fields)]
    return flat
