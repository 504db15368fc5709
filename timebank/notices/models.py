"""Notices (通知): what the app tells a resident or a staff member, and how it reaches them.

One row is one notice to one person, written in the same transaction as the event it tells of (the
outbox): a claim approved, a sale charged to the household, stock running low... Whatever happens to
the event happens to its notice: rolled back together, or committed together.

Every notice shows on its person's notices page (read or unread). Beside that it has one way out
(``channel``), chosen when it is written:

* ``sms``: a text message to the person's phone through the SMS gateway, sent by the scheduled job
  ``send_notices`` with retries; after the last try it is a dead letter the committee sees.
* ``print``: a printed notice list for the grid worker, who hands it over and marks it delivered.
* ``page``: the page only (staff without a phone, residents when no gateway is set up, household
  members when another member of the household is told by text).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from timebank.core.clock import utc_naive
from timebank.core.extensions import Model

CHANNELS = ("page", "sms", "print")
#: ``none``: nothing to deliver (page only); ``pending``: to be sent (sms) or handed over (print);
#: ``sent``: the gateway took the text message; ``delivered``: handed over by a grid worker;
#: ``dead``: the gateway refused it, or every try failed (a dead letter).
STATUSES = ("none", "pending", "sent", "delivered", "dead")
EVENTS = (
    "claim_approved", "claim_rejected", "claim_objected", "publicity_ended", "points_expiring",
    "pay_code_used", "low_stock", "month_signoff_waiting",
)


class Notification(Model):
    """A notice to one resident (``resident_id``) or one staff login (``user_id``), with its delivery."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("(resident_id IS NULL) <> (user_id IS NULL)", name="one_recipient"),
        CheckConstraint("channel IN ('page', 'sms', 'print')", name="channel"),
        CheckConstraint("status IN ('none', 'pending', 'sent', 'delivered', 'dead')", name="status"),
        CheckConstraint("(channel = 'page') = (status = 'none')", name="page_has_no_delivery"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_notifications_resident_id_id", "resident_id", "id"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_due", "channel", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: The resident told (their notices page, their phone), or ...
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    #: ... the staff login told (clerks of low stock, the committee of a month to sign).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The household the notice is about, when it is about one (the printed list groups by it).
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    #: What happened: one of :data:`EVENTS`.
    event: Mapped[str] = mapped_column(String(40))
    #: The event's facts as JSON (a claim's title and points, a receipt's number...); the words are
    #: made from them when the notice is shown or sent, in the reader's language.
    payload: Mapped[str] = mapped_column(Text, default="{}")
    #: Set by events that a job finds again every day (points about to expire): one notice per key.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive, index=True)
    #: When the person marked it read on their page (or the API); NULL: unread.
    read_at: Mapped[datetime | None] = mapped_column(DateTime)

    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    #: Text messages: tries so far, when the next one is due, and why the last one failed.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    #: When the gateway took it (sms) or the grid worker handed it over (print), and who did.
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: When it became a dead letter.
    dead_at: Mapped[datetime | None] = mapped_column(DateTime)
