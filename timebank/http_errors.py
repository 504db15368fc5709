"""One place decides how errors look: problem+json for API clients, an HTML page for browsers.

API clients never get an HTML page: anything under ``/api/`` (or asking for JSON) gets
``application/problem+json`` with ``status``, ``title``, ``detail``, a stable ``error`` code and,
for field validation, ``errors``.
"""

from __future__ import annotations

import logging

from flask import current_app, jsonify, render_template_string, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from timebank.errors import GENERIC_CODES, TITLES, DomainError
from timebank.extensions import db

log = logging.getLogger(__name__)

# Database failures that are the machine's, not the request's: the client should retry later.
_UNAVAILABLE_MARKERS = (
    "database is locked", "readonly database", "disk is full", "disk i/o error", "unable to open database",
    "could not connect", "connection refused", "no space left", "read-only", "lock timeout",
    "canceling statement due to lock timeout", "server closed the connection",
)


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


def problem_body(response) -> dict:
    return response.get_json()


_PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>{{ status }} {{ title }}</title>
<body style="font: 20px/1.5 sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em">
<h1>{{ status }} {{ title }}</h1><p>{{ detail }}</p><p><a href="/">返回首页 / Home</a></p></body></html>"""


def _render(status, code, detail, title=None, errors=None, headers=None):
    if wants_json():
        return problem(status, code, detail, title, errors, headers)
    html = render_template_string(_PAGE, status=status, title=title or TITLES.get(status, "Error"), detail=detail)
    return html, status, headers or {}


def _rollback():
    try:
        db.session.rollback()
    except Exception:  # pragma: no cover - the connection may be gone; nothing more to undo
        log.exception("rollback failed")


def init_app(app):
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        _rollback()
        return _render(exc.status, exc.code, exc.detail, exc.title, exc.errors, exc.headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        _rollback()
        status = exc.code or 500
        headers = {}
        if status == 429:
            headers["Retry-After"] = str(getattr(exc, "retry_after", None) or 60)
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        detail = exc.description if isinstance(exc.description, str) else None
        errors = None
        data = getattr(exc, "data", None)
        if status == 422 and data and "messages" in data:
            errors = flatten_messages(data["messages"])
            detail = "The request has invalid fields."
        return _render(status, GENERIC_CODES.get(status), detail, errors=errors, headers=headers)

    @app.errorhandler(OperationalError)
    def _operational(exc: OperationalError):
        _rollback()
        message = str(exc.orig).lower() if exc.orig else str(exc).lower()
        if any(marker in message for marker in _UNAVAILABLE_MARKERS):
            log.warning("database unavailable: %s", message)
            return _render(503, "service_unavailable",
                           "The database is busy or cannot be written just now; nothing was changed. Try again.",
                           headers={"Retry-After": "5"})
        log.exception("database error")
        return _render(500, "internal_error", "An unexpected error occurred; nothing was changed.")

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
