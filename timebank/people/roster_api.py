"""The roster API: household and resident lists that page through any number (keyset cursors), and
people changing (edit, move, deactivate). See :mod:`timebank.people.roster` and docs/roster.md."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.core.errors import NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, paginate
from timebank.core.openapi import for_any_login
from timebank.core.policy import can_see_community, require_sight, visible_household, visible_resident
from timebank.people import memberships, roster
from timebank.people import operations as ops
from timebank.people.api import HouseholdOut, ResidentOut
from timebank.people.models import COLORS, GuestMembership, Household, Resident

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
    """The community a list is for: the one named, or the staff member's own; its readers (and those of
    a community above it) only."""
    if code:
        community = ops.community_by_code(code)
    elif user.role != "admin" and user.community is not None:
        community = user.community
    else:
        raise ValidationFailed(errors={"community_code": ["Name the community."]})
    require_sight(user, community.id, *roster.READERS)
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



# --- guests (候鸟, 流动党员) ---------------------------------------------------------------------------

class MembershipIn(Schema):
    community_code = fields.String(required=True, validate=validate.Length(1, 64),
                                   metadata={"description": "The host community."})
    until = fields.Date(required=True, metadata={"description": "The membership's last day (local date)."})


class MembershipOut(Schema):
    id = fields.Integer()
    resident_id = fields.Integer()
    resident_name = fields.String()
    community_code = fields.String(metadata={"description": "The host community."})
    community_name = fields.String()
    home_community_code = fields.String()
    home_community_name = fields.String()
    until = fields.Date()
    active = fields.Boolean(metadata={"description": "Today is on or before `until` (it ends by itself)."})
    wallet_account = fields.String(metadata={"description": "The guest wallet in the host community (ledger)."})
    wallet_points = fields.Integer()
    created_at = LocalDateTime()


class MembershipArgs(ListArgs):
    community_code = fields.String(required=True, validate=validate.Length(1, 64))
    active = fields.Boolean(load_default=None, metadata={"description": "Only current (true) or ended (false)."})


class MembershipPage(Schema):
    items = fields.List(fields.Nested(MembershipOut))
    next_cursor = fields.String(allow_none=True)


class MembershipList(Schema):
    items = fields.List(fields.Nested(MembershipOut))


@blp.route("/residents/<int:resident_id>/memberships")
class ResidentMemberships(MethodView):
    @blp.arguments(MembershipIn)
    @blp.response(201, MembershipOut)
    @blp.alt_response(200, schema=MembershipOut, description="the person was a guest here already: `until` moved")
    @blp.alt_response(403, description="forbidden: not the committee of the host community")
    @blp.alt_response(404, description="not_found: no such resident")
    @blp.alt_response(409, description="resident_inactive: the person has left")
    @blp.alt_response(422, description="validation_error: the person's own community, or `until` in the past")
    def post(self, body, resident_id):
        """Take a person of another community in as a guest (候鸟, 流动党员) until a date (committee of
        the host community): until then they claim, check in and help here with their own login, and
        what they earn here goes to their guest wallet, which this community's supermarket charges. It
        ends by itself. Again for the same person: their membership's end is moved (200)."""
        resident = db.session.get(Resident, resident_id)
        if resident is None:
            raise NotFound("No such resident.")
        community = ops.community_by_code(body["community_code"])
        membership, new = memberships.take_in(current_user(), resident, community, body["until"])
        return memberships.describe(membership), 201 if new else 200

    @for_any_login
    @blp.response(200, MembershipList)
    @blp.alt_response(404, description="not_found: no such resident, or none of the caller's business")
    def get(self, resident_id):
        """A person's guest memberships: for the person, the staff of their community (all of them) and
        the staff of a host community (its own)."""
        user = current_user()
        resident = db.session.get(Resident, resident_id)
        if resident is None:
            raise NotFound("No such resident.")
        rows = memberships.of_resident(resident.id)
        if user.role == "resident":
            if user.resident_id != resident.id:
                raise NotFound("No such resident.")
        elif not can_see_community(user, resident.household.community_id):
            rows = [m for m in rows if can_see_community(user, m.community_id)]
            if not rows:
                raise NotFound("No such resident.")
        return {"items": [memberships.describe(m) for m in rows]}


@blp.route("/memberships")
class Memberships(MethodView):
    @blp.arguments(MembershipArgs, location="query")
    @blp.response(200, MembershipPage)
    def get(self, args):
        """A community's guest memberships, both ways: its guests, and its own people who are guests
        elsewhere (the community's roster readers, and those of a community above it)."""
        community = _community(current_user(), args["community_code"])
        page = paginate(memberships.memberships_query(community.id, args["active"]), GuestMembership.id,
                        args["limit"], args["cursor"])
        page["items"] = [memberships.describe(m) for m in page["items"]]
        return page
