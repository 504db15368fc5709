"""Shared pieces of the API: the current user, idempotent writes, cursor pagination, base schemas."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import namedtuple
from functools import wraps

import flask_login
from flask import g, request
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import IntegrityError

from ledger import driver
from timebank.core.auth import PREFETCHED_ANSWER
from timebank.core.clock import to_local, utc_naive
from timebank.core.database import take_write_lock, write_and_commit
from timebank.core.errors import DomainError, IdempotencyKeyReused, Unauthenticated, ValidationFailed
from timebank.core.extensions import db
from timebank.core.idempotency import IdempotencyRecord
from timebank.core.problems import problem
from timebank.core.users import User


def current_user() -> User:
    """The user of the bearer token or of the page session (Flask-Login's loaders,
    :mod:`timebank.core.auth`). 401 when there is none."""
    user = flask_login.current_user
    if user is not None and user.is_authenticated:
        return user._get_current_object()
    raise Unauthenticated("Send Authorization: Bearer <token> (POST /api/v1/auth/token).")


class LocalDateTime(fields.DateTime):
    """Stored naive UTC; shown ISO 8601 with the deployment's offset."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else to_local(value).isoformat()


class ListArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    cursor = fields.String(load_default=None)


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(errors={"cursor": ["Not a cursor returned by this API."]}) from None


def paginate(query, id_column, limit: int, cursor: str | None, descending: bool = False):
    """Keyset pagination on an id column: stable under concurrent inserts."""
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(id_column < after if descending else id_column > after)
    query = query.order_by(id_column.desc() if descending else id_column).limit(limit + 1)
    rows = list(db.session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], id_column.key)) if more and rows else None
    return {"items": rows, "next_cursor": next_cursor}


# Every idempotent write asks and then stores, on the driver's cursor (this runs on every sale).
_RECORDS = driver.per_dialect({
    "find": f'SELECT request_hash, status_code, response_body FROM {IdempotencyRecord.__tablename__}'
            ' WHERE scope = {scope} AND "key" = {key}',
    "insert": f'INSERT INTO {IdempotencyRecord.__tablename__} (scope, "key", request_hash, status_code,'
              ' response_body, created_at) VALUES ({scope}, {key}, {request_hash}, {status_code},'
              ' {response_body}, {created_at})',
})
_Record = namedtuple("_Record", "request_hash status_code response_body")


_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def _request_fingerprint() -> str:
    if request.mimetype in _FORMS or (request.content_length and not request.is_json):
        return _upload_fingerprint()
    body = request.get_json(silent=True)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def _upload_fingerprint() -> str:
    """A request whose body is a file (a CSV, a spreadsheet, a multipart form): its bytes and its query
    string (``?dry_run=true`` is another request) make the fingerprint."""
    digest = hashlib.sha256(f"{request.method} {request.path}?{request.query_string.decode()}\n".encode())
    if request.mimetype not in _FORMS:
        digest.update(request.get_data(cache=True))
        return digest.hexdigest()
    for name, value in sorted(request.form.items(multi=True)):
        digest.update(f"{name}={value}\n".encode())
    for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
        digest.update(f"{name}:{upload.filename}\n".encode())
        digest.update(upload.stream.read())
        upload.stream.seek(0)
    return digest.hexdigest()


def _stored(record):
    from flask import current_app

    response = current_app.response_class(record.response_body, status=record.status_code,
                                          mimetype="application/json")
    if record.status_code >= 400:
        response.mimetype = "application/problem+json"
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _record_and_commit(sql: str, values: dict) -> bool:
    """:func:`timebank.core.database.write_and_commit`, where a failure of the connection is the
    commit's failure: 503, outcome unknown (:class:`timebank.core.boundary.CommitFailed`)."""
    from timebank.core.boundary import commit_outcome

    with commit_outcome(driver.integrity_error(db.session)):  # a taken key is not a failed commit
        return write_and_commit(db.session, sql, values)


def idempotent(view):
    """Make a POST that moves points, minutes or stock safe to retry.

    The first response to (user, ``Idempotency-Key``) is stored in the same database transaction as
    the work it describes; a retry with the same body gets it back and moves nothing, a retry with
    another body gets 422 ``idempotency_key_reused``. Business refusals (4xx) are stored too, so a
    retry cannot succeed where the first attempt was refused and the client told so.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255:
            raise ValidationFailed(errors={"Idempotency-Key": ["Must be 1 to 255 characters."]})
        user = current_user()
        scope = f"user:{user.id}"
        fingerprint = _request_fingerprint()

        def lookup():
            prefetched = g.pop(PREFETCHED_ANSWER, None)  # read with the bearer token (timebank.core.auth)
            if prefetched is not None and prefetched[:2] == (scope, key):
                return None if prefetched[2] is None else _Record(*prefetched[2])
            cursor, dialect = driver.cursor(db.session)
            cursor.execute(_RECORDS[dialect]["find"], {"scope": scope, "key": key})
            found = cursor.fetchone()
            return None if found is None else _Record(*found)

        def replay(record):
            if record.request_hash != fingerprint:
                raise IdempotencyKeyReused("This Idempotency-Key was used with a different request.")
            body = _stored(record)
            if db.session.new or db.session.dirty or db.session.deleted:
                db.session.rollback()
            # Otherwise nothing was written: the request's commit ends the transaction as cheaply
            # as a rollback would, and keeps psycopg's prepared statements (a rollback drops them
            # all, one more round trip, and they are prepared again).
            return body

        record = lookup()
        if record is not None:
            return replay(record)
        try:
            response = view(*args, **kwargs)
        except DomainError as exc:
            if exc.status >= 500:
                raise
            db.session.rollback()
            response = problem(exc.status, exc.code, exc.detail, exc.title, exc.errors, exc.headers)
        if response.status_code >= 500:
            db.session.rollback()
            return response
        db.session.flush()  # the view's ORM changes first: the record goes on the driver's cursor
        dialect = driver.dialect_name(db.session)
        taken = (IntegrityError, driver.integrity_error(db.session))  # asked now: a failed commit drops the session
        values = {"scope": scope, "key": key, "request_hash": fingerprint, "status_code": response.status_code,
                  "response_body": response.get_data(as_text=True),
                  "created_at": driver.timestamp(dialect, utc_naive())}
        try:  # a taken key fails here (the request's boundary commits the record with the work)
            # A deferred PostgreSQL sale: the record and COMMIT in one message (timebank.core.database).
            if not _record_and_commit(_RECORDS[dialect]["insert"], values):
                take_write_lock(db.session)  # a refusal may come before the view took it
                driver.cursor(db.session)[0].execute(_RECORDS[dialect]["insert"], values)
        except taken:
            # A concurrent retry with the same key committed first; its work stands, ours is undone.
            db.session.rollback()
            record = lookup()
            if record is None:
                raise
            return replay(record)
        return response

    # The OpenAPI document lists Idempotency-Key for the views so marked (timebank.core.openapi).
    wrapper.idempotent_by_key = True  # type: ignore[attr-defined]
    return wrapper
