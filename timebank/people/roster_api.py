"""The roster API: household and resident lists that page through any number (keyset cursors), and
people changing (edit, move, deactivate). See :mod:`timebank.people.roster` and docs/roster.md."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.core.errors import ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import LocalDateTime, current_user
from timebank.core.policy import require_community, visible_household, visible_resident
from timebank.people import operations as ops
from timebank.people import roster
from timebank.people.api import HouseholdOut, ResidentOut
from timebank.people.models import COLORS, Household, Resident

blp = Blueprint("roster", __name__, url_prefix="/api/v1",
                description="The roster: lists of households and residents; changing, moving and deactivating.")

REASON = fields.String(load_default="", validate=validate.Length(0, 500))


class RosterArgs(Schema):
    community_code = fields.String(load_default=None, validate=validate.Length(1, 64),
                                   metadata={"description": "Staff: their own community by default. Admin: required."})
    q = fields.String(load_default=None, validate=validate.Length(0, 100),
                      metadata={"description": "Part of a name, phone or address, or a whole card code."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    cursor = fields.String(load_default=None, validate=validate.Length(0, 1000))


class HouseholdListArgs(RosterArgs):
    grid = fields.String(load_default=None, validate=validate.Length(0, 64))
    color = fields.String(load_default=None, validate=validate.OneOf(COLORS))


class ResidentListArgs(RosterArgs):
    household_id = fields.Integer(load_default=None, validate=validate.Range(1, 2**31 - 1))
    active = fields.Boolean(load_default=None, metadata={"description": "Only active (true) or inactive (false)."})


class RosterMember(Schema):
    id = fields.Integer()
    name = fields.String()
    active = fields.Boolean()


class HouseholdRow(Schema):
    id = fields.Integer()
    community_code = fields.String()
    name = fields.String()
    address = fields.String()
    grid = fields.String(allow_none=True)
    color = fields.String()
    member_code = fields.String()
    balance_points = fields.Integer()
    members = fields.List(fields.Nested(RosterMember))


class HouseholdPage(Schema):
    items = fields.List(fields.Nested(HouseholdRow))
    next_cursor = fields.String(allow_none=True)


class ResidentRow(Schema):
    id = fields.Integer()
    household_id = fields.Integer()
    household_name = fields.Function(lambda r: r.household.name)
    name = fields.String()
    phone = fields.String(allow_none=True)
    birth_year = fields.Integer(allow_none=True)
    member_code = fields.String()
    active = fields.Boolean()
    left_at = LocalDateTime(allow_none=True)


class ResidentPage(Schema):
    items = fields.List(fields.Nested(ResidentRow))
    next_cursor = fields.String(allow_none=True)


class HouseholdPatch(Schema):
    name = fields.String(validate=validate.Length(1, 200))
    address = fields.String(validate=validate.Length(0, 300), allow_none=True)
    grid = fields.String(validate=validate.Length(0, 64), allow_none=True)
    color = fields.String(validate=validate.OneOf(COLORS))
    reason = REASON


class ResidentPatch(Schema):
    name = fields.String(validate=validate.Length(1, 100))
    phone = fields.String(validate=validate.Regexp(r"^\+?[0-9]{5,20}$"), allow_none=True)
    birth_year = fields.Integer(validate=validate.Range(1900, 2100), allow_none=True)
    reason = REASON


class MoveIn(Schema):
    household_id = fields.Integer(required=True, validate=validate.Range(1, 2**31 - 1))
    reason = REASON


class DeactivateIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class ResidentState(ResidentOut):
    phone = fields.String(allow_none=True)
    active = fields.Boolean()
    left_at = LocalDateTime(allow_none=True)


def _community(user, code: str | None):
    """The community a list is for: the one named, or the staff member's own; its readers only."""
    if code:
        community = ops.community_by_code(code)
    elif user.role != "admin" and user.community is not None:
        community = user.community
    else:
        raise ValidationFailed(errors={"community_code": ["Name the community."]})
    require_community(user, community.id, *roster.READERS)
    return community


@blp.route("/households")
class HouseholdList(MethodView):
    @blp.arguments(HouseholdListArgs, location="query")
    @blp.response(200, HouseholdPage)
    def get(self, args):
        """The households of a community in roster order (grid, name), filtered and searched, a page at a
        time: follow ``next_cursor`` until it is null. Staff of the community (supervisor and clerk read)."""
        community = _community(current_user(), args["community_code"])
        query = roster.household_query(community.id, args["q"], args["grid"], args["color"])
        rows, next_cursor = roster.household_page(query, args["limit"], args["cursor"])
        points = roster.balances([h.id for h in rows])
        items = [{"id": h.id, "community_code": community.code, "name": h.name, "address": h.address,
                  "grid": h.grid, "color": h.color, "member_code": h.member_code,
                  "balance_points": points.get(h.id, 0), "members": h.members} for h in rows]
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/residents")
class ResidentList(MethodView):
    @blp.arguments(ResidentListArgs, location="query")
    @blp.response(200, ResidentPage)
    def get(self, args):
        """The residents of a community, by id, with their active flag; filtered by household and searched
        (name, phone, card codes, household name or address). Follow ``next_cursor`` until it is null."""
        community = _community(current_user(), args["community_code"])
        query = roster.resident_query(community.id, args["q"], args["household_id"], args["active"])
        rows, next_cursor = roster.resident_page(query, args["limit"], args["cursor"])
        return {"items": rows, "next_cursor": next_cursor}


@blp.route("/households/<int:household_id>")
class HouseholdChange(MethodView):
    @blp.arguments(HouseholdPatch)
    @blp.response(200, HouseholdOut)
    @blp.alt_response(404, description="not_found: no such household (or not of the caller's community)")
    def patch(self, body, household_id):
        """Change a household's name, address, grid or care label (committee or grid worker of its
        community). A new care label is kept in the household's label history (who, when, from, to, why);
        every change is in the audit log with ``reason``."""
        user = current_user()
        household = visible_household(user, db.session.get(Household, household_id))
        reason = body.pop("reason", "")
        roster.change_household(user, household, body, reason)
        return household


@blp.route("/residents/<int:resident_id>")
class ResidentChange(MethodView):
    @blp.arguments(ResidentPatch)
    @blp.response(200, ResidentState)
    @blp.alt_response(404, description="not_found: no such resident (or not of the caller's community)")
    @blp.alt_response(409, description="phone_taken: another resident has this phone; username_taken: "
                                       "another login has it as its username")
    def patch(self, body, resident_id):
        """Change a resident's name, phone or birth year (committee or grid worker of the community). A
        login whose username is the old phone number takes the new one."""
        user = current_user()
        resident = visible_resident(user, db.session.get(Resident, resident_id))
        reason = body.pop("reason", "")
        roster.change_resident(user, resident, body, reason)
        return resident


@blp.route("/residents/<int:resident_id>/move")
class ResidentMove(MethodView):
    @blp.arguments(MoveIn)
    @blp.response(200, ResidentState)
    @blp.alt_response(404, description="not_found: no such resident (or not of the caller's community)")
    @blp.alt_response(409, description="other_community: the household is in another community; "
                                       "same_household: the resident lives there already; "
                                       "resident_inactive: the resident has left")
    def post(self, body, resident_id):
        """Move a resident to another household of the same community (committee or grid worker). Points
        earned stay with the old household; the person's time-bank minutes go with them."""
        user = current_user()
        resident = visible_resident(user, db.session.get(Resident, resident_id))
        target = db.session.get(Household, body["household_id"])
        return roster.move_resident(user, resident, target, body["reason"])


@blp.route("/residents/<int:resident_id>/deactivate")
class ResidentDeactivate(MethodView):
    @blp.arguments(DeactivateIn)
    @blp.response(200, ResidentState)
    @blp.alt_response(404, description="not_found: no such resident (or not of the caller's community)")
    @blp.alt_response(409, description="resident_inactive: already deactivated")
    def post(self, body, resident_id):
        """A resident who left or died (committee or grid worker): their history is kept, their logins are
        closed at once (tokens revoked, page sessions ended), and they no longer earn, check in or receive
        minutes."""
        user = current_user()
        resident = visible_resident(user, db.session.get(Resident, resident_id))
        return roster.deactivate_resident(user, resident, body["reason"])

