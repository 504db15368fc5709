"""Sending the text messages of the outbox: the job ``send_notices`` (every minute).

Each run takes the text messages that are due (at most :data:`BATCH`), sends each through the
gateway (:mod:`timebank.notices.sms`), and records what happened:

* taken by the gateway: ``sent``;
* refused for good (the gateway says so, or the person has no phone number any more), or failed
  :data:`MAX_ATTEMPTS` times: ``dead``, a dead letter on the committee's page, which sends it again
  or moves it to the printed list;
* failed otherwise (no answer, the gateway busy or broken): tried again after
  :data:`RETRY_MINUTES` (1, 5, 30 minutes, then 2 hours).

No transaction is held while the gateway answers (a slow gateway must not hold up the till): the
due messages are read in a reading transaction, which ends before the first one is sent; what
happened is written afterwards, each notice in its own savepoint. A notice changed meanwhile (the
committee sent a dead letter again) is left as it is. Two runs at once could send a message twice;
only the holder of the scheduler's lease runs jobs, and the message's ``id`` lets the gateway drop
a repeat.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from timebank.core import database
from timebank.core.clock import utc_naive
from timebank.core.extensions import db
from timebank.core.jobs import JobRun
from timebank.core.users import User
from timebank.notices import messages, sms
from timebank.notices.models import Notification
from timebank.people.models import Resident

#: Minutes to wait after the 1st, 2nd, 3rd and 4th failed try; the 5th failure makes a dead letter.
RETRY_MINUTES = (1, 5, 30, 120)
MAX_ATTEMPTS = len(RETRY_MINUTES) + 1
#: Text messages sent by one run at most; the rest wait for the next run.
BATCH = 100


def _phone(notice: Notification) -> str | None:
    if notice.resident_id is not None:
        resident = db.session.get(Resident, notice.resident_id)
        return resident.phone if resident is not None and resident.active else None
    user = db.session.get(User, notice.user_id)
    return user.phone if user is not None and user.active else None


def _due(moment: datetime) -> list[tuple[int, int, str | None, str]]:
    with database.reading():
        notices = db.session.execute(
            select(Notification).where(Notification.channel == "sms", Notification.status == "pending",
                                       Notification.next_attempt_at <= moment)
            .order_by(Notification.next_attempt_at, Notification.id).limit(BATCH)).scalars().all()
        due = [(n.id, n.attempts, _phone(n), messages.text_message(n)) for n in notices]
    db.session.rollback()  # the reading transaction ends here: nothing is held while the gateway answers
    return due


def _send(gateway, notice_id: int, phone: str | None, words: str) -> sms.SendFailed | None:
    if not phone:
        return sms.SendFailed("no phone number", permanent=True)
    try:
        gateway.send(sms.TextMessage(f"notice-{notice_id}", phone, words))
    except sms.SendFailed as failed:
        return failed
    except Exception as exc:  # noqa: BLE001 - a gateway of one's own failing is a failed try, not a failed run
        return sms.SendFailed(f"{type(exc).__name__}: {exc}")
    return None


def send_due(run: JobRun | None = None, moment: datetime | None = None) -> dict:
    """Send the text messages that are due; ``{"sent": [ids], "retrying": [ids], "dead": [ids]}``.

    Call it at the start of a unit of work (it ends the reading transaction it begins)."""
    run = run if run is not None else JobRun("send_notices")
    done: dict[str, list[int]] = {"sent": [], "retrying": [], "dead": []}
    gateway = sms.gateway()
    if gateway is None:
        return done
    moment = utc_naive(moment) if moment is not None else utc_naive()
    outcomes = [(notice_id, attempts, _send(gateway, notice_id, phone, words))
                for notice_id, attempts, phone, words in _due(moment)]
    for notice_id, attempts, failed in outcomes:
        with run.item(f"notice:{notice_id}") as item:
            state = _record(notice_id, attempts, failed)
        if item.done and state:
            done[state].append(notice_id)
    return done


def _record(notice_id: int, attempts: int, failed: sms.SendFailed | None) -> str | None:
    notice = db.session.get(Notification, notice_id, with_for_update=True)
    if notice is None or notice.status != "pending" or notice.channel != "sms" or notice.attempts != attempts:
        return None  # changed meanwhile
    at = utc_naive()
    notice.attempts = attempts + 1
    if failed is None:
        notice.status, notice.delivered_at, notice.next_attempt_at, notice.last_error = "sent", at, None, None
        state = "sent"
    elif failed.permanent or notice.attempts >= MAX_ATTEMPTS:
        notice.status, notice.dead_at, notice.next_attempt_at = "dead", at, None
        notice.last_error = failed.reason[:500]
        state = "dead"
    else:
        notice.next_attempt_at = at + timedelta(minutes=RETRY_MINUTES[notice.attempts - 1])
        notice.last_error = failed.reason[:500]
        state = "retrying"
    db.session.flush()
    return state
