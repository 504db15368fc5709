"""People and places: communities (社区/村), households (户), residents (居民) and staff logins."""

from __future__ import annotations

import secrets
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from timebank.core.clock import local_today, utc_naive
from timebank.core.extensions import Model, db

COLORS = ("red", "yellow", "green")

# Crockford's base32 without I, L, O, U: easy to read aloud and type from a printed card.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_member_code(prefix: str) -> str:
    """An unguessable code for a printed card: prefix and 10 symbols (50 bits)."""
    bits = int.from_bytes(secrets.token_bytes(7), "big") >> 6  # 50 random bits: one system call, not ten
    return prefix + "".join(_CODE_ALPHABET[(bits >> shift) & 31] for shift in range(0, 50, 5))


class Community(Model):
    """A community (社区) or village (村); may belong to a sub-district or district (parent)."""

    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Short stable code used in URLs and the API, e.g. ``hongxing``.
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"))
    #: Stored-hours cap per resident in minutes; earned minutes beyond it go to the pool (Nanjing: 1,500 h).
    hours_cap_minutes: Mapped[int] = mapped_column(Integer, default=1500 * 60)
    #: Points expiry: ``none``, ``annual`` (31 December) or ``rolling`` (after ``expiry_months``).
    expiry_policy: Mapped[str] = mapped_column(String(16), default="none")
    expiry_months: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)

    parent: Mapped[Community | None] = relationship(remote_side="Community.id")

    __table_args__ = (
        CheckConstraint("expiry_policy IN ('none', 'annual', 'rolling')", name="expiry_policy"),
    )

    def lineage(self) -> list[int]:
        """This community's id and those of the communities above it (社区 -> 街道 -> 区), nearest first."""
        return lineage(self.id)

    def subtree(self) -> list[int]:
        """This community's id and those of every community below it, parents before children."""
        return subtree(self.id)

    def oversees(self, community_id: int) -> bool:
        """Whether ``community_id`` is this community or one below it (a 街道 oversees its 社区)."""
        return community_id == self.id or self.id in lineage(community_id)


def lineage(community_id: int) -> list[int]:
    """``community_id`` and the ids above it, nearest first. A few rows: one query a level."""
    chain = [community_id]
    parent = db.session.execute(select(Community.parent_id).where(Community.id == community_id)).scalar()
    while parent is not None and parent not in chain:
        chain.append(parent)
        parent = db.session.execute(select(Community.parent_id).where(Community.id == parent)).scalar()
    return chain


def subtree(community_id: int) -> list[int]:
    """``community_id`` and every community below it, level by level (one query a level)."""
    found = [community_id]
    level = [community_id]
    while level:
        level = [i for i in db.session.execute(
            select(Community.id).where(Community.parent_id.in_(level)).order_by(Community.id)).scalars()
            if i not in found]
        found.extend(level)
    return found


def related(first_id: int, second_id: int) -> bool:
    """Whether two communities are one, or share a community above them (two 社区 of one 街道)."""
    if first_id == second_id:
        return True
    above = set(lineage(first_id)[1:])
    return bool(above.intersection(lineage(second_id)[1:]))


class Household(Model):
    """A household (户): the subject of points. Any member earns for it and any member may spend."""

    __tablename__ = "households"
    __table_args__ = (CheckConstraint("color IN ('red', 'yellow', 'green')", name="color"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    #: The grid (网格) the household belongs to, e.g. ``1`` or ``东区一网格``.
    grid: Mapped[str | None] = mapped_column(String(64))
    #: Three-colour care label: red (empty-nest, left-behind, ill, disabled), yellow (at risk), green.
    color: Mapped[str] = mapped_column(String(8), default="green")
    #: Code printed on the household's card (QR); a clerk scans it to redeem.
    member_code: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_member_code("H"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)

    community: Mapped[Community] = relationship()
    members: Mapped[list[Resident]] = relationship(back_populates="household", order_by="Resident.id")

    @property
    def points_account(self) -> str:
        return f"household:{self.id}:points"


class Resident(Model):
    """A resident (居民), member of one household; logs in with their phone number."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    #: The resident's own card code (for check-in and time-bank services).
    member_code: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_member_code("R"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    #: False once the person has left the community or died (``POST /residents/{id}/deactivate``): their
    #: history stays, their logins are closed, and they earn, check in and receive minutes no more.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: When they were marked as gone (the reason is in the audit log).
    left_at: Mapped[datetime | None] = mapped_column(DateTime)

    household: Mapped[Household] = relationship(back_populates="members")

    @property
    def minutes_account(self) -> str:
        return f"resident:{self.id}:minutes"

    def is_guest_in(self, community_id: int) -> bool:
        """Whether the person is a guest of ``community_id`` today (:class:`GuestMembership`)."""
        return self.active and guest_membership(self.id, community_id) is not None

    def belongs_to(self, community_id: int) -> bool:
        """The person's own community, or one where they are a guest today."""
        return self.household.community_id == community_id or self.is_guest_in(community_id)


class GuestMembership(Model):
    """A person's membership of a community other than their own (候鸟, 流动党员) until a date.

    Until ``until`` (a local date, its last day included) the person may claim, check in and help in
    the host community with their own login; points earned there go to their guest wallet in it
    (:func:`timebank.core.accounts.guest_points`), which its supermarket charges. It ends by itself:
    every check compares ``until`` with today's date. One row per person and host community; taking
    the person in again moves ``until`` (the audit log keeps each change)."""

    __tablename__ = "guest_memberships"
    __table_args__ = (UniqueConstraint("resident_id", "community_id", name="uq_guest_memberships_resident_community"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    #: The host community.
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: The last day of the membership (local date).
    until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    resident: Mapped[Resident] = relationship()
    community: Mapped[Community] = relationship()

    @property
    def active(self) -> bool:
        return self.until >= local_today() and self.resident.active


def guest_membership(resident_id: int, community_id: int) -> GuestMembership | None:
    """The person's membership of ``community_id`` if it holds today."""
    return db.session.execute(
        select(GuestMembership).where(GuestMembership.resident_id == resident_id,
                                      GuestMembership.community_id == community_id,
                                      GuestMembership.until >= local_today())).scalar_one_or_none()




class CareLabelChange(Model):
    """One change of a household's care label (三色管理): who, when, from which colour to which, and why.

    Append-only: the database refuses UPDATE and DELETE, as for the audit log."""

    __tablename__ = "care_label_changes"
    __table_args__ = (
        CheckConstraint("from_color IN ('red', 'yellow', 'green')", name="from_color"),
        CheckConstraint("to_color IN ('red', 'yellow', 'green')", name="to_color"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    #: The staff login that changed it, and its name as text so the row reads on its own.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(128))
    from_color: Mapped[str] = mapped_column(String(8))
    to_color: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(500), default="")
