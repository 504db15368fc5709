"""Logins: who may sign in, with which role, for which community, and their bearer tokens.

A login is not a person: staff logins and residents' logins point at the person (a resident) behind
them, so conflict-of-interest rules can see whose household it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from timebank.core.clock import utc_naive
from timebank.core.extensions import Model

if TYPE_CHECKING:
    from timebank.people.models import Community, Resident

ROLES = ("admin", "committee", "grid_worker", "clerk", "resident", "supervisor")

#: Roles that work for a community (as opposed to residents and the deployment's admin).
STAFF_ROLES = ("committee", "grid_worker", "clerk", "supervisor")


class User(Model):
    """A login. Staff belong to a community; a resident's login is linked to the resident."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'committee', 'grid_worker', 'clerk', 'resident', 'supervisor')", name="role"
        ),
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
    active: Mapped[bool] = mapped_column(Boolean, default=True)
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
