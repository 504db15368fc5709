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
from timebank.earning import teams
from timebank.earning.api import ClaimOut
from timebank.earning.models import POINTS_PER, TEAM_KINDS, Task
from timebank.people.operations import community_by_code

blp = Blueprint("tasks", __name__, url_prefix="/api/v1", description="Tasks with QR check-in (扫码签到).")


class TaskIn(Schema):
    community_code = fields.String(required=True)
    rule_code = fields.String(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    starts_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    ends_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    slots = fields.Integer(required=True, validate=validate.Range(1, 10_000))
    #: Points for a team: each member earns the rule (``member``), or the team earns it once (``team``).
    points_per = fields.String(load_default="member", validate=validate.OneOf(POINTS_PER))


class TaskOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda t: t.rule.community.code)
    rule_code = fields.Function(lambda t: t.rule.code)
    title = fields.String()
    starts_at = LocalDateTime()
    ends_at = LocalDateTime()
    slots = fields.Integer()
    points_per = fields.String()
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


# --- teams (组队) -----------------------------------------------------------------------------------

class TeamIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(TEAM_KINDS))
    name = fields.String(validate=validate.Length(1, 100))
    #: Staff name the leader; a resident leads the team they form (leave it out).
    leader_resident_id = fields.Integer(load_default=None)
    #: A household team: which of the household (default: every member who is free). Staff may name a
    #: group team's members; residents join a group team themselves.
    member_ids = fields.List(fields.Integer(), validate=validate.Length(max=200), load_default=None)


class TeamMemberOut(Schema):
    resident_id = fields.Integer()
    name = fields.String()
    household_id = fields.Integer()
    leader = fields.Boolean()
    checked_in = fields.Boolean()
    claim_id = fields.Integer(allow_none=True)
    #: Checked in by this team's leader (false: the member scanned alone before).
    by_team = fields.Boolean()


class TeamOut(Schema):
    id = fields.Integer()
    task_id = fields.Integer()
    kind = fields.String()
    name = fields.String()
    household_id = fields.Integer(allow_none=True)
    size = fields.Integer()
    checked_in = fields.Integer()
    checked_in_at = LocalDateTime(allow_none=True)
    #: On a task whose points go per team: the team's one claim.
    claim_id = fields.Integer(allow_none=True)
    #: Shown to staff and to the team's own members (null to other residents), as ``members``.
    leader_resident_id = fields.Integer(allow_none=True)
    members = fields.List(fields.Nested(TeamMemberOut), allow_none=True)


class TeamList(Schema):
    items = fields.List(fields.Nested(TeamOut))


class TeamMemberIn(Schema):
    #: Whom to put in or take out: yourself when left out.
    resident_id = fields.Integer(load_default=None)


class TeamLeaveOut(Schema):
    team = fields.Nested(TeamOut, allow_none=True)
    #: The leader left last: the team is no more.
    ended = fields.Boolean()


class TeamCheckinOut(Schema):
    team = fields.Nested(TeamOut)
    #: Residents checked in by this request (empty on a repeat).
    checked_in = fields.List(fields.Integer())
    claims = fields.List(fields.Nested(ClaimOut))
    new = fields.Boolean()


@blp.route("/tasks/<int:task_id>/teams")
class TaskTeams(MethodView):
    @blp.response(200, TeamList)
    def get(self, task_id):
        """The teams of a task (anyone of the community). Members' names are shown to staff and to each
        team's own members."""
        user = current_user()
        task = ops.visible_task(user, task_id)
        return {"items": [teams.team_view(user, team) for team in teams.teams_of(task)]}

    @blp.arguments(TeamIn)
    @blp.response(201, TeamOut)
    @blp.alt_response(409, description="team_exists, already_in_team, already_checked_in, other_household, "
                                       "resident_inactive, task_closed")
    def post(self, body, task_id):
        """Form a team: a household (``kind: household``, 以户为单位) or a group. A resident leads the team
        they form; committee and grid workers form one for a resident (``leader_resident_id``)."""
        user = current_user()
        task = ops.visible_task(user, task_id)
        team = teams.create_team(user, task, body["kind"], body.get("name"), body["leader_resident_id"],
                                 body["member_ids"])
        return teams.team_view(user, team)


@blp.route("/teams/<int:team_id>/join")
class TeamJoin(MethodView):
    @blp.arguments(TeamMemberIn)
    @blp.response(200, TeamOut)
    @blp.alt_response(409, description="already_in_team, already_checked_in, other_household, resident_inactive, "
                                       "task_closed")
    def post(self, body, team_id):
        """Join a team (yourself); a household team's leader adds kin; staff add anyone of the community."""
        user = current_user()
        team = teams.join_team(user, teams.visible_team(user, team_id), body["resident_id"])
        return teams.team_view(user, team)


@blp.route("/teams/<int:team_id>/leave")
class TeamLeave(MethodView):
    @blp.arguments(TeamMemberIn)
    @blp.response(200, TeamLeaveOut)
    @blp.alt_response(409, description="not_in_team, already_checked_in, team_has_members")
    def post(self, body, team_id):
        """Leave a team (yourself), or take a member out (the leader, staff). The leader leaves last, which
        ends the team. Nobody leaves once checked in."""
        user = current_user()
        team = teams.leave_team(user, teams.visible_team(user, team_id), body["resident_id"])
        return {"team": teams.team_view(user, team) if team is not None else None, "ended": team is None}


@blp.route("/teams/<int:team_id>/checkin")
class TeamCheckin(MethodView):
    decorators = [limiter.limit(lambda: ops.checkin_rate_limit(), key_func=_checkin_rate_key, methods=["POST"])]

    @blp.arguments(CheckinIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, TeamCheckinOut)
    @blp.alt_response(200, schema=TeamCheckinOut, description="every member had checked in already: nothing new")
    @blp.alt_response(410, description="token_expired")
    @blp.alt_response(422, description="token_invalid")
    @blp.alt_response(409, description="task_full, team_does_not_fit, task_closed, cap_exceeded, resident_inactive")
    @blp.alt_response(429, description="rate_limited: too many check-in attempts by this user")
    def post(self, body, team_id):
        """The team's leader checks the team in with the scanned code: each member not yet checked in is
        checked in once (201 with the new claims), or nothing is (200 on a repeat). Each member takes a place;
        a team that does not fit is refused whole (409 ``team_does_not_fit``)."""
        if not body["token"].strip():
            raise ValidationFailed(errors={"token": ["Empty."]})
        user = current_user()
        team = teams.visible_team(user, team_id)
        claims, newcomers = teams.check_in_team(user, team, body["token"])
        return ({"team": teams.team_view(user, team), "checked_in": newcomers, "claims": claims,
                 "new": bool(newcomers)}, 201 if newcomers else 200)
