"""What the monthly report keeps between runs: each community's totals at the end of each ended month."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from timebank.core.extensions import Model


class MonthTotals(Model):
    """A community's balances at the end of a month that has ended: the households' points, the
    residents' minutes and the time-bank pool's minutes.

    A cache, derived from the ledger and checked against it by ``timebank verify``: the monthly
    report starts from the nearest one instead of re-reading the history (docs/reports.md). Kept
    by the ``month_totals`` job for months that ended; a month that has ended cannot change, because
    a transaction is stamped with the time it is written (and a closed month refuses any)."""

    __tablename__ = "report_month_totals"
    __table_args__ = (
        UniqueConstraint("community_id", "month", name="uq_report_month_totals_community_month"),
        CheckConstraint("length(month) = 7", name="month_format"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: ``YYYY-MM`` in the deployment's time zone.
    month: Mapped[str] = mapped_column(String(7))
    #: The month's end (naive UTC), the moment the totals hold at.
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    households_points: Mapped[int] = mapped_column(BigInteger)
    residents_minutes: Mapped[int] = mapped_column(BigInteger)
    pool_minutes: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(DateTime)
