"""Guests (候鸟, 流动党员): a person of one community who belongs for a while to another.

* One person, one resident record: the host community does not register the person again (their
  phone is taken, 409 ``phone_taken``); its committee takes them in as a guest until a date
  (:func:`take_in`). Taking them in again moves the date (the audit log keeps each change).
* Until that date (its last day included, local time) the person claims, checks in and helps in the
  host community with their own login (:func:`timebank.core.policy.in_community`). It ends by itself:
  every check compares the date with today; nothing has to run.
* Points earned in the host community go to the person's guest wallet there
  (:func:`timebank.core.accounts.guest_points`), never to their home household: the host's issuance
  pays for what is spent in the host's supermarket. The wallet keeps its points after the membership
  ends (points are not taken away); its supermarket charges it whenever the person pays with their
  own card or pay code. Minutes are the person's, wherever they are earned.
* Both rosters show it: the host's as its guests, the home community's as its people elsewhere
  (:func:`memberships_query`).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select

import ledger
from timebank.core import accounts
from timebank.core.audit_log import record
from timebank.core.clock import local_today
from timebank.core.errors import Conflict, ValidationFailed
from timebank.core.extensions import db
from timebank.core.policy import require_community
from timebank.core.users import User
from timebank.people.models import Community, GuestMembership, Household, Resident

#: Who takes a guest in: the committee of the host community (and admin).
HOSTS = ("committee",)


def take_in(user: User, resident: Resident, community: Community, until: date) -> tuple[GuestMembership, bool]:
    """Make ``resident`` a guest of ``community`` until ``until``; or move the end of their membership.
    Returns the membership and whether it is new."""
    require_community(user, community.id, *HOSTS)
    if not resident.active:
        raise Conflict("This resident has left; they join no community.", code="resident_inactive")
    if resident.household.community_id == community.id:
        raise ValidationFailed(errors={"community_code": ["This is the person's own community."]})
    if until < local_today():
        raise ValidationFailed(errors={"until": ["The membership ends today or later."]})
    membership = db.session.execute(
        select(GuestMembership).where(GuestMembership.resident_id == resident.id,
                                      GuestMembership.community_id == community.id).with_for_update()
    ).scalar_one_or_none()
    if membership is not None:
        before = membership.until
        membership.until = until
        db.session.flush()
        record("membership.change", user=user, target=f"membership:{membership.id}", community_id=community.id,
               resident_id=resident.id, until=[before.isoformat(), until.isoformat()])
        return membership, False
    membership = GuestMembership(resident_id=resident.id, community_id=community.id, until=until,
                                 created_by_user_id=user.id)
    db.session.add(membership)
    db.session.flush()
    accounts.open_guest_wallet(db.session, resident.id, community.id)
    record("membership.create", user=user, target=f"membership:{membership.id}", community_id=community.id,
           resident_id=resident.id, home_community_id=resident.household.community_id, until=until.isoformat())
    return membership, True


def memberships_query(community_id: int, active: bool | None = None):
    """Memberships a community's roster shows: its guests, and its own people who are guests elsewhere."""
    home = select(Resident.id).join(Household, Household.id == Resident.household_id) \
        .where(Household.community_id == community_id)
    query = select(GuestMembership).where(or_(GuestMembership.community_id == community_id,
                                              GuestMembership.resident_id.in_(home)))
    if active is True:
        query = query.where(GuestMembership.until >= local_today())
    elif active is False:
        query = query.where(GuestMembership.until < local_today())
    return query


def of_resident(resident_id: int) -> list[GuestMembership]:
    return list(db.session.execute(
        select(GuestMembership).where(GuestMembership.resident_id == resident_id).order_by(GuestMembership.id)
    ).scalars())


def guests_of(community_id: int) -> list[GuestMembership]:
    """The community's guests today, by name (the roster page)."""
    return list(db.session.execute(
        select(GuestMembership).join(Resident, Resident.id == GuestMembership.resident_id)
        .where(GuestMembership.community_id == community_id, GuestMembership.until >= local_today(),
               Resident.active.is_(True))
        .order_by(Resident.name, GuestMembership.id)).scalars())


def wallet_points(membership: GuestMembership) -> int:
    return ledger.balance(db.session, accounts.guest_points(membership.resident_id, membership.community_id))


def guest_wallet(resident_id: int, community_id: int) -> str | None:
    """The person's guest wallet in ``community_id``, if they were ever taken in there."""
    found = db.session.execute(
        select(GuestMembership.id).where(GuestMembership.resident_id == resident_id,
                                         GuestMembership.community_id == community_id)).first()
    return accounts.guest_points(resident_id, community_id) if found else None


def describe(membership: GuestMembership) -> dict:
    resident = membership.resident
    return {"id": membership.id, "resident_id": resident.id, "resident_name": resident.name,
            "community_code": membership.community.code, "community_name": membership.community.name,
            "home_community_code": resident.household.community.code,
            "home_community_name": resident.household.community.name,
            "until": membership.until, "active": membership.active,
            "wallet_account": accounts.guest_points(resident.id, membership.community_id),
            "wallet_points": wallet_points(membership), "created_at": membership.created_at}
