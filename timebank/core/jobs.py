"""The registry of scheduled jobs. Features register their jobs here with :func:`job`.

A job is a function taking no arguments, run inside an app context; it must be safe to run twice
(doing nothing the second time). It flushes and never commits: the runner commits it as one unit
(:func:`timebank.core.boundary.run_job_once`).

A job that works through many items (claims, households) does each one inside :meth:`JobRun.item`,
its own savepoint. An item that is *refused* (see :func:`refusal`: a domain rule such as a closed
month, a rule of the ledger such as a wallet that would go below zero, a constraint the database
enforces) is rolled back alone, logged as a warning with its id and reason (logger
``timebank.core.jobs``: ``job NAME skipped ITEM: CODE: REASON``) and counted; the run goes on with
the other items and is committed. The job's result lists the skipped items under ``skipped``; the
next run meets them again, and does them once the refusal no longer holds. Anything else (a
database that is unavailable, a bug) is not a refusal: it stops the run, which is rolled back as a
whole and tried again at its next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from ledger import LedgerError
from timebank.core.errors import DomainError, Unavailable
from timebank.core.extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], object]
    #: APScheduler trigger arguments, e.g. {"trigger": "cron", "hour": 2} or {"trigger": "interval", "minutes": 5}.
    schedule: dict
    description: str


JOBS: dict[str, Job] = {}


def job(name: str, description: str, **schedule):
    def register(func):
        JOBS[name] = Job(name, func, schedule, description)
        return func

    return register


def refusal(exc: BaseException) -> tuple[str, str] | None:
    """``(code, reason)`` when ``exc`` refuses one item: a :class:`DomainError` (except
    :class:`Unavailable`, which means "not now"), a :class:`ledger.LedgerError`, or an integrity
    error of the database (a constraint or trigger refused a row). ``None`` for anything else,
    e.g. an ``OperationalError`` (the database is unavailable), which must stop the run."""
    if isinstance(exc, Unavailable):
        return None
    if isinstance(exc, DomainError):
        return exc.code, exc.detail
    if isinstance(exc, LedgerError):
        return exc.code, str(exc)
    if isinstance(exc, IntegrityError):
        text = str(exc.orig if exc.orig is not None else exc).strip()
        return "integrity_error", text.splitlines()[0] if text else type(exc).__name__
    return None


@dataclass
class Item:
    """One item of a run; ``done`` once its savepoint was released (false when it was skipped)."""

    label: str
    done: bool = False


class JobRun:
    """One run of a job over many items: each in its own savepoint, a refused one skipped."""

    def __init__(self, name: str):
        self.name = name
        #: ``{"item": label, "code": ..., "reason": ...}`` for each item skipped, in order.
        self.skipped: list[dict[str, str]] = []

    @contextmanager
    def item(self, label: str) -> Iterator[Item]:
        """Do one item (named ``label``, e.g. ``claim:12``) in a savepoint. A refusal rolls back
        this item only, is logged and recorded in :attr:`skipped`, and does not propagate; any
        other exception propagates (the whole run is rolled back)."""
        item = Item(label)
        try:
            with db.session.begin_nested():
                yield item
        except Exception as exc:
            found = refusal(exc)
            if found is None:
                raise
            code, reason = found
            self.skipped.append({"item": label, "code": code, "reason": reason})
            log.warning("job %s skipped %s: %s: %s", self.name, label, code, reason)
            return
        item.done = True

    def result(self, **done: Any) -> dict[str, Any]:
        """The job's result: what it did (``done``) and what it skipped, with why."""
        return {**done, "skipped": list(self.skipped)}


def skipped_in(result: object) -> list[dict[str, str]]:
    """The items a job's result says were skipped (none for a job that does not report them)."""
    if isinstance(result, dict):
        return list(result.get("skipped") or [])
    return []


def describe_skipped(skipped: list[dict[str, str]]) -> str:
    return "; ".join(f"{s['item']}: {s['code']}: {s['reason']}" for s in skipped)
