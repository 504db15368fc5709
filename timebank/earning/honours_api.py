"""Honours (荣誉: 文明家庭, 最美家庭, 美丽庭院): the honour list, awards with publicity (公示), the
half-yearly review (半年一审核) and withdrawal."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, idempotent, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_community, require_member
from timebank.earning import honours as ops
from timebank.earning.api import ReasonIn, listed_household
from timebank.earning.models import HONOUR_AWARD_STATUSES, Honour, HonourAward
from timebank.people.operations import community_by_code

blp = Blueprint("honours", __name__, url_prefix="/api/v1",
                description="Honours (文明家庭, 最美家庭, 美丽庭院): awards after publicity (公示), held for a term, "
                            "reviewed every half year (半年一审核), withdrawn by a decision with a reason.")

CODE = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class HonourIn(Schema):
    community_code = fields.String(required=True)
    code = fields.String(required=True, validate=CODE)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    points = fields.Integer(load_default=0, validate=validate.Range(0, 100_000))
    publicity_days = fields.Integer(load_default=7, validate=validate.Range(0, 60))
    term_months = fields.Integer(load_default=12, validate=validate.Range(1, 120))
    review_months = fields.Integer(load_default=6, validate=validate.Range(1, 60))


class HonourChangeIn(Schema):
    title = fields.String(validate=validate.Length(1, 200))
    points = fields.Integer(validate=validate.Range(0, 100_000))
    publicity_days = fields.Integer(validate=validate.Range(0, 60))
    term_months = fields.Integer(validate=validate.Range(1, 120))
    review_months = fields.Integer(validate=validate.Range(1, 60))
    active = fields.Boolean()


class HonourOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda h: h.community.code)
    code = fields.String()
    title = fields.String()
    points = fields.Integer()
    publicity_days = fields.Integer()
    term_months = fields.Integer()
    review_months = fields.Integer()
    active = fields.Boolean()


class HonourQuery(Schema):
    community_code = fields.String(required=True)


class HonourList(Schema):
    items = fields.List(fields.Nested(HonourOut))
    next_cursor = fields.String(allow_none=True)


@blp.route("/honours")
class Honours(MethodView):
    @blp.arguments(HonourQuery, location="query")
    @blp.response(200, HonourList)
    def get(self, args):
        """The community's honour list (anyone of the community)."""
        community = community_by_code(args["community_code"])
        require_member(current_user(), community.id)
        rows = db.session.execute(select(Honour).where(Honour.community_id == community.id).order_by(Honour.id))
        return {"items": list(rows.scalars()), "next_cursor": None}

    @blp.arguments(HonourIn)
    @blp.response(201, HonourOut)
    @blp.alt_response(409, description="honour_exists: the code is taken in this community")
    def post(self, body):
        """Add an honour to the list (committee): points credited once when awarded, the term it is
        held for, and how often it is reviewed (6 months: 半年一审核)."""
        community = community_by_code(body.pop("community_code"))
        return ops.create_honour(current_user(), community, **body)


@blp.route("/honours/<int:honour_id>")
class HonourOne(MethodView):
    @for_any_login
    @blp.response(200, HonourOut)
    def get(self, honour_id):
        """One honour of the list."""
        return ops.visible_honour(current_user(), honour_id)

    @blp.arguments(HonourChangeIn)
    @blp.response(200, HonourOut)
    def patch(self, body, honour_id):
        """Change an honour from now on (committee); awards already made keep their terms. ``active:
        false`` stops new nominations."""
        user = current_user()
        return ops.change_honour(user, ops.visible_honour(user, honour_id), body)


class AwardIn(Schema):
    community_code = fields.String(required=True)
    honour_code = fields.String(required=True, validate=validate.Length(1, 64))
    household_id = fields.Integer(required=True)
    note = fields.String(load_default="", validate=validate.Length(0, 2000))


class HonourEventOut(Schema):
    action = fields.String()
    user_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = LocalDateTime()


class AwardOut(Schema):
    id = fields.Integer()
    #: pending, publicized, held, under_review, withdrawn, rejected, ended.
    status = fields.String()
    community_code = fields.Function(lambda a: a.honour.community.code)
    honour_code = fields.Function(lambda a: a.honour.code)
    title = fields.Function(lambda a: a.honour.title)
    household_id = fields.Integer()
    household_name = fields.Function(lambda a: a.household.name)
    points = fields.Integer()
    term_months = fields.Integer()
    review_months = fields.Integer()
    note = fields.String()
    proposed_by_user_id = fields.Integer(allow_none=True)
    created_at = LocalDateTime()
    approved_by_user_id = fields.Integer(allow_none=True)
    approved_at = LocalDateTime(allow_none=True)
    publicity_ends_at = LocalDateTime(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    held_from = LocalDateTime(allow_none=True)
    held_until = LocalDateTime(allow_none=True)
    next_review_at = LocalDateTime(allow_none=True)
    withdrawal_reason = fields.String(allow_none=True)
    withdrawn_by_user_id = fields.Integer(allow_none=True)
    withdrawn_at = LocalDateTime(allow_none=True)
    transaction_id = fields.Integer(allow_none=True)
    events = fields.List(fields.Nested(HonourEventOut))


class AwardQuery(ListArgs):
    community_code = fields.String(required=True)
    status = fields.String(load_default=None, validate=validate.OneOf(HONOUR_AWARD_STATUSES))
    household_id = fields.Integer(load_default=None)


class AwardPage(Schema):
    items = fields.List(fields.Nested(AwardOut))
    next_cursor = fields.String(allow_none=True)


@blp.route("/honour-awards")
class Awards(MethodView):
    @blp.arguments(AwardQuery, location="query")
    @blp.response(200, AwardPage)
    def get(self, args):
        """Awards of a community, newest first (staff); a resident sees their own household's."""
        user = current_user()
        community = community_by_code(args["community_code"])
        household_id = listed_household(user, community, args["household_id"], staff_check=require_community)
        query = ops.awards_query(community.id, args["status"], household_id)
        return paginate(query, HonourAward.id, args["limit"], args["cursor"], descending=True)

    @blp.arguments(AwardIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, AwardOut)
    @blp.alt_response(409, description="honour_already_held: the household holds the honour or is nominated "
                                       "for it; honour_inactive")
    def post(self, body):
        """Nominate a household for an honour (评优评先; committee or grid worker): ``pending`` until the
        committee approves it."""
        community = community_by_code(body.pop("community_code"))
        return ops.nominate(current_user(), community, **body)


@blp.route("/honour-awards/<int:award_id>")
class AwardOne(MethodView):
    @for_any_login
    @blp.response(200, AwardOut)
    def get(self, award_id):
        """One award with its history."""
        return ops.visible_award(current_user(), award_id)


@blp.route("/honour-awards/<int:award_id>/approve")
class AwardApprove(MethodView):
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, AwardOut)
    @blp.alt_response(403, description="self_approval: the household is the approver's own, or the approver "
                                       "nominated it; forbidden: only the committee awards honours")
    @blp.alt_response(409, description="award_not_pending")
    def post(self, award_id):
        """Approve a nomination (committee): on the notice board for the honour's publicity days, then
        awarded by the ``close_honour_publicity`` job (at once when there are none). The honour's points
        are credited once, when it is awarded."""
        user = current_user()
        return ops.approve_award(user, ops.visible_award(user, award_id))


@blp.route("/honour-awards/<int:award_id>/reject")
class AwardReject(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, AwardOut)
    @blp.alt_response(409, description="award_not_pending")
    def post(self, body, award_id):
        """Reject a nomination with a reason (committee)."""
        user = current_user()
        return ops.reject_award(user, ops.visible_award(user, award_id), body["reason"])


@blp.route("/honour-awards/<int:award_id>/object")
class AwardObject(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, AwardOut)
    @blp.alt_response(409, description="award_not_publicized: the award is not on the notice board")
    def post(self, body, award_id):
        """Object to an award during its publicity (anyone of the community): back to pending."""
        return ops.object_award(current_user(), award_id, body["reason"])


@blp.route("/honour-awards/<int:award_id>/keep")
class AwardKeep(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, AwardOut)
    @blp.alt_response(403, description="self_approval: the committee member's own household")
    @blp.alt_response(409, description="award_not_under_review")
    def post(self, body, award_id):
        """Keep an award under review (committee), with the reason: held again, next review
        ``review_months`` from now."""
        user = current_user()
        return ops.keep_award(user, ops.visible_award(user, award_id), body["reason"])


@blp.route("/honour-awards/<int:award_id>/withdraw")
class AwardWithdraw(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, AwardOut)
    @blp.alt_response(403, description="self_approval: the committee member's own household")
    @blp.alt_response(409, description="award_not_held: only a held award (or one under review) is withdrawn")
    def post(self, body, award_id):
        """Withdraw (撤销) a held award or one under review (committee), with the reason. The points it
        brought stay with the household."""
        user = current_user()
        return ops.withdraw_award(user, ops.visible_award(user, award_id), body["reason"])
