"""Passwords (argon2id), bearer tokens, and who is asking.

Identity has one source: Flask-Login. A page session names its user through the user loader; an API
request's ``Authorization: Bearer`` header through the request loader (one token lookup per request,
Flask-Login keeps the result for the request). A request that carries a bearer token is that
token's user even when it also carries a page cookie.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, request
from sqlalchemy import select, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from ledger import driver
from timebank.core.clock import utc_naive
from timebank.core.errors import InvalidCredentials, Unauthenticated
from timebank.core.extensions import db, limiter
from timebank.core.users import ApiToken, User

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
    """The login of this username and password, or 401 ``invalid_credentials``.

    A one-time password (a reset, :func:`set_one_time_password`) works once and for 24 hours: its
    first use here marks it used (in the request's transaction), and a later or late attempt is
    refused like a wrong password. The login then has to choose a new password
    (``password_change_required``) before anything else."""
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        check_password(_DUMMY_HASH, password)
        raise InvalidCredentials()
    if not user.active or not check_password(user.password_hash, password):
        raise InvalidCredentials()
    if user.one_time_expires_at is not None:
        if user.one_time_used_at is not None:
            raise InvalidCredentials("This one-time password was used already; ask for a new one.")
        if user.one_time_expires_at <= utc_naive():
            raise InvalidCredentials("This one-time password has expired; ask for a new one.")
        user.one_time_used_at = utc_naive()
    return user


#: How long a one-time password works.
ONE_TIME_PASSWORD_TTL = timedelta(hours=24)
# No 0/O, 1/l/I: read out over the phone or copied from a printed slip.
_OTP_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def new_one_time_password() -> str:
    """Ten symbols from a 31-letter alphabet (about 50 bits), in two groups of five: ``k7m2q-x9d4a``."""
    symbols = "".join(secrets.choice(_OTP_ALPHABET) for _ in range(10))
    return f"{symbols[:5]}-{symbols[5:]}"


def set_one_time_password(user: User) -> tuple[str, datetime]:
    """Replace the login's password with a new one-time password and return it with its end. Only
    its hash is stored; the old password stops working, and so do the login's bearer tokens and page
    sessions (whoever held them must log in with the new one)."""
    password = new_one_time_password()
    expires_at = utc_naive() + ONE_TIME_PASSWORD_TTL
    user.password_hash = hash_password(password)
    user.password_change_required = True
    user.one_time_expires_at = expires_at
    user.one_time_used_at = None
    end_all_sessions(user)
    return password, expires_at


def set_password(user: User, password: str) -> None:
    """A password the person chose: the one-time state ends."""
    user.password_hash = hash_password(password)
    user.password_change_required = False
    user.one_time_expires_at = None
    user.one_time_used_at = None


def end_all_sessions(user: User) -> None:
    """Every bearer token of the login is revoked and every page session of it ends, at once."""
    db.session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                       .values(revoked_at=utc_naive()))
    user.end_sessions()


def login_name(raw: str) -> str:
    """The username as typed, tidied: phone numbers are typed with spaces or dashes on old phones
    (138 0013 8000 -> 13800138000)."""
    raw = raw.strip()
    compact = re.sub(r"[\s\-()]", "", raw)
    return compact if re.fullmatch(r"\+?\d{5,20}", compact) else raw


def _login_attempt_failed(response) -> bool:
    return response.status_code == 401


def _attempted_account() -> str:
    """The account a login attempt names (the API's JSON or the page's form), for its own limit."""
    if request.is_json:
        body = request.get_json(silent=True)
        name = body.get("username") if isinstance(body, dict) else None
    else:
        name = request.form.get("username")
    return "account:" + (login_name(name).lower() if isinstance(name, str) else "")


def login_limits() -> list:
    """Flask-Limiter's limits on logging in, shared by ``POST /api/v1/auth/token`` and the login page.
    Only failed attempts (401) count, per address (``TIMEBANK_LOGIN_RATE_LIMIT``) and per account
    (``TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT``): many people may log in from one address (a community
    centre, a carrier's NAT), and guessing one account's password from many addresses is slow.
    A limit reached answers 429 ``rate_limited`` with Retry-After, even to the right password. The
    counts are in Flask-Limiter's storage: Redis when ``TIMEBANK_RATELIMIT_STORAGE_URL`` is set, so
    every worker shares them."""
    def per_address() -> str:
        return current_app.config["TIMEBANK_LOGIN_RATE_LIMIT"]

    def per_account() -> str:
        return current_app.config["TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT"]

    return [
        limiter.shared_limit(per_address, scope="login-address", methods=["POST"],
                             deduct_when=_login_attempt_failed),
        limiter.shared_limit(per_account, scope="login-account", key_func=_attempted_account, methods=["POST"],
                             deduct_when=_login_attempt_failed),
    ]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> tuple[str, int]:
    ttl = int(current_app.config["TIMEBANK_TOKEN_TTL_SECONDS"])
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=_digest(token),
                            expires_at=utc_naive() + timedelta(seconds=ttl)))
    db.session.flush()
    return token, ttl


# Runs on every API request: the token's dates and its user's columns in one query on the driver's
# cursor (an ORM query here cost more than the rest of a sale's reads together).
_TOKEN_USER = driver.per_dialect({
    "user": (
        "SELECT t.revoked_at, t.expires_at, u.id, u.username, u.role, u.community_id, u.resident_id, u.active,"
        " u.password_change_required, u.person_key"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = {digest}"),
    # With an Idempotency-Key: the stored answer of that key, if any, in the same round trip
    # (timebank.core.http.idempotent would ask for it next).
    "user_and_answer": (
        "SELECT t.revoked_at, t.expires_at, u.id, u.username, u.role, u.community_id, u.resident_id, u.active,"
        " u.password_change_required, u.person_key, r.id, r.request_hash, r.status_code, r.response_body"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " LEFT JOIN idempotency_records r ON r.scope = 'user:' || u.id AND r.\"key\" = {key}"
        " WHERE t.token_hash = {digest}"),
})
#: Key in ``flask.g``: (scope, key, stored answer or None) read with the token (see above).
PREFETCHED_ANSWER = "timebank_prefetched_answer"


def _attached_user(user_id, username, role, community_id, resident_id, active, password_change_required,
                   person_key) -> User:
    """The session's User for these columns, without loading it again: a new instance is attached as
    if it had been loaded (its other columns load on first use, its relationships as usual)."""
    existing = db.session.identity_map.get(identity_key(User, user_id))
    if existing is not None:
        return existing
    user = User(id=user_id, username=username, role=role, community_id=community_id, resident_id=resident_id,
                active=bool(active), password_change_required=bool(password_change_required),
                person_key=person_key)
    make_transient_to_detached(user)
    db.session.add(user)
    return user


def user_for_token(token: str, idempotency_key: str | None = None) -> User:
    """The token's user. With ``idempotency_key``, the user's stored answer for that key is read
    in the same query and left in ``g`` for :func:`timebank.core.http.idempotent`."""
    cursor, dialect = driver.cursor(db.session)
    if idempotency_key is None:
        cursor.execute(_TOKEN_USER[dialect]["user"], {"digest": _digest(token)})
    else:
        cursor.execute(_TOKEN_USER[dialect]["user_and_answer"], {"digest": _digest(token), "key": idempotency_key})
    found = cursor.fetchone()
    if idempotency_key is not None and found is not None:
        answer = None if found[10] is None else tuple(found[11:14])
        setattr(g, PREFETCHED_ANSWER, (f"user:{found[2]}", idempotency_key, answer))
    if found is None or found[0] is not None:
        raise Unauthenticated("The token is not valid.", code="unauthenticated")
    expires_at = found[1] if isinstance(found[1], datetime) else datetime.fromisoformat(found[1])
    if expires_at <= utc_naive():
        raise Unauthenticated("The token has expired.", code="token_expired")
    if not found[7]:
        raise Unauthenticated("The account is disabled.")
    return _attached_user(*found[2:10])


def revoke_token(token: str) -> None:
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == _digest(token))).scalar_one_or_none()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utc_naive()


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, if it has one."""
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def load_request_user(_request) -> User | None:
    """Flask-Login's request loader: the user of the bearer token. An invalid, expired or revoked
    token raises 401 (``unauthenticated``, ``token_expired``) when ``current_user`` is first read."""
    token = bearer_token()
    if token is None:
        return None
    key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
    return user_for_token(token, key if key is not None and 1 <= len(key) <= 255 else None)


def load_session_user(session_id: str) -> User | None:
    """Flask-Login's loader for page sessions (not for requests that carry a bearer token). The
    session names the login as ``"<id>:<session version>"`` (:meth:`User.get_id`): after a logout
    the version has moved on and the old cookie, or any copy of it, names nobody."""
    if bearer_token() is not None:
        return None
    # A bare id is a session from before versions were kept: version 0, which the first logout ends.
    user_id_text, _, version_text = str(session_id).partition(":")
    try:
        user_id, version = int(user_id_text), int(version_text or 0)
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or (user.session_version or 0) != version:
        return None
    return user


def init_app(app) -> None:
    from timebank.core.extensions import login_manager

    login_manager.user_loader(load_session_user)
    login_manager.request_loader(load_request_user)
