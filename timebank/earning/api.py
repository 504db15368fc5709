"""The points list (积分细则) and claims (申报) with review and publicity (公示)."""

from __future__ import annotations

from datetime import UTC

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, idempotent, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_member, require_sight
from timebank.earning import operations as ops
from timebank.earning.models import (
    CAP_PERIODS,
    REVIEW_MODES,
    RULE_CATEGORIES,
    SHOWN_CLAIM_STATUSES,
    Claim,
    Rule,
)
from timebank.people.operations import community_by_code

blp = Blueprint("earning", __name__, url_prefix="/api/v1",
                description="The points list (积分细则) and claims (申报) with review and publicity (公示).")


class CapSchema(Schema):
    """Per household and local calendar period: at most ``max_points`` points and/or ``max_minutes``
    time-bank minutes from this rule (at least one of the two)."""

    period = fields.String(required=True, validate=validate.OneOf(CAP_PERIODS))
    max_points = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 1_000_000))
    max_minutes = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 10_000_000))

    @validates_schema
    def _one_limit(self, data, **kwargs):
        if data.get("max_points") is None and data.get("max_minutes") is None:
            raise ValidationError("A cap limits points (max_points), minutes (max_minutes) or both.", "max_points")


class RuleIn(Schema):
    community_code = fields.String(required=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$"))
    title = fields.String(required=True, validate=validate.Length(1, 200))
    category = fields.String(required=True, validate=validate.OneOf(RULE_CATEGORIES))
    points = fields.Integer(required=True, validate=validate.Range(0, 100_000))
    minutes = fields.Integer(load_default=0, validate=validate.Range(0, 24 * 60))
    review = fields.String(required=True, validate=validate.OneOf(REVIEW_MODES))
    publicity_days = fields.Integer(load_default=0, validate=validate.Range(0, 60))
    cap = fields.Nested(CapSchema, load_default=None, allow_none=True)


class RuleChangeIn(Schema):
    title = fields.String(validate=validate.Length(1, 200))
    category = fields.String(validate=validate.OneOf(RULE_CATEGORIES))
    points = fields.Integer(validate=validate.Range(0, 100_000))
    minutes = fields.Integer(validate=validate.Range(0, 24 * 60))
    review = fields.String(validate=validate.OneOf(REVIEW_MODES))
    publicity_days = fields.Integer(validate=validate.Range(0, 60))
    cap = fields.Nested(CapSchema, allow_none=True)
    active = fields.Boolean()
    #: Default: now. Never in the past.
    effective_from = fields.AwareDateTime(load_default=None, default_timezone=UTC)


class RuleOut(Schema):
    id = fields.Integer()
    code = fields.String()
    community_code = fields.String()
    version = fields.Integer()
    version_id = fields.Integer()
    title = fields.String()
    category = fields.String()
    points = fields.Integer()
    minutes = fields.Integer()
    review = fields.String()
    publicity_days = fields.Integer()
    cap = fields.Nested(CapSchema, allow_none=True)
    active = fields.Boolean()
    effective_from = LocalDateTime()


class RuleWithVersions(RuleOut):
    versions = fields.List(fields.Nested(RuleOut))


class RuleQuery(Schema):
    community_code = fields.String(required=True)


class RuleList(Schema):
    items = fields.List(fields.Nested(RuleOut))
    next_cursor = fields.String(allow_none=True)


def rule_out(rule: Rule, version=None) -> dict:
    version = version or ops.version_at(rule) or ops.latest_version(rule)
    return {
        "id": rule.id, "code": rule.code, "community_code": rule.community.code, "version": version.number,
        "version_id": version.id, "title": version.title, "category": version.category,
        "points": version.points, "minutes": version.minutes, "review": version.review,
        "publicity_days": version.publicity_days, "active": version.active,
        "cap": version.cap,
        "effective_from": version.effective_from,
    }


@blp.route("/rules")
class Rules(MethodView):
    @blp.arguments(RuleQuery, location="query")
    @blp.response(200, RuleList)
    def get(self, args):
        """The community's points list, each rule with the terms in force now (anyone of the community)."""
        community = community_by_code(args["community_code"])
        require_member(current_user(), community.id)
        rules = db.session.execute(
            select(Rule).where(Rule.community_id == community.id).order_by(Rule.id)).scalars()
        return {"items": [rule_out(rule) for rule in rules], "next_cursor": None}

    @blp.arguments(RuleIn)
    @blp.response(201, RuleOut)
    @blp.alt_response(409, description="rule_exists: the code is taken in this community")
    @blp.alt_response(403, description="forbidden: only the community's committee writes the points list")
    def post(self, body):
        """Add an item to the points list (committee). ``cap`` is per household per local calendar period."""
        community = community_by_code(body.pop("community_code"))
        rule = ops.create_rule(current_user(), community, **body)
        return rule_out(rule)


@blp.route("/rules/<int:rule_id>")
class RuleOne(MethodView):
    @for_any_login
    @blp.response(200, RuleWithVersions)
    def get(self, rule_id):
        """A rule with the terms in force now and all its versions."""
        rule = ops.visible_rule(current_user(), rule_id)
        out = rule_out(rule)
        out["versions"] = [rule_out(rule, version) for version in rule.versions]
        return out

    @blp.arguments(RuleChangeIn)
    @blp.response(201, RuleOut)
    @blp.alt_response(422, description="validation_error: effective_from in the past")
    def put(self, body, rule_id):
        """Change a rule: the same as ``POST /rules/{id}/versions``."""
        return _change(body, rule_id)


@blp.route("/rules/<int:rule_id>/versions")
class RuleVersions(MethodView):
    @blp.arguments(RuleChangeIn)
    @blp.response(201, RuleOut)
    @blp.alt_response(422, description="validation_error: effective_from in the past")
    def post(self, body, rule_id):
        """Change a rule (committee): a new version in force from ``effective_from`` (default now).
        Claims made before keep what they were worth. Omitted fields keep their value."""
        return _change(body, rule_id)


def _change(body, rule_id):
    user = current_user()
    rule = ops.visible_rule(user, rule_id)
    effective_from = body.pop("effective_from", None)
    version = ops.change_rule(user, rule, body, effective_from)
    return rule_out(rule, version)


class ClaimIn(Schema):
    community_code = fields.String(required=True)
    rule_code = fields.String(required=True)
    resident_id = fields.Integer(required=True)
    note = fields.String(load_default="", validate=validate.Length(0, 2000))


class ReasonIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


class ClaimEventOut(Schema):
    action = fields.String()
    user_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = LocalDateTime()


class ClaimReversalOut(Schema):
    """Who took the claim back, when and why, and the compensating transaction."""

    reason = fields.String()
    user_id = fields.Integer(allow_none=True)
    created_at = LocalDateTime()
    transaction_id = fields.Integer()


class ClaimOut(Schema):
    id = fields.Integer()
    #: pending, publicized, posted, rejected, or reversed (posted, then taken back: see ``reversal``).
    status = fields.String(attribute="shown_status")
    community_code = fields.Function(lambda c: c.rule.community.code)
    rule_code = fields.Function(lambda c: c.rule.code)
    rule_version = fields.Function(lambda c: c.rule_version.number)
    title = fields.Function(lambda c: c.rule_version.title)
    category = fields.Function(lambda c: c.rule_version.category)
    resident_id = fields.Integer()
    household_id = fields.Integer()
    guest = fields.Boolean(metadata={"description": "A guest's claim: its points go to the person's guest wallet "
                                                     "in the claim's community (docs/subdistrict.md)."})
    points = fields.Integer()
    minutes = fields.Integer()
    note = fields.String()
    entered_by_user_id = fields.Integer(allow_none=True)
    entered_for_resident = fields.Boolean()
    task_id = fields.Integer(allow_none=True)
    created_at = LocalDateTime()
    reviewed_by_user_id = fields.Integer(allow_none=True)
    reviewed_at = LocalDateTime(allow_none=True)
    publicity_ends_at = LocalDateTime(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    transaction_id = fields.Integer(allow_none=True)
    posted_at = LocalDateTime(allow_none=True)
    reversal = fields.Nested(ClaimReversalOut, allow_none=True)
    events = fields.List(fields.Nested(ClaimEventOut))


class ClaimQuery(ListArgs):
    community_code = fields.String(required=True)
    status = fields.String(load_default=None, validate=validate.OneOf(SHOWN_CLAIM_STATUSES))
    household_id = fields.Integer(load_default=None)
    resident_id = fields.Integer(load_default=None)


class ClaimPage(Schema):
    items = fields.List(fields.Nested(ClaimOut))
    next_cursor = fields.String(allow_none=True)


def listed_household(user, community, household_id: int | None, staff_check=require_sight) -> int | None:
    """The household a community's list is narrowed to: a resident's own (they see no other), or for
    staff, who pass ``staff_check`` on the community, the household they asked for (None: all)."""
    if user.role == "resident":
        require_member(user, community.id)
        return user.household_id
    staff_check(user, community.id)
    return household_id


@blp.route("/claims")
class Claims(MethodView):
    @blp.arguments(ClaimQuery, location="query")
    @blp.response(200, ClaimPage)
    def get(self, args):
        """Claims of a community, newest first (staff); a resident sees their own household's."""
        user = current_user()
        community = community_by_code(args["community_code"])
        household_id = listed_household(user, community, args["household_id"])
        query = ops.claims_query(community.id, args["status"], household_id, args["resident_id"])
        query = query.options(selectinload(Claim.reversal))  # each claim's shown status, in one query
        return paginate(query, Claim.id, args["limit"], args["cursor"], descending=True)

    @blp.arguments(ClaimIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, ClaimOut)
    @blp.alt_response(409, description="cap_exceeded, or rule_inactive")
    @blp.alt_response(403, description="forbidden: a resident claims only for themselves")
    def post(self, body):
        """Claim an item: a resident for themselves, or a committee member or grid worker for any resident
        of the community (代录, recorded as entered by them). ``review: auto`` rules are approved at once."""
        community = community_by_code(body.pop("community_code"))
        return ops.create_claim(current_user(), community, **body)


@blp.route("/claims/<int:claim_id>")
class ClaimOne(MethodView):
    @for_any_login
    @blp.response(200, ClaimOut)
    def get(self, claim_id):
        """One claim with its history."""
        return ops.visible_claim(current_user(), claim_id)


@blp.route("/claims/<int:claim_id>/approve")
class ClaimApprove(MethodView):
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, ClaimOut)
    @blp.alt_response(403, description="self_approval: the claim is of the reviewer's own household, "
                                       "or the reviewer entered it (代录)")
    @blp.alt_response(409, description="cap_exceeded, or claim_not_pending")
    def post(self, claim_id):
        """Approve a pending claim (committee or grid worker): published for the rule's publicity days, or
        posted at once when there are none."""
        return ops.approve_visible_claim(current_user(), claim_id)


@blp.route("/claims/<int:claim_id>/reject")
class ClaimReject(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, ClaimOut)
    @blp.alt_response(409, description="claim_not_pending")
    def post(self, body, claim_id):
        """Reject a pending claim with a reason (committee or grid worker)."""
        user = current_user()
        return ops.reject_claim(user, ops.visible_claim(user, claim_id), body["reason"])


@blp.route("/claims/<int:claim_id>/object")
class ClaimObject(MethodView):
    @blp.arguments(ReasonIn)
    @blp.response(200, ClaimOut)
    @blp.alt_response(409, description="claim_not_publicized: the claim is not on the notice board")
    def post(self, body, claim_id):
        """Object to a claim during its publicity (anyone of the community): it goes back to pending."""
        claim = ops.object_claim(current_user(), claim_id, body["reason"])
        return claim


class ReversalOut(Schema):
    status = fields.Constant("reversed")
    claim_id = fields.Integer()
    reversal_transaction_id = fields.Integer(attribute="transaction_id")
    reason = fields.String()
    reversed_by_user_id = fields.Integer(attribute="user_id", allow_none=True)
    reversed_at = LocalDateTime(attribute="created_at")


@blp.route("/claims/<int:claim_id>/reverse")
class ClaimReverse(MethodView):
    @blp.arguments(ReasonIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, ReversalOut)
    @blp.alt_response(403, description="self_approval: the claim is of the committee member's own household; "
                                       "forbidden: only the community's committee takes claims back")
    @blp.alt_response(409, description="already_reversed; claim_not_posted: the claim was not posted; "
                                       "insufficient_points: the household no longer holds the points; "
                                       "insufficient_hours: the resident no longer holds the minutes")
    def post(self, body, claim_id):
        """Take back a posted claim (撤销; committee of the claim's community, not of its household), with a
        reason: a compensating ledger transaction (kind ``claim_reversal``) negates the claim's postings.
        The claim then shows ``status: reversed`` and its ``reversal``."""
        user = current_user()
        return ops.reverse_claim(user, ops.visible_claim(user, claim_id), body["reason"])
