"""Logins and the people behind them: linking a login to a person, who manages which logins,
deactivating, one-time passwords and choosing a new password (docs/people.md).

* Staff are people: a staff login belongs to a person, named by phone (``users.phone``; a phone that
  is a resident's links the login to that resident) or by a resident record. The two-person rules
  compare ``users.person_key``, so two logins of one person count as one person. One person holds
  at most one active staff login per community: 409 ``person_has_login`` (and a partial unique
  index in the database).
* Who manages whom: an admin manages every login; a committee member manages (creates, links,
  deactivates, resets) the grid workers', clerks' and residents' logins of its own community; a grid
  worker resets residents' passwords of its community. Committee and supervisor logins are an
  admin's. Every change is written to the audit log by the caller, in the same transaction.
* One-time passwords: a reset gives a password that works once, for 24 hours; the login it opens
  must choose a new password (``password_change_required``) before anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from timebank.core.auth import check_password, end_all_sessions, set_one_time_password, set_password
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.passwords import check_password_strength
from timebank.core.users import STAFF_ROLES, User, person_key_for
from timebank.people.models import Resident

#: The logins a committee member makes and manages in its own community.
COMMITTEE_MAKES = ("grid_worker", "clerk", "resident")
#: Who may give a resident's login a one-time password (besides admin).
RESETS_RESIDENTS = ("committee", "grid_worker")

_PHONE = re.compile(r"\+?[0-9]{5,20}")


@dataclass
class Person:
    phone: str | None
    resident: Resident | None

    @property
    def key(self) -> str | None:
        return person_key_for(self.phone, self.resident.id if self.resident else None)


def mask_phone(phone: str | None) -> str | None:
    """138****8000: enough to recognise a number in a list, not enough to call it."""
    if not phone:
        return None
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


def tidy_phone(raw: str | None) -> str | None:
    """A phone number as typed (spaces, dashes, brackets left out), or None; 422 when it is not one."""
    if raw is None:
        return None
    phone = re.sub(r"[\s\-()]", "", str(raw))
    if not phone:
        return None
    if not _PHONE.fullmatch(phone):
        raise ValidationFailed(errors={"phone": ["A phone number is 5 to 20 digits, with an optional leading +."]})
    return phone


def find_person(phone: str | None, resident_id: int | None) -> Person:
    """The person a phone or a resident id names. A phone that is a resident's is that resident; a
    resident's own phone is theirs."""
    phone = tidy_phone(phone)
    resident = None
    if resident_id is not None:
        resident = db.session.get(Resident, resident_id)
        if resident is None:
            raise NotFound("No such resident.")
        if phone and resident.phone and resident.phone != phone:
            raise ValidationFailed(errors={"phone": ["This is not the phone number of that resident."]})
        phone = resident.phone or phone
    elif phone:
        resident = db.session.execute(select(Resident).where(Resident.phone == phone)).scalar_one_or_none()
    return Person(phone=phone, resident=resident)


def give_person(user: User, person: Person) -> None:
    if user.role == "admin":
        return  # deployment-level: no person, exempt from the person rules
    user.phone = person.phone
    user.resident_id = person.resident.id if person.resident else None
    if person.resident is not None:
        user.resident = person.resident
    user.person_key = person.key


def _holder(user: User) -> User | None:
    if user.person_key is None or user.role not in STAFF_ROLES or not user.active or user.community_id is None:
        return None
    query = select(User).where(User.community_id == user.community_id, User.person_key == user.person_key,
                               User.active.is_(True), User.role.in_(STAFF_ROLES))
    if user.id is not None:
        query = query.where(User.id != user.id)
    with db.session.no_autoflush:
        return db.session.execute(query.limit(1)).scalar_one_or_none()


def flush_one_login_per_person() -> None:
    """Write the pending login; a second active staff login of one person in one community is
    409 ``person_has_login`` (asked first for a clear answer; the database's unique index refuses
    it as well, for two requests at the same moment)."""
    pending = [obj for obj in (*db.session.new, *db.session.dirty) if isinstance(obj, User)]
    for user in pending:
        other = _holder(user)
        if other is not None:
            raise Conflict(f"This person already holds a staff login of this community ({other.username}).",
                           code="person_has_login")
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        if "person" in str(exc.orig).lower():
            raise Conflict("This person already holds a staff login of this community.",
                           code="person_has_login") from exc
        raise


# --- who manages whom ---------------------------------------------------------------------------

def login_community_id(target: User) -> int | None:
    if target.community_id is not None:
        return target.community_id
    return target.resident.household.community_id if target.resident is not None else None


def may_manage(actor: User, target: User, *, reset: bool = False) -> None:
    """Admin: every login. Committee: grid workers', clerks' and residents' logins of its community.
    For a reset (``reset=True``), a grid worker: residents' logins of its community."""
    if actor.role == "admin":
        return
    same_place = actor.community_id is not None and login_community_id(target) == actor.community_id
    if same_place and actor.role == "committee" and target.role in COMMITTEE_MAKES:
        return
    if reset and same_place and actor.role == "grid_worker" and target.role == "resident":
        return
    raise Forbidden("Only an admin, or the committee of the login's community, manages this login.")


def may_list(actor: User, community_id: int) -> None:
    """The logins of a community: its committee and supervisors (who watch for made-up staff), admin."""
    if actor.role == "admin":
        return
    if actor.role in ("committee", "supervisor") and actor.community_id == community_id:
        return
    raise Forbidden("The committee and the supervisors of the community see its logins.")


def get_login(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such login.")
    return user


def visible_login(actor: User, user_id: int) -> User:
    """A login the actor may see (404 otherwise, so other communities' logins are not revealed)."""
    target = db.session.get(User, user_id)
    if target is None:
        raise NotFound("No such login.")
    if actor.role != "admin" and (actor.community_id is None or login_community_id(target) != actor.community_id):
        raise NotFound("No such login.")
    return target


def logins_of(community_id: int):
    return select(User).where(User.community_id == community_id)


# --- changes ---------------------------------------------------------------------------------------

def link_person(actor: User, target: User, phone: str | None, resident_id: int | None) -> User:
    """Give a login its person (``PATCH /api/v1/users/{id}``). A login's person is set once: another
    person for a login that has one is 409 ``person_already_set`` (deactivate it and make a new one),
    so a login's sign-offs and approvals keep naming the person who made them."""
    may_manage(actor, target)
    if target.role == "admin":
        raise ValidationFailed(errors={"phone": ["Admin logins are deployment-level and belong to no person."]})
    if phone is None and resident_id is None:
        raise ValidationFailed(errors={"phone": ["Give the person's phone (or resident_id)."]})
    person = find_person(phone, resident_id)
    if resident_id is not None and actor.role != "admin" and person.resident is not None \
            and person.resident.household.community_id != actor.community_id:
        raise NotFound("No such resident.")
    if target.person_key is not None and target.person_key != person.key:
        raise Conflict("This login already belongs to a person; deactivate it and make a new login for "
                       "another person.", code="person_already_set")
    give_person(target, person)
    flush_one_login_per_person()
    return target


def deactivate(actor: User, target: User) -> User:
    """The login stops working at once: its bearer tokens are revoked and its page sessions end."""
    may_manage(actor, target)
    if target.id == actor.id:
        raise Conflict("A login does not deactivate itself.", code="conflict")
    target.active = False
    end_all_sessions(target)
    db.session.flush()
    return target


def reset_password(actor: User, target: User) -> tuple[str, object]:
    """A one-time password for the login (24 h, once). Returns ``(password, expires_at)``."""
    may_manage(actor, target, reset=True)
    if not target.active:
        raise Conflict("This login is deactivated.", code="login_inactive")
    password, expires_at = set_one_time_password(target)
    db.session.flush()
    return password, expires_at


def resident_login(resident: Resident) -> User | None:
    return db.session.execute(select(User).where(User.resident_id == resident.id, User.role == "resident")
                              .order_by(User.active.desc(), User.id).limit(1)).scalar_one_or_none()


def reset_resident_password(actor: User, resident: Resident) -> tuple[User, str, object, bool]:
    """A one-time password for the resident's login; a resident without a login gets one (username:
    their phone). Returns ``(login, password, expires_at, created)``."""
    community_id = resident.household.community_id
    if actor.role != "admin" and (actor.role not in RESETS_RESIDENTS or actor.community_id != community_id):
        raise Forbidden("The committee or a grid worker of the resident's community resets their password.")
    login = resident_login(resident)
    created = False
    if login is None:
        if not resident.phone:
            raise ValidationFailed(
                "This resident has no phone number, so they cannot have a login: their username is their phone. "
                "Add their phone number first.", errors={"phone": ["The resident has no phone number."]})
        if db.session.execute(select(User.id).where(User.username == resident.phone)).first():
            raise Conflict("Another login already uses this phone number as its username.", code="username_taken")
        login = User(username=resident.phone, password_hash="", role="resident", community_id=community_id)
        give_person(login, Person(phone=resident.phone, resident=resident))
        db.session.add(login)
        db.session.flush()
        created = True
    password, expires_at = reset_password(actor, login)
    return login, password, expires_at, created


def change_password(user: User, old_password: str, new_password: str) -> None:
    """The login's own new password. A wrong old password is 403 ``wrong_password``; a weak new one
    422 ``weak_password``; the same as the old one 422 ``validation_error``."""
    if not check_password(user.password_hash, old_password):
        raise Forbidden("The old password is wrong.", code="wrong_password")
    if old_password == new_password:
        raise ValidationFailed(errors={"new_password": ["Choose a password other than the old one."]})
    check_password_strength(new_password, user.username)
    set_password(user, new_password)
    db.session.flush()


def link_staff_logins(resident: Resident) -> None:
    """A resident registered with a phone that staff logins already carry: those logins are now
    linked to the resident, so the rules see the household (the person stays the same phone)."""
    if not resident.phone:
        return
    for user in db.session.execute(select(User).where(User.phone == resident.phone, User.resident_id.is_(None),
                                                      User.role.in_(STAFF_ROLES))).scalars():
        user.resident_id = resident.id
        user.resident = resident
