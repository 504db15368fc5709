"""The time source. Code asks :func:`now` instead of ``datetime.now`` so tests can move time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import overload
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, demo history)."""

    def __init__(self, moment: datetime):
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta) -> datetime:
        self.moment = self.moment + timedelta(**delta)
        return self.moment

    def set(self, moment: datetime) -> None:
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_system = SystemClock()


def clock():
    if has_app_context():
        return current_app.extensions.get("timebank.core.clock", _system)
    return _system


def now() -> datetime:
    """Aware UTC now."""
    return clock().now()


def utc_naive(moment: datetime | None = None) -> datetime:
    """The form stored in the database: naive UTC."""
    moment = moment or now()
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def local_zone() -> ZoneInfo:
    name = current_app.config.get("TIMEBANK_TIMEZONE", "Asia/Shanghai") if has_app_context() else "Asia/Shanghai"
    return ZoneInfo(name)


@overload
def to_local(moment: datetime) -> datetime: ...
@overload
def to_local(moment: None) -> None: ...
def to_local(moment: datetime | None) -> datetime | None:
    """A stored (naive UTC) or aware time in the deployment's time zone, with its offset."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(local_zone())


def local_today():
    return now().astimezone(local_zone()).date()


_MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def parse_month(month: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month); a ValidationFailed (422) for anything else."""
    from timebank.core.errors import ValidationFailed

    match = _MONTH_RE.fullmatch(month or "")
    if not match:
        raise ValidationFailed(errors={"month": ["Use YYYY-MM, e.g. 2026-03."]})
    year = int(match.group(1))
    if not 1900 <= year <= 9998:  # year 1 or 9999 would overflow when converted to UTC or stepped past
        raise ValidationFailed(errors={"month": ["A month between 1900-01 and 9998-12."]})
    return year, int(match.group(2))


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The month's start and end (exclusive) as naive UTC, months being those of the deployment's zone."""
    year, mon = parse_month(month)
    zone = local_zone()
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return utc_naive(start), utc_naive(end)


def current_month() -> str:
    """This month in the deployment's time zone, ``YYYY-MM``."""
    return to_local(utc_naive()).strftime("%Y-%m")


def months_before(month: str, count: int) -> list[str]:
    """``count`` months ending with ``month`` (``YYYY-MM``), oldest first."""
    year, number = (int(p) for p in month.split("-"))
    out = []
    for _i in range(count):
        out.append(f"{year:04d}-{number:02d}")
        number -= 1
        if number == 0:
            year, number = year - 1, 12
    return out[::-1]
