"""Passwords (argon2id) and bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import bindparam, select

from timebank.clock import utc_naive
from timebank.errors import InvalidCredentials, Unauthenticated
from timebank.extensions import db
from timebank.models import ApiToken, User

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
# Tests and the demo make many logins; they may opt into the cheapest parameters.
_cheap_hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
# Verified against when the username is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("not a real password")


def _current_hasher() -> PasswordHasher:
    return _cheap_hasher if current_app.config.get("TIMEBANK_CHEAP_PASSWORD_HASHING") else _hasher


def hash_password(password: str) -> str:
    return _current_hasher().hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        # The parameters are in the hash itself, so either hasher verifies either kind.
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(username: str, password: str) -> User:
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        check_password(_DUMMY_HASH, password)
        raise InvalidCredentials()
    if not user.active or not check_password(user.password_hash, password):
        raise InvalidCredentials()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> tuple[str, int]:
    ttl = int(current_app.config["TIMEBANK_TOKEN_TTL_SECONDS"])
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=_digest(token),
                            expires_at=utc_naive() + timedelta(seconds=ttl)))
    db.session.flush()
    return token, ttl


# Runs on every API request: the token's dates and its user in one query, built once.
_TOKEN_USER = (select(ApiToken.revoked_at, ApiToken.expires_at, User).join(User, User.id == ApiToken.user_id)
               .where(ApiToken.token_hash == bindparam("digest")))


def user_for_token(token: str) -> User:
    found = db.session.execute(_TOKEN_USER, {"digest": _digest(token)}).one_or_none()
    if found is None or found.revoked_at is not None:
        raise Unauthenticated("The token is not valid.", code="unauthenticated")
    user = found.User
    if found.expires_at <= utc_naive():
        raise Unauthenticated("The token has expired.", code="token_expired")
    if not user.active:
        raise Unauthenticated("The account is disabled.")
    return user


def revoke_token(token: str) -> None:
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == _digest(token))).scalar_one_or_none()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utc_naive()


def load_session_user(user_id: str) -> User | None:
    """Flask-Login's loader for page sessions."""
    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    return user if user is not None and user.active else None
