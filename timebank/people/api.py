"""Communities, households, residents and users."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

import ledger
from timebank.core import accounts
from timebank.core.audit_log import record
from timebank.core.errors import ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import current_user
from timebank.core.openapi import for_any_login
from timebank.core.policy import require_community, require_role, require_sight, visible_household, visible_resident
from timebank.people import operations as ops
from timebank.people.models import COLORS, Household, Resident

blp = Blueprint("people", __name__, url_prefix="/api/v1", description="Communities, households, residents, users.")


class CommunityIn(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{1,63}$"))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    parent_code = fields.String(load_default=None)
    hours_cap_minutes = fields.Integer(validate=validate.Range(0, 10_000_000))
    expiry_policy = fields.String(validate=validate.OneOf(["none", "annual", "rolling"]))
    expiry_months = fields.Integer(validate=validate.Range(1, 120), allow_none=True)


class CommunityOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    parent_code = fields.Function(lambda c: c.parent.code if c.parent else None)
    hours_cap_minutes = fields.Integer()
    expiry_policy = fields.String()
    expiry_months = fields.Integer(allow_none=True)


class HouseholdIn(Schema):
    community_code = fields.String(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    address = fields.String(load_default="", validate=validate.Length(0, 300))
    grid = fields.String(load_default=None, validate=validate.Length(0, 64), allow_none=True)
    color = fields.String(load_default="green", validate=validate.OneOf(COLORS))


class MemberOut(Schema):
    id = fields.Integer()
    name = fields.String()
    active = fields.Boolean()


class HouseholdOut(Schema):
    id = fields.Integer()
    community_code = fields.Function(lambda h: h.community.code)
    name = fields.String()
    address = fields.String()
    grid = fields.String(allow_none=True)
    color = fields.String()
    member_code = fields.String()
    balance_points = fields.Function(lambda h: ledger.balance(db.session, accounts.household_points(h.id)))
    members = fields.List(fields.Nested(MemberOut))


class ResidentIn(Schema):
    household_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 100))
    phone = fields.String(load_default=None, validate=validate.Regexp(r"^\+?[0-9]{5,20}$"), allow_none=True)
    password = fields.String(load_default=None, validate=validate.Length(8, 256), load_only=True, allow_none=True)
    birth_year = fields.Integer(load_default=None, validate=validate.Range(1900, 2100), allow_none=True)


class ResidentOut(Schema):
    id = fields.Integer()
    household_id = fields.Integer()
    name = fields.String()
    member_code = fields.String()
    birth_year = fields.Integer(allow_none=True)
    hours_balance_minutes = fields.Function(lambda r: ledger.balance(db.session, accounts.resident_minutes(r.id)))


@blp.route("/communities")
class Communities(MethodView):
    @blp.arguments(CommunityIn)
    @blp.response(201, CommunityOut)
    @blp.alt_response(409, description="conflict: the code is taken")
    def post(self, body):
        """Create a community (admin)."""
        require_role(current_user(), "admin")
        return ops.create_community(**body)


@blp.route("/communities/<code>")
class CommunityOne(MethodView):
    @blp.response(200, CommunityOut)
    def get(self, code):
        """A community (its staff, the staff of a community above it, or admin)."""
        user = current_user()
        community = ops.community_by_code(code)
        require_sight(user, community.id)
        return community


@blp.route("/households")
class Households(MethodView):
    @blp.arguments(HouseholdIn)
    @blp.response(201, HouseholdOut)
    def post(self, body):
        """Register a household (committee or grid worker of the community)."""
        community = ops.community_by_code(body.pop("community_code"))
        user = current_user()
        require_community(user, community.id, "committee", "grid_worker")
        household = ops.create_household(community, **body)
        record("household.create", user=user, target=f"household:{household.id}", community_id=community.id,
               name=household.name)
        return household


@blp.route("/households/<int:household_id>")
class HouseholdOne(MethodView):
    @for_any_login
    @blp.response(200, HouseholdOut)
    def get(self, household_id):
        """A household with its members and points balance."""
        return visible_household(current_user(), db.session.get(Household, household_id))


@blp.route("/residents")
class Residents(MethodView):
    @blp.arguments(ResidentIn)
    @blp.response(201, ResidentOut)
    def post(self, body):
        """Add a resident to an existing household (the committee of its community); with a password
        they can log in by phone. A grid worker registers a new household with its first member on the
        household page, and does not add people to existing households (403 `forbidden`): a made-up
        member with a login could spend the household's points."""
        user = current_user()
        household = db.session.get(Household, body.pop("household_id"))
        if household is None:
            raise ValidationFailed(errors={"household_id": ["No such household."]})
        require_community(user, household.community_id, "committee")
        login = bool(body.get("password"))
        resident = ops.create_resident(household, **body)
        # Who added a person (and a login that can spend the household's points) is on record.
        record("resident.create", user=user, target=f"resident:{resident.id}", community_id=household.community_id,
               household_id=household.id, name=resident.name, login=login)
        return resident


@blp.route("/residents/<int:resident_id>")
class ResidentOne(MethodView):
    @for_any_login
    @blp.response(200, ResidentOut)
    def get(self, resident_id):
        """A resident and their time-bank balance in minutes."""
        return visible_resident(current_user(), db.session.get(Resident, resident_id))
