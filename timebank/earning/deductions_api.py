"""Deductions (扣分项): items with negative points, deductions after review and publicity (公示), and
the committee's choice to publish the black list (红黑榜)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, idempotent, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_community, require_member
from timebank.earning import deductions as ops
from timebank.earning.api import ReasonIn, listed_household
from timebank.earning.honours_api import CODE
from timebank.earning.models import DEDUCTION_STATUSES, Deduction, DeductionItem
from timebank.people.operations import community_by_code

blp = Blueprint("deductions", __name__, url_prefix="/api/v1",
                description="Deductions (扣分项) after review and publicity (公示), never below zero; the ranking "
                            "settings (红黑榜).")


class DeductionItemIn(Schema):
    community_code = fields.String(required=True)
    code = fields.String(required=True, validate=CODE)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    points = fields.Integer(required=True, validate=validate.Range(-100_000, -1),
                            metadata={"description": "negative: -5 takes five points"})
    publicity_days = fields.Integer(load_default=3, validate=validate.Range(0, 60))


class DeductionItemChangeIn(Schema):
    title = fields.String(validate=validate.Length(1, 200))
    points = fields.Integer(validate=validate.Range(-100_000, -1))
    publicity_days = fields.Integer(validate=validate.Range(0, 60))
    active = fields.Boolean()


class DeductionItemOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda i: i.community.code)
    code = fields.String()
    title = fields.String()
    points = fields.Integer()
    publicity_days = fields.Integer()
    active = fields.Boolean()


class CommunityQuery(Schema):
    community_code = fields.String(required=True)


class DeductionItemList(Schema):
    items = fields.List(fields.Nested(DeductionItemOut))
    next_cursor = fields.String(allow_none=True)


@blp.route("/deduction-items")
class DeductionItems(MethodView):
    @blp.arguments(CommunityQuery, location="query")
    @blp.response(200, DeductionItemList)
    def get(self, args):
        """The community's deduction items (anyone of the community)."""
        community = community_by_code(args["community_code"])
        require_member(current_user(), community.id)
        rows = db.session.execute(
            select(DeductionItem).where(DeductionItem.community_id == community.id).order_by(DeductionItem.id))
        return {"items": list(rows.scalars()), "next_cursor": None}

    @blp.arguments(DeductionItemIn)
    @blp.response(201, DeductionItemOut)
    @blp.alt_response(409, description="deduction_item_exists: the code is taken in this community")
    def post(self, body):
        """Add a deduction item (扣分项) with negative points (committee)."""
        community = community_by_code(body.pop("community_code"))
        return ops.create_item(current_user(), community, **body)


@blp.route("/deduction-items/<int:deduction_item_id>")
class DeductionItemOne(MethodView):
    @for_any_login
    @blp.response(200, DeductionItemOut)
    def get(self, deduction_item_id):
        """One deduction item."""
        return ops.visible_item(current_user(), deduction_item_id)

    @blp.arguments(DeductionItemChangeIn)
    @blp.response(200, DeductionItemOut)
    def patch(self, body, deduction_item_id):
        """Change a deduction item from now on (committee); deductions already entered keep their points."""
        user = current_user()
        return ops.change_item(user, ops.visible_item(user, deduction_item_id), body)


class DeductionIn(Schema):
    community_code = fields.String(required=True)
    item_code = fields.String(required=True, validate=validate.Length(1, 64))
    household_id = fields.Integer(required=True)
    resident_id = fields.Integer(load_default=None, allow_none=True)
    note = fields.String(load_default="", validate=validate.Length(0, 2000))


class DeductionEventOut(Schema):
    action = fields.String()
    user_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = LocalDateTime()


class DeductionOut(Schema):
    id = fields.Integer()
    #: pending, publicized, applied, rejected.
    status = fields.String()
    community_code = fields.Function(lambda d: d.item.community.code)
    item_code = fields.Function(lambda d: d.item.code)
    title = fields.Function(lambda d: d.item.title)
    household_id = fields.Integer()
    resident_id = fields.Integer(allow_none=True)
    points = fields.Integer(metadata={"description": "negative"})
    note = fields.String()
    entered_by_user_id = fields.Integer(allow_none=True)
    created_at = LocalDateTime()
    reviewed_by_user_id = fields.Integer(allow_none=True)
    reviewed_at = LocalDateTime(allow_none=True)
    publicity_ends_at = LocalDateTime(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    applied_at = LocalDateTime(allow_none=True)
    wallet_points = fields.Integer(metadata={"description": "what the wallet lost (at most its balance)"})
    ranking_points = fields.Integer(metadata={"description": "the rest: counted against the ranking score only"})
    transaction_id = fields.Integer(allow_none=True)
    events = fields.List(fields.Nested(DeductionEventOut))


class DeductionQuery(ListArgs):
    community_code = fields.String(required=True)
    status = fields.String(load_default=None, validate=validate.OneOf(DEDUCTION_STATUSES))
    household_id = fields.Integer(load_default=None)


class DeductionPage(Schema):
    items = fields.List(fields.Nested(DeductionOut))
    next_cursor = fields.String(allow_none=True)


@blp.route("/deductions")
class Deductions(MethodView):
    @blp.arguments(DeductionQuery, location="query")
    @blp.response(200, DeductionPage)
    def get(self, args):
        """Deductions of a community, newest first (staff); a resident sees their own household's."""
        user = current_user()
        community = community_by_code(args["community_code"])
        household_id = listed_household(user, community, args["household_id"], staff_check=require_community)
        query = ops.deductions_query(community.id, args["status"], household_id)
        return paginate(query, Deduction.id, args["limit"], args["cursor"], descending=True)

    @blp.arguments(DeductionIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, DeductionOut)
    @blp.alt_response(409, description="deduction_item_inactive")
    def post(self, body):
        """Enter a deduction against a household (committee or grid worker): ``pending`` until the
        committee reviews it."""
        community = community_by_code(body.pop("community_code"))
        return ops.create_deduction(current_user(), community, **body)


@blp.route("/deductions/<int:deduction_id>")
class DeductionOne(MethodView):
    @for_any_login
    @blp.response(200, DeductionOut)
    def get(self, deduction_id):
        """One deduction with its history."""
        return ops.visible_deduction(current_user(), deduction_id)


@blp.route("/deductions/<int:deduction_id>/approve")
class DeductionApprove(MethodView):
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, DeductionOut)
    @blp.alt_response(403, description="self_approval: the approver's own household, or a deduction they entered")
    @blp.alt_response(409, description="deduction_not_pending")
    def post(self, deduction_id):
        """Approve a deduction (committee): on the notice board for the item's publicity days, then
        applied by the ``close_deduction_publicity`` job (at once when there are none). Applied, it takes
        what the wallet holds, never more; the rest counts against the ranking score only."""
        user = current_user()
        return ops.approve_deduction(user, ops.visible_deduction(user, deduction_id))


@blp.route("/deductions/<int:deduction_id>/reject")
class DeductionReject(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, DeductionOut)
    @blp.alt_response(403, description="self_approval: the committee member's own household")
    @blp.alt_response(409, description="deduction_not_pending")
    def post(self, body, deduction_id):
        """Reject a deduction with a reason (committee)."""
        user = current_user()
        return ops.reject_deduction(user, ops.visible_deduction(user, deduction_id), body["reason"])


@blp.route("/deductions/<int:deduction_id>/object")
class DeductionObject(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, DeductionOut)
    @blp.alt_response(409, description="deduction_not_publicized: the deduction is not on the notice board")
    def post(self, body, deduction_id):
        """Object to a deduction during its publicity (anyone of the community): back to pending."""
        return ops.object_deduction(current_user(), deduction_id, body["reason"])


class RankingSettingsIn(Schema):
    publish_black_list = fields.Boolean(required=True)


class RankingSettingsOut(Schema):
    community_code = fields.String()
    publish_black_list = fields.Boolean()


@blp.route("/ranking-settings/<community_code>")
class RankingSettingsOne(MethodView):
    @blp.response(200, RankingSettingsOut)
    def get(self, community_code):
        """Whether the public board shows the black list (红黑榜), for anyone of the community."""
        community = community_by_code(community_code)
        require_member(current_user(), community.id)
        return {"community_code": community.code, "publish_black_list": ops.publishes_black_list(community.id)}

    @blp.arguments(RankingSettingsIn)
    @blp.response(200, RankingSettingsOut)
    def put(self, body, community_code):
        """The committee chooses whether the public board shows the black list (not shown by default)."""
        community = community_by_code(community_code)
        settings = ops.set_black_list(current_user(), community, body["publish_black_list"])
        return {"community_code": community.code, "publish_black_list": settings.publish_black_list}
