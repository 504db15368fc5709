"""The time bank (时间银行): help requests between neighbours and gifts of minutes."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from timebank.core.errors import Forbidden
from timebank.core.http import ListArgs, LocalDateTime, current_user, idempotent, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_sight
from timebank.hours import operations as ops
from timebank.hours.models import HELP_STATUSES, HelpRequest
from timebank.people.models import Resident
from timebank.people.operations import community_by_code

blp = Blueprint("hours", __name__, url_prefix="/api/v1",
                description="The time bank (时间银行): neighbour help paid in minutes, gifts of minutes.")

MINUTES = validate.Range(1, 100_000)


class HelpIn(Schema):
    resident_id = fields.Integer(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    minutes = fields.Integer(required=True, validate=MINUTES)


class AcceptIn(Schema):
    volunteer_id = fields.Integer(required=True)


class HelpOut(Schema):
    id = fields.Integer()
    status = fields.String()
    community_id = fields.Integer()
    requester_id = fields.Integer()
    resident_id = fields.Function(lambda h: h.requester_id)
    title = fields.String()
    minutes = fields.Integer()
    volunteer_id = fields.Integer(allow_none=True)
    paid_by = fields.String(allow_none=True)
    transaction_id = fields.Integer(allow_none=True)
    created_at = LocalDateTime()
    accepted_at = LocalDateTime(allow_none=True)
    completed_at = LocalDateTime(allow_none=True)
    completed_by_user_id = fields.Integer(allow_none=True)


class HelpQuery(ListArgs):
    community_code = fields.String(required=True)
    status = fields.String(load_default=None, validate=validate.OneOf(HELP_STATUSES))


class HelpPage(Schema):
    items = fields.List(fields.Nested(HelpOut))
    next_cursor = fields.String(allow_none=True)


class TransferIn(Schema):
    from_resident_id = fields.Integer(required=True)
    to_resident_id = fields.Integer(load_default=None, allow_none=True)
    to_pool = fields.Boolean(load_default=False)
    minutes = fields.Integer(required=True, validate=MINUTES)


class TransferOut(Schema):
    transaction_id = fields.Integer()
    from_resident_id = fields.Integer()
    to_resident_id = fields.Integer(allow_none=True)
    to_pool = fields.Boolean()
    minutes = fields.Integer()
    #: The part that went to the pool (gift to the pool, or the excess over the stored-hours cap).
    to_pool_minutes = fields.Integer()


class PoolIn(Schema):
    community_code = fields.String(required=True)
    minutes = fields.Integer(required=True, validate=MINUTES)
    note = fields.String(load_default="", validate=validate.Length(0, 500))


class PoolOut(Schema):
    community_code = fields.String()
    minutes = fields.Integer()
    note = fields.String()
    transaction_id = fields.Integer()
    #: The pool's balance after this funding.
    balance = fields.Integer()


@blp.route("/help-requests")
class HelpRequests(MethodView):
    @blp.arguments(HelpQuery, location="query")
    @blp.response(200, HelpPage)
    def get(self, args):
        """Help requests of a community, newest first: staff (and those of a community above it) see all; a
        resident sees open ones (to volunteer: of their own community, of a community of their own
        sub-district, or where they are a guest) and their own household's."""
        user = current_user()
        community = community_by_code(args["community_code"])
        query = select(HelpRequest).where(HelpRequest.community_id == community.id)
        if user.role == "resident":
            if user.resident is None or not ops.may_help_in(user.resident, community.id):
                raise Forbidden("This belongs to another community.")
            own = select(Resident.id).where(Resident.household_id == user.household_id)
            query = query.where((HelpRequest.status == "open") | HelpRequest.requester_id.in_(own)
                                | HelpRequest.volunteer_id.in_(own))
        else:
            require_sight(user, community.id)
        if args["status"]:
            query = query.where(HelpRequest.status == args["status"])
        return paginate(query, HelpRequest.id, args["limit"], args["cursor"], descending=True)

    @blp.arguments(HelpIn)
    @blp.response(201, HelpOut)
    def post(self, body):
        """Ask for help (the resident, for their household; or a committee member or grid worker for them)."""
        return ops.create_help_request(current_user(), **body)


@blp.route("/help-requests/<int:help_request_id>")
class HelpRequestOne(MethodView):
    @for_any_login
    @blp.response(200, HelpOut)
    def get(self, help_request_id):
        """One help request."""
        return ops.visible_help_request(current_user(), help_request_id)


@blp.route("/help-requests/<int:help_request_id>/accept")
class HelpRequestAccept(MethodView):
    @blp.arguments(AcceptIn)
    @blp.response(200, HelpOut)
    @blp.alt_response(403, description="self_dealing: the volunteer is of the requester's household; "
                                       "forbidden: a resident volunteers only themselves")
    @blp.alt_response(409, description="help_request_not_open")
    def post(self, body, help_request_id):
        """A volunteer takes the request (the volunteer's household, or staff for them)."""
        user = current_user()
        help_request = ops.visible_help_request(user, help_request_id)
        return ops.accept_help_request(user, help_request, body["volunteer_id"])


@blp.route("/help-requests/<int:help_request_id>/complete")
class HelpRequestComplete(MethodView):
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, HelpOut)
    @blp.alt_response(403, description="forbidden: not the requester (nor staff for them), or the requester "
                                       "confirming help that the community pool pays")
    @blp.alt_response(409, description="insufficient_hours (the requester's, or the pool's), "
                                       "or help_request_not_accepted")
    def post(self, help_request_id):
        """Confirm the help was given (the requester, or a grid worker or committee member on their behalf):
        the minutes move from the requester to the volunteer. A red household's help is paid by the
        community pool, and only a grid worker or the committee confirms it."""
        user = current_user()
        help_request = ops.visible_help_request(user, help_request_id)
        return ops.complete_help_request(user, help_request)


@blp.route("/hours/transfers")
class HourTransfers(MethodView):
    @blp.arguments(TransferIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, TransferOut)
    @blp.alt_response(403, description="forbidden: a resident gives only their own minutes")
    @blp.alt_response(409, description="insufficient_hours")
    @blp.alt_response(422, description="validation_error: the receiver is not kin in the same household")
    def post(self, body):
        """Give minutes to kin in the same household (``to_resident_id``) or to the community pool
        (``to_pool: true``). Only the giver themselves, or staff for them (audited)."""
        return ops.transfer(current_user(), **body)


@blp.route("/hours/pool")
class HourPool(MethodView):
    @blp.arguments(PoolIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, PoolOut)
    @blp.alt_response(403, description="forbidden: only the committee of the community funds its pool")
    def post(self, body):
        """Put minutes into the community pool (committee): the pool pays for red households' help and
        holds only what was put into it; it never goes below zero."""
        community = community_by_code(body["community_code"])
        return ops.fund_pool(current_user(), community, body["minutes"], body["note"])
