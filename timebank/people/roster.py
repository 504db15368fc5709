"""The roster: finding households and residents among thousands, and people changing.

* Lists are paged by keyset (never OFFSET): households in roster order, grid then name then id;
  residents by id. A page's cursor names the last row shown, so a page costs the same at the end of
  a 12,000-household roster as at its start, and a household added meanwhile neither repeats nor
  hides another.
* The search ``q`` looks at the household's name, address and card code and at its members' names,
  phones and card codes.
* Changes (household, resident, move, deactivate) are made by the committee and grid workers of the
  community (or an admin); each is written to the audit log with who and why. A change of a
  household's care label is also kept in ``care_label_changes``, which the database keeps
  append-only.
"""

from __future__ import annotations

import base64
import json

from sqlalchemy import exists, func, or_, select, tuple_, update
from sqlalchemy.orm import selectinload

from ledger.models import Account
from timebank.core import accounts
from timebank.core.accounts import AccountOwner
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict, ValidationFailed
from timebank.core.extensions import db
from timebank.core.policy import require_community
from timebank.core.users import STAFF_ROLES, ApiToken, User, person_key_for
from timebank.people.models import COLORS, CareLabelChange, Household, Resident

#: Who changes households and residents, moves and deactivates residents (and admin).
EDITORS = ("committee", "grid_worker")
#: Who reads the roster lists (and admin): a clerk finds a household at the till.
READERS = ("committee", "grid_worker", "supervisor", "clerk")


# --- cursors -----------------------------------------------------------------------------------------

def encode_key(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, ensure_ascii=False, separators=(",", ":")).encode()) \
        .decode().rstrip("=")


def decode_key(cursor: str | None, kinds: tuple[type, ...]) -> list | None:
    """The key a cursor names, checked against the kinds of its parts; 422 for anything else."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()) \
            if len(cursor) <= 1000 else None
    except (ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != len(kinds) or not all(
            _fits(part, kind) for part, kind in zip(key, kinds, strict=True)):
        raise ValidationFailed(errors={"cursor": ["Not a cursor returned by this list."]})
    return key


def _fits(part, kind: type) -> bool:
    """A cursor's part is of its kind and something the database can compare (no NUL, no huge number)."""
    if kind is int:
        return isinstance(part, int) and not isinstance(part, bool) and 0 <= part < 2**31
    return isinstance(part, str) and len(part) <= 300 and "\x00" not in part


# --- households --------------------------------------------------------------------------------------

def _like(column, text: str):
    return column.contains(text, autoescape=True)


def household_query(community_id: int, q: str | None = None, grid: str | None = None, color: str | None = None,
                    ids: list[int] | None = None):
    """The households of a community that match the filters (not ordered)."""
    query = select(Household).where(Household.community_id == community_id)
    if grid:
        query = query.where(Household.grid == grid)
    if color:
        query = query.where(Household.color == color)
    if ids is not None:
        query = query.where(Household.id.in_(ids))
    text = (q or "").strip()
    if text:
        code = text.upper()
        member = exists().where(Resident.household_id == Household.id,
                                or_(_like(Resident.name, text), _like(Resident.phone, text),
                                    Resident.member_code == code))
        query = query.where(or_(_like(Household.name, text), _like(Household.address, text),
                                Household.member_code == code, member))
    return query


def _roster_key():
    return (func.coalesce(Household.grid, ""), Household.name, Household.id)


def household_page(query, limit: int, cursor: str | None) -> tuple[list[Household], str | None]:
    """One page of ``query`` in roster order (grid, name, id) after ``cursor``; and the next cursor."""
    key = _roster_key()
    after = decode_key(cursor, (str, str, int))
    if after is not None:
        query = query.where(tuple_(*key) > tuple_(*after))
    rows = list(db.session.execute(
        query.options(selectinload(Household.members)).order_by(*key).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = encode_key([last.grid or "", last.name, last.id]) if more and last is not None else None
    return rows, next_cursor


def count(query) -> int:
    return db.session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()


def balances(household_ids: list[int]) -> dict[int, int]:
    """Points balances of many households in one query."""
    if not household_ids:
        return {}
    codes = {accounts.household_points(i): i for i in household_ids}
    rows = db.session.execute(select(Account.code, Account.balance).where(Account.code.in_(list(codes))))
    return {codes[code]: balance for code, balance in rows}


def grids(community_id: int) -> list[str]:
    return [g for (g,) in db.session.execute(
        select(Household.grid).where(Household.community_id == community_id).distinct().order_by(Household.grid)) if g]


# --- residents ---------------------------------------------------------------------------------------

def resident_query(community_id: int, q: str | None = None, household_id: int | None = None,
                   active: bool | None = None):
    query = select(Resident).join(Household, Household.id == Resident.household_id) \
        .where(Household.community_id == community_id)
    if household_id is not None:
        query = query.where(Resident.household_id == household_id)
    if active is not None:
        query = query.where(Resident.active.is_(active))
    text = (q or "").strip()
    if text:
        code = text.upper()
        query = query.where(or_(_like(Resident.name, text), _like(Resident.phone, text),
                                Resident.member_code == code, Household.member_code == code,
                                _like(Household.name, text), _like(Household.address, text)))
    return query


def resident_page(query, limit: int, cursor: str | None) -> tuple[list[Resident], str | None]:
    after = decode_key(cursor, (int,))
    if after is not None:
        query = query.where(Resident.id > after[0])
    rows = list(db.session.execute(
        query.options(selectinload(Resident.household)).order_by(Resident.id).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_key([rows[-1].id]) if more and rows else None)


# --- changes -----------------------------------------------------------------------------------------

HOUSEHOLD_FIELDS = ("name", "address", "grid", "color")
RESIDENT_FIELDS = ("name", "phone", "birth_year")


def _changed(target, fields: tuple[str, ...], changes: dict) -> dict:
    """Set the fields given in ``changes`` that differ; return {field: [before, after]}."""
    done = {}
    for field in fields:
        if field not in changes:
            continue
        before, after = getattr(target, field), changes[field]
        if before != after:
            setattr(target, field, after)
            done[field] = [before, after]
    return done


def change_household(user: User, household: Household, changes: dict, reason: str = "") -> dict:
    """Change a household's name, address, grid or care label; a new label is kept in its history."""
    require_community(user, household.community_id, *EDITORS)
    changes = dict(changes)
    if "name" in changes and not (changes["name"] or "").strip():
        raise ValidationFailed(errors={"name": ["A household has a name."]})
    if "color" in changes and changes["color"] not in COLORS:
        raise ValidationFailed(errors={"color": [f"Must be one of {', '.join(COLORS)}."]})
    if "address" in changes:
        changes["address"] = changes["address"] or ""
    if "grid" in changes:
        changes["grid"] = changes["grid"] or None
    before_color = household.color
    done = _changed(household, HOUSEHOLD_FIELDS, changes)
    if not done:
        return done
    db.session.flush()
    if "color" in done:
        db.session.add(CareLabelChange(household_id=household.id, community_id=household.community_id,
                                       changed_at=utc_naive(), user_id=user.id, actor=user.username,
                                       from_color=before_color, to_color=household.color, reason=reason or ""))
        db.session.flush()
    record("household.change", user=user, target=f"household:{household.id}", community_id=household.community_id,
           changes=done, reason=reason or "")
    return done


def care_label_history(household_id: int) -> list[CareLabelChange]:
    return list(db.session.execute(select(CareLabelChange).where(CareLabelChange.household_id == household_id)
                                   .order_by(CareLabelChange.id.desc())).scalars())


def logins_of(resident: Resident) -> list[User]:
    """Every login of this person: their resident login and any staff login linked to them."""
    return list(db.session.execute(select(User).where(User.resident_id == resident.id).order_by(User.id)).scalars())


def change_resident(user: User, resident: Resident, changes: dict, reason: str = "") -> dict:
    """Change a resident's name, phone or birth year. A login whose username is the old phone number
    takes the new one, so the person keeps logging in with the phone they have."""
    require_community(user, resident.household.community_id, *EDITORS)
    changes = dict(changes)
    if "name" in changes and not (changes["name"] or "").strip():
        raise ValidationFailed(errors={"name": ["A resident has a name."]})
    renamed: list[User] = []
    if "phone" in changes:
        phone = changes["phone"] or None
        changes["phone"] = phone
        if phone != resident.phone:
            if phone is not None and db.session.execute(
                    select(Resident.id).where(Resident.phone == phone, Resident.id != resident.id)).first():
                raise Conflict("A resident with this phone number exists.", code="phone_taken")
            renamed = [login for login in logins_of(resident)
                       if resident.phone is not None and login.username == resident.phone]
            if renamed and phone is None:
                raise ValidationFailed(errors={"phone": ["A resident who logs in needs a phone number."]})
            if renamed and db.session.execute(
                    select(User.id).where(User.username == phone, User.id.not_in([u.id for u in renamed]))).first():
                raise Conflict(f"The username {phone!r} is taken by another login.", code="username_taken")
    done = _changed(resident, RESIDENT_FIELDS, changes)
    if not done:
        return done
    for login in renamed:
        assert resident.phone is not None  # a login named by the phone keeps one (checked above)
        login.username = resident.phone
    if "phone" in done:
        # Staff logins linked to this person follow the phone too: the two-person rules name a person
        # by phone (``users.person_key``), and a login left on the old number would let a second
        # login made with the new one count as somebody else.
        for login in db.session.execute(select(User).where(User.resident_id == resident.id)).scalars():
            if login.role in STAFF_ROLES:
                login.phone = resident.phone
                login.person_key = person_key_for(resident.phone, resident.id)
    db.session.flush()
    # The phone is personal data: the log says that it changed and which logins followed, not the numbers.
    logged = {k: (v if k != "phone" else "changed") for k, v in done.items()}
    record("resident.change", user=user, target=f"resident:{resident.id}",
           community_id=resident.household.community_id, changes=logged,
           logins_renamed=[login.id for login in renamed], reason=reason or "")
    return done


def _require_active(resident: Resident) -> None:
    if not resident.active:
        raise Conflict("This resident has left; their record is kept as it was.", code="resident_inactive")


def move_resident(user: User, resident: Resident, target: Household | None, reason: str = "") -> Resident:
    """Move a person to another household of the same community. Points stay: they were earned for the
    household (the old household's wallet and its claims keep them). Minutes go with the person: they
    are on the resident's own account, which does not change."""
    community_id = resident.household.community_id
    require_community(user, community_id, *EDITORS)
    if target is None:
        raise ValidationFailed(errors={"household_id": ["No such household."]})
    if target.community_id != community_id:
        raise Conflict("A resident moves only to a household of the same community.", code="other_community")
    if target.id == resident.household_id:
        raise Conflict("The resident already lives in this household.", code="same_household")
    _require_active(resident)
    before = resident.household_id
    resident.household_id = target.id
    # The minutes account stays the person's; its owner row names the household they live in now.
    db.session.execute(update(AccountOwner).where(AccountOwner.resident_id == resident.id)
                       .values(household_id=target.id))
    db.session.flush()
    db.session.expire(resident, ["household"])
    record("resident.move", user=user, target=f"resident:{resident.id}", community_id=community_id,
           from_household_id=before, to_household_id=target.id, reason=reason or "")
    return resident


def deactivate_resident(user: User, resident: Resident, reason: str) -> Resident:
    """A resident who left or died: the record and its history stay; their logins are closed at once
    (no new login, bearer tokens revoked, page sessions ended); they earn, check in and receive minutes
    no more and show as inactive on the roster."""
    require_community(user, resident.household.community_id, *EDITORS)
    if not (reason or "").strip():
        raise ValidationFailed(errors={"reason": ["Say why (moved away, died...)."]})
    _require_active(resident)
    now = utc_naive()
    resident.active = False
    resident.left_at = now
    closed = logins_of(resident)
    for login in closed:
        login.active = False
        login.end_sessions()
    db.session.flush()
    if closed:
        db.session.execute(update(ApiToken).where(ApiToken.user_id.in_([u.id for u in closed]),
                                                  ApiToken.revoked_at.is_(None)).values(revoked_at=now))
    record("resident.deactivate", user=user, target=f"resident:{resident.id}",
           community_id=resident.household.community_id, household_id=resident.household_id,
           logins_closed=[u.id for u in closed], reason=reason.strip())
    return resident
