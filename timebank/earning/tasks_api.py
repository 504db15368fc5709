"""Tasks (定期发放任务) with rotating QR codes, and check-in (扫码签到)."""

from __future__ import annotations

import io
from datetime import UTC

import segno
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import limiter
from timebank.core.http import ListArgs, LocalDateTime, current_user, idempotent, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_member
from timebank.earning import tasks as ops
from timebank.earning.api import ClaimOut
from timebank.earning.models import Task
from timebank.people.operations import community_by_code

blp = Blueprint("tasks", __name__, url_prefix="/api/v1", description="Tasks with QR check-in (扫码签到).")


class TaskIn(Schema):
    community_code = fields.String(required=True)
    rule_code = fields.String(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    starts_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    ends_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    slots = fields.Integer(required=True, validate=validate.Range(1, 10_000))


class TaskOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda t: t.rule.community.code)
    rule_code = fields.Function(lambda t: t.rule.code)
    title = fields.String()
    starts_at = LocalDateTime()
    ends_at = LocalDateTime()
    slots = fields.Integer()
    checked_in = fields.Function(lambda t: ops.checked_in(t))


class TaskQuery(ListArgs):
    community_code = fields.String(required=True)


class TaskPage(Schema):
    items = fields.List(fields.Nested(TaskOut))
    next_cursor = fields.String(allow_none=True)


class CheckinCodeOut(Schema):
    task_id = fields.Integer()
    token = fields.String()
    url = fields.String()
    expires_at = LocalDateTime()


class CheckinIn(Schema):
    token = fields.String(required=True, validate=validate.Length(1, 1000))


class CheckinOut(Schema):
    claim = fields.Nested(ClaimOut)
    new = fields.Boolean()


@blp.route("/tasks")
class Tasks(MethodView):
    @blp.arguments(TaskQuery, location="query")
    @blp.response(200, TaskPage)
    def get(self, args):
        """Tasks of a community, newest first (anyone of the community)."""
        community = community_by_code(args["community_code"])
        require_member(current_user(), community.id)
        return paginate(select(Task).where(Task.community_id == community.id), Task.id, args["limit"],
                        args["cursor"], descending=True)

    @blp.arguments(TaskIn)
    @blp.response(201, TaskOut)
    def post(self, body):
        """Post a task (committee or grid worker): a check-in claims the rule ``rule_code``."""
        community = community_by_code(body.pop("community_code"))
        return ops.create_task(current_user(), community, **body)


@blp.route("/tasks/<int:task_id>")
class TaskOne(MethodView):
    @for_any_login
    @blp.response(200, TaskOut)
    def get(self, task_id):
        """One task and how many have checked in."""
        return ops.visible_task(current_user(), task_id)


@blp.route("/tasks/<int:task_id>/checkin-code")
class TaskCheckinCode(MethodView):
    @blp.response(200, CheckinCodeOut)
    def get(self, task_id):
        """The check-in code to show now (staff). It rotates every period (60 s by default) and stays valid
        for one more; ``url`` is what the QR code encodes."""
        user = current_user()
        return ops.checkin_code(user, ops.visible_task(user, task_id))


def _qr(task_id: int, kind: str) -> Response:
    user = current_user()
    code = ops.checkin_code(user, ops.visible_task(user, task_id))
    qr = segno.make(code["url"], error="m")
    buffer = io.BytesIO()
    if kind == "svg":
        qr.save(buffer, kind="svg", scale=8, border=4, title="签到 check-in")
        mimetype = "image/svg+xml"
    else:
        qr.save(buffer, kind="png", scale=10, border=4)
        mimetype = "image/png"
    response = Response(buffer.getvalue(), mimetype=mimetype)
    # The code rotates: never cache it.
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/tasks/<int:task_id>/qr.svg")
class TaskQrSvg(MethodView):
    @blp.doc(responses={"200": {"description": "SVG image", "content": {"image/svg+xml": {}}}})
    def get(self, task_id):
        """The current check-in code as a QR code (SVG), for the screen or a printer (staff)."""
        return _qr(task_id, "svg")


@blp.route("/tasks/<int:task_id>/qr.png")
class TaskQrPng(MethodView):
    @blp.doc(responses={"200": {"description": "PNG image", "content": {"image/png": {}}}})
    def get(self, task_id):
        """The current check-in code as a QR code (PNG) (staff)."""
        return _qr(task_id, "png")


def _checkin_rate_key() -> str:
    """Check-in attempts are limited per user (a phone guessing tokens), falling back to the address."""
    try:
        return f"user:{current_user().id}"
    except DomainError:  # not logged in: the view answers 401; limit by address meanwhile
        return f"addr:{request.remote_addr}"


@blp.route("/checkins")
class Checkins(MethodView):
    decorators = [limiter.limit(lambda: ops.checkin_rate_limit(), key_func=_checkin_rate_key, methods=["POST"])]

    @blp.arguments(CheckinIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, CheckinOut)
    @blp.alt_response(200, schema=CheckinOut, description="already checked in: the same claim")
    @blp.alt_response(410, description="token_expired")
    @blp.alt_response(422, description="token_invalid")
    @blp.alt_response(409, description="task_full, task_closed, cap_exceeded")
    @blp.alt_response(429, description="rate_limited: too many check-in attempts by this user")
    def post(self, body):
        """Check in with the scanned code, as the resident: 201 with the new claim, or 200 with the same claim
        on a repeat. The claim follows its rule's review and publicity."""
        if not body["token"].strip():
            raise ValidationFailed(errors={"token": ["Empty."]})
        claim, new = ops.check_in(current_user(), body["token"])
        return {"claim": claim, "new": new}, 201 if new else 200
