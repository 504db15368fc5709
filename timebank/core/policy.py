"""Who may see and do what. The API and the pages ask the same functions.

* admin: everything, everywhere.
* committee, grid_worker, clerk, supervisor: their own community; supervisor reads only. Staff of a
  community with communities below it (a 街道 over its 社区) also read those (:func:`can_see_community`,
  :func:`require_sight`); acting stays with each community's own staff (:func:`require_community`).
* resident: their own household and themselves only; in a community where they are a guest today
  (候鸟, 流动党员) they claim, check in and help like its residents (:func:`in_community`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timebank.core.errors import Forbidden, NotFound
from timebank.core.users import User

if TYPE_CHECKING:  # the people feature builds on the core, not the other way round
    from timebank.people.models import Household, Resident

STAFF = ("committee", "grid_worker", "clerk", "supervisor")


def require_role(user: User, *roles: str) -> None:
    if user.role == "admin":
        return
    if user.role not in roles:
        raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")


def require_person(user: User) -> None:
    """person_required: approving or rejecting claims, signing a month close and voiding or taking
    back receipts are the acts the two-person rules count, so they need a login that belongs to a
    person (``users.person_key``: a phone or a resident). A staff login without one may read; it is
    linked with ``PATCH /api/v1/users/{id}`` ``{phone}``. Admin logins are deployment-level and exempt."""
    if user.role == "admin":
        return
    if user.person_key is None:
        raise Forbidden("This login does not belong to a person yet: an admin or the committee links it to the "
                        "person's phone (PATCH /api/v1/users/{id}) before it approves, signs or voids anything.",
                        code="person_required")


def oversees(user: User, community_id: int) -> bool:
    """Staff of this community or of a community above it (a 街道's staff over its 社区)."""
    if user.role not in STAFF or user.community_id is None:
        return False
    if user.community_id == community_id:  # the usual case answers without a query
        return True
    return user.community is not None and user.community.oversees(community_id)


def can_see_community(user: User, community_id: int) -> bool:
    return user.role == "admin" or oversees(user, community_id)


def require_sight(user: User, community_id: int, *roles: str) -> None:
    """Staff with one of ``roles`` (or admin) of this community or of one above it, to read. Others get 403."""
    if user.role == "admin":
        return
    if roles and user.role not in roles:
        raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
    if not oversees(user, community_id):
        raise Forbidden("This belongs to another community.")


def in_community(user: User, community_id: int) -> bool:
    """Anyone who belongs to the community: its staff, its residents (and its guests today), or an admin."""
    if user.role == "admin":
        return True
    if user.role == "resident":
        return user.resident is not None and user.resident.belongs_to(community_id)
    return user.community_id == community_id


def require_member(user: User, community_id: int) -> None:
    """Anyone who belongs to the community (:func:`in_community`). Others get 403."""
    if not in_community(user, community_id):
        raise Forbidden("This belongs to another community.")


def require_community(user: User, community_id: int, *roles: str) -> None:
    """Staff of this community with one of ``roles`` (or admin). Others get 403."""
    if user.role == "admin":
        return
    if roles and user.role not in roles:
        raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
    if user.role not in STAFF or user.community_id != community_id:
        raise Forbidden("This belongs to another community.")


def can_see_household(user: User, household: Household) -> bool:
    if user.role == "resident":
        return user.household_id == household.id
    return can_see_community(user, household.community_id)


def visible_household(user: User, household: Household | None) -> Household:
    # Another household's existence is not revealed to a resident: 404, not 403.
    if household is None or not can_see_household(user, household):
        raise NotFound("No such household.")
    return household


def visible_resident(user: User, resident: Resident | None) -> Resident:
    if resident is None or not can_see_household(user, resident.household):
        raise NotFound("No such resident.")
    return resident
