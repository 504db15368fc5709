"""Logins: who may sign in, with which role, for which community, and their bearer tokens.

A login is not a person: staff logins and residents' logins point at the person behind them, so the
two-person rules count people, not logins (docs/people.md, "Staff are people"):

* ``phone``: the person's phone number; a staff login whose phone is a resident's is linked to that
  resident (``resident_id``), so conflict-of-interest rules can see whose household it is.
* ``person_key``: who the person is, as the rules compare it: ``phone:<phone>`` when the phone is
  known, else ``resident:<id>``; NULL for a login without a person (it may read, and approves,
  signs and voids nothing: 403 ``person_required``) and for admin logins (deployment-level, exempt).
  One person holds at most one active staff login per community: a partial unique index on
  ``(community_id, person_key)`` refuses a second one in the database too.
* a one-time password (a reset): ``password_hash`` holds its argon2 hash, ``one_time_expires_at``
  its end (24 h), ``one_time_used_at`` its one use; ``password_change_required`` keeps the login to
  choosing a new password until it has.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from timebank.core.clock import utc_naive
from timebank.core.extensions import Model

if TYPE_CHECKING:
    from timebank.people.models import Community, Resident

ROLES = ("admin", "committee", "grid_worker", "clerk", "resident", "supervisor")

#: Roles that work for a community (as opposed to residents and the deployment's admin).
STAFF_ROLES = ("committee", "grid_worker", "clerk", "supervisor")

#: The rows the "one person, one staff login per community" index covers (the same text on SQLite and
#: PostgreSQL; the migration writes it too).
ONE_STAFF_LOGIN_PER_PERSON = (
    "person_key IS NOT NULL AND active AND role IN ('committee', 'grid_worker', 'clerk', 'supervisor')")


def person_key_for(phone: str | None, resident_id: int | None) -> str | None:
    """How the rules name a person: by phone when it is known, else by the resident record."""
    if phone:
        return f"phone:{phone}"
    if resident_id is not None:
        return f"resident:{resident_id}"
    return None


def same_person(a: User, b: User) -> bool:
    """Whether two logins are one person's: the same login, the same ``person_key``, or linked to the
    same resident (whatever phone each was made with)."""
    if a.id == b.id:
        return True
    if a.resident_id is not None and a.resident_id == b.resident_id:
        return True
    return a.person_key is not None and a.person_key == b.person_key


class User(Model):
    """A login. Staff belong to a community; a resident's login is linked to the resident."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'committee', 'grid_worker', 'clerk', 'resident', 'supervisor')", name="role"
        ),
        Index("uq_users_staff_person", "community_id", "person_key", unique=True,
              sqlite_where=text(ONE_STAFF_LOGIN_PER_PERSON), postgresql_where=text(ONE_STAFF_LOGIN_PER_PERSON)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: For residents, their phone number.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    #: argon2id hash.
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    #: The person behind the login, so conflict-of-interest rules can see their household.
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    #: The person's phone number (staff: given when the login is made, or the linked resident's).
    phone: Mapped[str | None] = mapped_column(String(32))
    #: Who the person is for the two-person rules (:func:`person_key_for`); NULL: no person.
    person_key: Mapped[str | None] = mapped_column(String(48))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The login must choose a new password before anything else (after a reset).
    password_change_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Set while the password is a one-time password: when it stops working, and when it was used.
    one_time_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    one_time_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: Part of the page session's name for this login (:meth:`get_id`); logging out changes it, which
    #: ends every page session of the login, copies of the cookie included.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)

    community: Mapped[Community | None] = relationship()
    resident: Mapped[Resident | None] = relationship()

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """What the page session stores: the id and the session version (see ``end_sessions``)."""
        return f"{self.id}:{self.session_version or 0}"

    def end_sessions(self) -> None:
        """Log out everywhere: every page session cookie issued so far stops naming this login."""
        self.session_version = (self.session_version or 0) + 1

    @property
    def actor(self) -> str:
        """How the ledger and the audit log name this user."""
        return f"user:{self.id}:{self.username}"

    @property
    def household_id(self) -> int | None:
        return self.resident.household_id if self.resident else None


class ApiToken(Model):
    """A bearer token. Only its SHA-256 is stored, so a database leak yields no usable token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()
