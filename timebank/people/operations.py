"""Creating communities, households, residents and logins."""

from __future__ import annotations

from sqlalchemy import select

from timebank.core import accounts
from timebank.core.auth import hash_password
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.passwords import check_password_strength
from timebank.core.users import ROLES, STAFF_ROLES, User
from timebank.people import logins
from timebank.people.models import COLORS, Community, Household, Resident


def community_by_code(code: str) -> Community:
    community = db.session.execute(select(Community).where(Community.code == code)).scalar_one_or_none()
    if community is None:
        raise NotFound(f"No community with code {code!r}.")
    return community


def create_community(code: str, name: str, parent_code: str | None = None, **settings) -> Community:
    if db.session.execute(select(Community.id).where(Community.code == code)).first():
        raise Conflict(f"A community with code {code!r} exists.")
    parent = community_by_code(parent_code) if parent_code else None
    community = Community(code=code, name=name, parent=parent, **settings)
    db.session.add(community)
    db.session.flush()
    accounts.open_community(db.session, community.id)
    return community


def create_household(community: Community, name: str, address: str = "", grid: str | None = None,
                     color: str | None = None) -> Household:
    color = color or "green"
    if color not in COLORS:
        raise ValidationFailed(errors={"color": [f"Must be one of {', '.join(COLORS)}."]})
    household = Household(community_id=community.id, name=name, address=address or "", grid=grid, color=color)
    db.session.add(household)
    db.session.flush()
    accounts.open_household(db.session, household)
    return household


def create_resident(household: Household, name: str, phone: str | None = None, password: str | None = None,
                    birth_year: int | None = None) -> Resident:
    known = db.session.execute(select(Resident.id).where(Resident.phone == phone)).scalar() if phone else None
    if known is not None:
        # One person, one record: a person of another community joins this one as a guest.
        raise Conflict(f"A resident with this phone number exists (resident {known}). A person of another "
                       f"community joins this one as a guest: POST /api/v1/residents/{known}/memberships "
                       "{community_code, until}.", code="phone_taken")
    if password and not phone:
        raise ValidationFailed(errors={"phone": ["A resident who logs in needs a phone number."]})
    resident = Resident(household_id=household.id, name=name, phone=phone or None, birth_year=birth_year)
    db.session.add(resident)
    db.session.flush()
    accounts.open_resident(db.session, resident, household.community_id)
    if password and phone:
        create_user(phone, password, "resident", community_id=household.community_id, resident_id=resident.id)
    if phone:
        logins.link_staff_logins(resident)
    return resident


def create_user(username: str, password: str, role: str, community_id: int | None = None,
                resident_id: int | None = None, phone: str | None = None) -> User:
    """A login. Staff logins belong to a person: ``phone`` (a resident's phone links the login to that
    resident) or ``resident_id``; one person holds one active staff login per community (409
    ``person_has_login``). Without either, a staff login may read but approves, signs and voids
    nothing (``person_required``) until :func:`timebank.people.logins.link_person`."""
    if role not in ROLES:
        raise ValidationFailed(errors={"role": [f"Must be one of {', '.join(ROLES)}."]})
    if role in STAFF_ROLES and community_id is None:
        raise ValidationFailed(errors={"community_code": ["Staff belong to a community."]})
    if role == "resident" and resident_id is None:
        raise ValidationFailed(errors={"resident_id": ["A resident login is linked to a resident."]})
    if role == "admin" and (phone or resident_id is not None):
        raise ValidationFailed(errors={"phone": ["Admin logins are deployment-level and belong to no person."]})
    check_password_strength(password, username)
    if db.session.execute(select(User.id).where(User.username == username)).first():
        raise Conflict(f"The username {username!r} is taken.", code="username_taken")
    person = logins.find_person(phone, resident_id)
    if (resident_id is not None and community_id is not None and person.resident is not None
            and person.resident.household.community_id != community_id):
        raise ValidationFailed(errors={"resident_id": ["The resident lives in another community."]})
    user = User(username=username, password_hash=hash_password(password), role=role,
                community_id=community_id)
    logins.give_person(user, person)
    db.session.add(user)
    logins.flush_one_login_per_person()
    return user


def may_create_user(actor: User, role: str, community_id: int | None) -> None:
    """Admin creates anyone; a committee member adds grid workers, clerks and residents' logins to its
    own community. Committee and supervisor logins are made by an admin only: a committee member who
    could make committee logins could make a second one for itself, or a supervisor to watch itself."""
    if actor.role == "admin":
        return
    if actor.role == "committee" and role in logins.COMMITTEE_MAKES and community_id == actor.community_id:
        return
    raise Forbidden("Only an admin makes committee and supervisor logins; a committee member adds grid workers, "
                    "clerks and residents' logins of its own community.")
