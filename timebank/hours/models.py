"""Time-bank help requests (邻里互助): a resident asks, a volunteer accepts, the minutes move on completion."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from timebank.people.models import Resident

from timebank.core.clock import utc_naive
from timebank.core.extensions import db

HELP_STATUSES = ("open", "accepted", "completed", "cancelled")


class HelpRequest(db.Model):
    """A request for neighbour help paid in time-bank minutes (时间银行 互助)."""

    __tablename__ = "help_requests"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'accepted', 'completed', 'cancelled')", name="status"),
        CheckConstraint("minutes > 0", name="minutes_positive"),
        CheckConstraint("volunteer_id IS NULL OR volunteer_id <> requester_id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), index=True)
    volunteer_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: The requester's own login, or the grid worker who confirmed on their behalf.
    completed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: ``requester`` or ``pool`` (the requester's household is labelled red).
    paid_by: Mapped[str | None] = mapped_column(String(12))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))

    requester: Mapped[Resident] = relationship(foreign_keys=[requester_id])
    volunteer: Mapped[Resident | None] = relationship(foreign_keys=[volunteer_id])
