"""Logins: making them (staff are people), listing, linking to a person, deactivating, one-time
passwords and choosing a new password. The rules are in :mod:`timebank.people.logins`."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.core.audit_log import record
from timebank.core.errors import DomainError, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, paginate
from timebank.core.openapi import PASSWORD_CHANGE_PATHS, for_any_login
from timebank.core.users import ROLES, User
from timebank.people import logins
from timebank.people import operations as ops
from timebank.people.models import Resident

blp = Blueprint("logins", __name__, url_prefix="/api/v1",
                description="Logins: staff are people; deactivating; one-time passwords.")

_PHONE = validate.Regexp(r"^\+?[0-9 ()-]{5,32}$")


class UserIn(Schema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@+-]{3,64}$"))
    password = fields.String(required=True, validate=validate.Length(8, 256), load_only=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    community_code = fields.String(load_default=None, allow_none=True)
    resident_id = fields.Integer(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=_PHONE,
                          metadata={"description": "the person's phone (staff roles); a resident's phone links "
                                                   "the login to that resident"})


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    role = fields.String()
    community_code = fields.Function(lambda u: u.community.code if u.community else None)
    resident_id = fields.Integer(allow_none=True)


class UserListed(UserOut):
    phone = fields.Function(lambda u: logins.mask_phone(u.phone), metadata={"description": "masked: 138****8000"})
    person_name = fields.Function(lambda u: u.resident.name if u.resident else None)
    has_person = fields.Function(lambda u: u.person_key is not None,
                                 metadata={"description": "false: it may read but approves, signs and voids "
                                                          "nothing (person_required) until linked"})
    active = fields.Boolean()
    password_change_required = fields.Boolean()
    created_at = LocalDateTime()


class UserQuery(ListArgs):
    community_code = fields.String(required=True)


class UserList(Schema):
    items = fields.List(fields.Nested(UserListed))
    next_cursor = fields.String(allow_none=True)


class UserPatch(Schema):
    phone = fields.String(load_default=None, allow_none=True, validate=_PHONE)
    resident_id = fields.Integer(load_default=None, allow_none=True)


class OneTimePassword(Schema):
    one_time_password = fields.String()
    expires_at = LocalDateTime()
    user_id = fields.Integer()
    username = fields.String()
    login_created = fields.Boolean(metadata={"description": "true when the resident had no login and got one"})


class PasswordChange(Schema):
    old_password = fields.String(required=True, validate=validate.Length(1, 256), load_only=True)
    new_password = fields.String(required=True, validate=validate.Length(1, 256), load_only=True)


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(UserQuery, location="query")
    @blp.response(200, UserList)
    def get(self, args):
        """The logins of a community (its committee and supervisors, or admin): role, person, active.
        Phones are masked."""
        user = current_user()
        community = ops.community_by_code(args["community_code"])
        logins.may_list(user, community.id)
        return paginate(logins.logins_of(community.id), User.id, args["limit"], args["cursor"])

    @blp.arguments(UserIn)
    @blp.response(201, UserOut)
    @blp.alt_response(409, description="person_has_login: this person already holds a staff login of this "
                                       "community; username_taken")
    def post(self, body):
        """Create a login. An admin makes any; a committee member makes grid worker, clerk and resident
        logins of its own community. Staff logins take the person's `phone` (or `resident_id`); without
        one the login may read but approves, signs and voids nothing (403 `person_required`) until
        linked with PATCH /api/v1/users/{id}."""
        actor = current_user()
        community_id = ops.community_by_code(body["community_code"]).id if body["community_code"] else None
        if body["role"] != "admin" and body["role"] != "resident" and community_id is None:
            raise ValidationFailed(errors={"community_code": ["Staff belong to a community."]})
        ops.may_create_user(actor, body["role"], community_id)
        if body["resident_id"] is not None:
            resident = db.session.get(Resident, body["resident_id"])
            if resident is None or (actor.role != "admin"
                                    and resident.household.community_id != actor.community_id):
                raise NotFound("No such resident.")
            if body["role"] == "resident" and community_id is None:
                community_id = resident.household.community_id
        created = ops.create_user(body["username"], body["password"], body["role"], community_id=community_id,
                                  resident_id=body["resident_id"], phone=body["phone"])
        record("user.create", user=actor, target=f"user:{created.id}", community_id=community_id,
               username=created.username, role=created.role, resident_id=created.resident_id,
               phone=created.phone, person=created.person_key is not None)
        return created


@blp.route("/users/<int:user_id>")
class UserOne(MethodView):
    @blp.arguments(UserPatch)
    @blp.response(200, UserListed)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="person_has_login: the person holds another staff login here; "
                                       "person_already_set: the login belongs to another person already")
    def patch(self, body, user_id):
        """Link a login to its person: `{phone}` (a resident's phone links to the resident) or
        `{resident_id}`. A login's person is set once."""
        actor = current_user()
        target = logins.visible_login(actor, user_id)
        before = {"phone": target.phone, "resident_id": target.resident_id}
        logins.link_person(actor, target, body["phone"], body["resident_id"])
        record("user.update", user=actor, target=f"user:{target.id}", community_id=target.community_id,
               username=target.username, before=before,
               after={"phone": target.phone, "resident_id": target.resident_id})
        return target


@blp.route("/users/<int:user_id>/deactivate")
class UserDeactivate(MethodView):
    @blp.response(200, UserListed)
    @blp.alt_response(404, description="not_found")
    def post(self, user_id):
        """Deactivate a login: its bearer tokens and page sessions stop working at once."""
        actor = current_user()
        target = logins.visible_login(actor, user_id)
        logins.deactivate(actor, target)
        record("user.deactivate", user=actor, target=f"user:{target.id}", community_id=target.community_id,
               username=target.username, role=target.role)
        return target


@blp.route("/users/<int:user_id>/reset-password")
class UserResetPassword(MethodView):
    @blp.response(200, OneTimePassword)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="login_inactive: the login is deactivated")
    def post(self, user_id):
        """A one-time password for a login (valid 24 hours, once); the login must then choose a new
        password. Only its hash is stored; the old password and the login's sessions stop working."""
        actor = current_user()
        target = logins.visible_login(actor, user_id)
        password, expires_at = logins.reset_password(actor, target)
        record("user.reset_password", user=actor, target=f"user:{target.id}", community_id=target.community_id,
               username=target.username, expires_at=expires_at)
        return {"one_time_password": password, "expires_at": expires_at, "user_id": target.id,
                "username": target.username, "login_created": False}


@blp.route("/residents/<int:resident_id>/reset-password")
class ResidentResetPassword(MethodView):
    @blp.response(200, OneTimePassword)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="login_inactive: the resident's login is deactivated; username_taken")
    @blp.alt_response(422, description="validation_error: the resident has no phone number, so no login")
    def post(self, resident_id):
        """A one-time password for a resident (committee or grid worker of the resident's community):
        valid 24 hours, once. A resident without a login gets one (username: their phone)."""
        actor = current_user()
        resident = db.session.get(Resident, resident_id)
        if resident is None or (actor.role != "admin"
                                and resident.household.community_id != actor.community_id):
            raise NotFound("No such resident.")
        login, password, expires_at, created = logins.reset_resident_password(actor, resident)
        if created:
            record("user.create", user=actor, target=f"user:{login.id}", community_id=login.community_id,
                   username=login.username, role="resident", resident_id=resident.id, via="reset_password")
        record("user.reset_password", user=actor, target=f"user:{login.id}", community_id=login.community_id,
               username=login.username, resident_id=resident.id, expires_at=expires_at)
        return {"one_time_password": password, "expires_at": expires_at, "user_id": login.id,
                "username": login.username, "login_created": created}


@blp.route("/me")
class Me(MethodView):
    @for_any_login
    @blp.response(200, UserOut)
    def get(self):
        """The logged-in user."""
        return current_user()


@blp.route("/me/password")
class MyPassword(MethodView):
    @for_any_login
    @blp.arguments(PasswordChange)
    @blp.response(204)
    @blp.alt_response(403, description="wrong_password: the old password is wrong")
    @blp.alt_response(422, description="weak_password: the new password is too short or too common")
    def post(self, body):
        """Choose a new password (required after a one-time password). Other sessions of the login
        keep working."""
        user = current_user()
        logins.change_password(user, body["old_password"], body["new_password"])
        record("user.password_change", user=user, target=f"user:{user.id}")
        return None


def refuse_until_password_changed():
    """A ``before_request`` hook: a login opened with a one-time password calls nothing under
    ``/api/`` but ``POST /api/v1/me/password`` (and ``/api/v1/auth/``) until it has chosen a new
    password: 403 ``password_change_required``."""
    if not request.path.startswith("/api/") or request.path.startswith(PASSWORD_CHANGE_PATHS):
        return None
    try:
        user = current_user()
    except DomainError:
        return None  # no login, or an invalid token: the view answers 401
    if user.password_change_required:
        raise Forbidden("Choose a new password first: POST /api/v1/me/password {old_password, new_password}.",
                        code="password_change_required")
    return None
