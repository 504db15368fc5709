"""``POST /api/v1/auth/token``: exchange a username and password for a bearer token;
``POST /api/v1/auth/revoke``: end it (log out)."""

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.core.audit_log import record
from timebank.core.auth import authenticate, bearer_token, issue_token, login_limits, revoke_token
from timebank.core.errors import Unauthenticated
from timebank.core.http import current_user
from timebank.core.openapi import PUBLIC, for_any_login

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Log in for a bearer token.")


class TokenRequest(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, validate=validate.Length(1, 256), load_only=True)


class TokenResponse(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    password_change_required = fields.Boolean(
        metadata={"description": "true: the login was opened with a one-time password; every call but "
                                 "POST /api/v1/me/password answers 403 password_change_required until a new "
                                 "password is chosen"})


@blp.route("/token")
class Token(MethodView):
    decorators = login_limits()

    @blp.doc(security=PUBLIC)
    @blp.arguments(TokenRequest)
    @blp.response(200, TokenResponse)
    @blp.alt_response(401, description="invalid_credentials")
    @blp.alt_response(429, description="rate_limited: too many failed attempts from this address or at this "
                                       "account; Retry-After says when to try again")
    def post(self, body):
        """Log in. A resident's username is their phone number. A one-time password (from a reset)
        works once, for 24 hours, and the answer then carries `"password_change_required": true`."""
        user = authenticate(body["username"], body["password"])
        token, ttl = issue_token(user)
        record("auth.login", user=user, via="api", one_time=user.one_time_used_at is not None)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                "password_change_required": bool(user.password_change_required)}


@blp.route("/revoke")
class Revoke(MethodView):
    @for_any_login
    @blp.response(204)
    @blp.alt_response(401, description="unauthenticated / token_expired: the token is already not valid")
    def post(self):
        """Revoke the bearer token this request carries (log out). It stops working at once; other
        tokens of the same user are untouched."""
        token = bearer_token()
        if token is None:
            raise Unauthenticated("Send the token to revoke as Authorization: Bearer <token>.")
        user = current_user()
        revoke_token(token)
        record("auth.logout", user=user, via="api")
        return None
