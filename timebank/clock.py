"""The time source. Code asks :func:`now` instead of ``datetime.now`` so tests can move time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock:
    """A clock that only moves when told to (tests, demo history)."""

    def __init__(self, moment: datetime):
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta) -> datetime:
        self.moment = self.moment + timedelta(**delta)
        return self.moment

    def set(self, moment: datetime) -> None:
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_system = SystemClock()


def clock():
    if has_app_context():
        return current_app.extensions.get("timebank.clock", _system)
    return _system


def now() -> datetime:
    """Aware UTC now."""
    return clock().now()


def utc_naive(moment: datetime | None = None) -> datetime:
    """The form stored in the database: naive UTC."""
    moment = moment or now()
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def local_zone() -> ZoneInfo:
    name = current_app.config.get("TIMEBANK_TIMEZONE", "Asia/Shanghai") if has_app_context() else "Asia/Shanghai"
    return ZoneInfo(name)


def to_local(moment: datetime | None) -> datetime | None:
    """A stored (naive UTC) or aware time in the deployment's time zone, with its offset."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(local_zone())


def local_today():
    return now().astimezone(local_zone()).date()
