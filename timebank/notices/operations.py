"""Telling people what happened: the outbox (:func:`notify_resident`, :func:`notify_household`,
:func:`notify_staff`), reading and marking notices, dead letters and the printed list.

Features call the ``notify_*`` functions inside the operation whose event they tell of, so the notice
is written in the same transaction as the event: a refused or rolled-back event leaves no notice, and
a committed one always has its notice. They write on the driver's cursor (one statement for the
people, one for the notices), since one of them runs in every sale at the till.

How a notice leaves (``channel``, decided when it is written, docs/earning.md "Notifications"):

* a resident with a phone, when an SMS gateway is set up: ``sms``;
* a resident without a phone: ``print``, the grid worker's printed list; for a notice about the
  whole household (points expiring, a sale), only when nobody in the household has a phone (those
  with a phone are told, and tell the others); the others see it on the page only;
* a staff login: ``sms`` with a phone and a gateway, else the page only.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import func, select, update

from ledger import driver
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict, NotFound
from timebank.core.extensions import db
from timebank.core.policy import require_community
from timebank.core.users import User, same_person
from timebank.notices import sms
from timebank.notices.models import EVENTS, Notification
from timebank.people.models import Community, Household, Resident

#: Who sees the dead letters and puts them back on their way.
DEAD_LETTER_READERS = ("committee", "supervisor")
DEAD_LETTER_WRITERS = ("committee",)
#: Who prints the notice list and marks notices handed over.
PRINTERS = ("committee", "grid_worker")
PRINT_READERS = ("committee", "grid_worker", "supervisor")

_COLUMNS = ("community_id", "resident_id", "user_id", "household_id", "event", "payload", "dedupe_key",
            "created_at", "channel", "status", "attempts", "next_attempt_at")

_SQL = driver.per_dialect({
    "members": "SELECT r.id, r.phone FROM residents r WHERE r.household_id = {household} AND r.active"
               " ORDER BY r.id",
    "resident": "SELECT r.id, r.phone, r.household_id, h.community_id FROM residents r"
                " JOIN households h ON h.id = r.household_id WHERE r.id = {resident}",
})


def _payload(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)


def _row(community_id: int, event: str, payload: str, moment, channel: str, *, resident_id=None, user_id=None,
         household_id=None, dedupe_key=None) -> tuple:
    if event not in EVENTS:
        raise ValueError(f"unknown notice event {event!r}")
    status = {"page": "none", "sms": "pending", "print": "pending"}[channel]
    return (community_id, resident_id, user_id, household_id, event, payload, dedupe_key, moment, channel, status, 0,
            moment if channel == "sms" else None)


def _write(rows: list[tuple], dialect: str) -> int:
    """Insert the notices not yet written under their dedupe key; the number written."""
    keys = [row[6] for row in rows if row[6] is not None]
    if keys:
        taken = set(db.session.execute(
            select(Notification.dedupe_key).where(Notification.dedupe_key.in_(keys))).scalars())
        rows = [row for row in rows if row[6] is None or row[6] not in taken]
    rows = [(*row[:7], driver.timestamp(dialect, row[7]), *row[8:11],
             driver.timestamp(dialect, row[11]) if row[11] is not None else None) for row in rows]
    driver.insert_rows(db.session, Notification.__tablename__, _COLUMNS, rows)
    return len(rows)


def _keyed(dedupe_key: str | None, who: str) -> str | None:
    return f"{dedupe_key}:{who}" if dedupe_key else None


def notify_resident(resident_id: int, event: str, payload: dict, *, household_id: int | None = None,
                    dedupe_key: str | None = None, moment: datetime | None = None) -> int:
    """Tell one resident (a claim of theirs): by text message to their phone, or on the printed list
    when they have none. Returns the number of notices written (0 or 1)."""
    cursor, dialect = driver.cursor(db.session)
    cursor.execute(_SQL[dialect]["resident"], {"resident": resident_id})
    found = cursor.fetchone()
    if found is None:
        return 0
    rid, phone, own_household, community_id = found
    channel = ("sms" if sms.enabled() else "page") if phone else "print"
    row = _row(community_id, event, _payload(payload), moment or utc_naive(), channel, resident_id=rid,
               household_id=household_id or own_household, dedupe_key=_keyed(dedupe_key, f"resident:{rid}"))
    return _write([row], dialect)


def notify_household(household_id: int, community_id: int, event: str, payload: dict, *,
                     dedupe_key: str | None = None, moment: datetime | None = None) -> int:
    """Tell every active member of a household (points about to expire, a sale charged to it): each
    on their page; by text message those with a phone; on the printed list, when nobody in the
    household has a phone, every member. Returns the number of notices written."""
    cursor, dialect = driver.cursor(db.session)
    cursor.execute(_SQL[dialect]["members"], {"household": household_id})
    members = cursor.fetchall()
    anyone_has_phone = any(phone for _rid, phone in members)
    texting = sms.enabled()
    text = _payload(payload)
    moment = moment or utc_naive()
    rows = []
    for rid, phone in members:
        if phone:
            channel = "sms" if texting else "page"
        else:
            channel = "page" if anyone_has_phone else "print"
        rows.append(_row(community_id, event, text, moment, channel, resident_id=rid, household_id=household_id,
                         dedupe_key=_keyed(dedupe_key, f"resident:{rid}")))
    return _write(rows, dialect)


def notify_staff(community_id: int, roles: tuple[str, ...], event: str, payload: dict, *,
                 besides: User | None = None, dedupe_key: str | None = None, moment: datetime | None = None) -> int:
    """Tell the active staff logins of a community with one of ``roles`` (clerks of low stock, the
    committee of a month waiting for its second sign-off), leaving out ``besides``' person. Returns
    the number of notices written."""
    users = db.session.execute(
        select(User).where(User.community_id == community_id, User.role.in_(roles), User.active.is_(True))
        .order_by(User.id)).scalars().all()
    texting = sms.enabled()
    text = _payload(payload)
    moment = moment or utc_naive()
    rows = [_row(community_id, event, text, moment, "sms" if texting and user.phone else "page", user_id=user.id,
                 dedupe_key=_keyed(dedupe_key, f"user:{user.id}"))
            for user in users if besides is None or not same_person(user, besides)]
    return _write(rows, driver.dialect_name(db.session))


def told_since(household_id: int, event: str, since: datetime) -> bool:
    """Whether the household was told of ``event`` since ``since``."""
    return db.session.execute(
        select(Notification.id).where(Notification.household_id == household_id, Notification.event == event,
                                      Notification.created_at >= since).limit(1)).first() is not None


# --- a person's own notices --------------------------------------------------------------------------

def mine(user: User):
    """A condition on :class:`Notification`: the notices of this login's person (a resident login:
    the resident's; a staff login: its own)."""
    if user.role == "resident":
        return Notification.resident_id == (user.resident_id if user.resident_id is not None else -1)
    return Notification.user_id == user.id


def my_notices(user: User, unread_only: bool = False):
    query = select(Notification).where(mine(user))
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query


def unread_count(user: User) -> int:
    return db.session.execute(
        select(func.count()).select_from(Notification).where(mine(user), Notification.read_at.is_(None))).scalar_one()


def my_notice(user: User, notice_id: int) -> Notification:
    notice = db.session.execute(select(Notification).where(Notification.id == notice_id, mine(user))
                                ).scalar_one_or_none()
    if notice is None:
        raise NotFound("No such notice.")
    return notice


def mark_read(user: User, notice_id: int) -> Notification:
    """Mark one of one's own notices read (again: nothing changes)."""
    notice = my_notice(user, notice_id)
    if notice.read_at is None:
        notice.read_at = utc_naive()
        db.session.flush()
    return notice


def mark_all_read(user: User) -> int:
    result = db.session.execute(
        update(Notification).where(mine(user), Notification.read_at.is_(None)).values(read_at=utc_naive())
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


# --- dead letters (the committee) ---------------------------------------------------------------------

def dead_letters(user: User, community: Community):
    require_community(user, community.id, *DEAD_LETTER_READERS)
    return select(Notification).where(Notification.community_id == community.id, Notification.status == "dead")


def _dead_letter(user: User, notice_id: int) -> Notification:
    notice = db.session.get(Notification, notice_id, with_for_update=True)
    if notice is None:
        raise NotFound("No such notice.")
    require_community(user, notice.community_id, *DEAD_LETTER_WRITERS)
    if notice.status != "dead":
        raise Conflict("Only a dead letter is sent again or printed.", code="notice_not_dead")
    return notice


def retry(user: User, notice_id: int) -> Notification:
    """Put a dead letter back on its way: tried again by the next run of ``send_notices``, with a
    fresh count of tries."""
    notice = _dead_letter(user, notice_id)
    notice.status, notice.attempts, notice.dead_at = "pending", 0, None
    notice.next_attempt_at = utc_naive()
    db.session.flush()
    record("notice.retry", user=user, community_id=notice.community_id, target=f"notice:{notice.id}",
           last_error=notice.last_error)
    return notice


def print_instead(user: User, notice_id: int) -> Notification:
    """Hand a dead letter over on paper: it moves to the grid worker's printed list (residents only)."""
    notice = _dead_letter(user, notice_id)
    if notice.resident_id is None:
        raise Conflict("Only a notice to a resident goes on the printed list.", code="notice_not_printable")
    notice.channel, notice.status, notice.dead_at, notice.next_attempt_at = "print", "pending", None, None
    db.session.flush()
    record("notice.print", user=user, community_id=notice.community_id, target=f"notice:{notice.id}",
           last_error=notice.last_error)
    return notice


# --- the printed list (grid workers) ------------------------------------------------------------------

def print_list(user: User, community: Community, grid: str | None = None):
    """Notices waiting to be handed over, with their resident and household, by grid and household."""
    require_community(user, community.id, *PRINT_READERS)
    query = (select(Notification, Resident, Household)
             .join(Resident, Resident.id == Notification.resident_id)
             .join(Household, Household.id == Resident.household_id)
             .where(Notification.community_id == community.id, Notification.channel == "print",
                    Notification.status == "pending"))
    if grid:
        query = query.where(Household.grid == grid)
    return query.order_by(Household.grid, Household.name, Household.id, Resident.id, Notification.id)


def grids(community: Community) -> list[str]:
    """The grids that have notices waiting on paper."""
    return [g for g in db.session.execute(
        select(Household.grid).join(Notification, Notification.household_id == Household.id)
        .where(Notification.community_id == community.id, Notification.channel == "print",
               Notification.status == "pending", Household.grid.isnot(None))
        .group_by(Household.grid).order_by(Household.grid)).scalars()]


def mark_delivered(user: User, notice_id: int) -> Notification:
    """A grid worker handed the printed notice over."""
    notice = db.session.get(Notification, notice_id, with_for_update=True)
    if notice is None:
        raise NotFound("No such notice.")
    require_community(user, notice.community_id, *PRINTERS)
    if notice.channel != "print":
        raise Conflict("This notice is not on the printed list.", code="notice_not_printed")
    if notice.status == "delivered":
        return notice
    notice.status, notice.delivered_at, notice.delivered_by_user_id = "delivered", utc_naive(), user.id
    db.session.flush()
    record("notice.delivered", user=user, community_id=notice.community_id, target=f"notice:{notice.id}",
           resident_id=notice.resident_id)
    return notice
