"""Where work is committed: once, at the edge of a request, a scheduled job or a command.

Operations (every feature's ``operations``) and views only ``flush()``; they never commit. The edge
decides:

* a request: :class:`timebank.core.app.TimebankFlask` commits when the view has returned (whatever
  the status: a view that refuses either raises, which rolls everything back, or rolls back itself
  before answering, and an idempotent write stores its refusal on purpose). A failure at commit
  (a full disk, an I/O error while SQLite syncs the WAL, a read-only file system, PostgreSQL gone
  at COMMIT) is :class:`CommitFailed`: 503 ``service_unavailable``, whose detail says the outcome
  is not known and that a retry with the same ``Idempotency-Key`` returns what really happened
  (the key's record commits with the work, or not at all). Streamed bodies are read after the
  commit.
* a scheduled job: :func:`run_job_once` (used by ``timebank jobs run`` and the scheduler). A job
  over many items does each one in a savepoint (:meth:`timebank.core.jobs.JobRun.item`), so a
  refused item is rolled back alone and the rest of the run is still committed.
* a command: :func:`command` around a click callback.

Any exception rolls the whole unit back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError

from timebank.core.errors import Unavailable
from timebank.core.extensions import db
from timebank.core.problems import driver_error_classes

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block did, or roll it all back if it raises."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


class CommitFailed(Unavailable):
    """The request's commit failed: its outcome is not known to this process."""

    title = "Service unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The database could not confirm this write, so it may or may not have been saved. Send the same "
            "request again with the same Idempotency-Key to learn what happened; without a key, check first.")


def _discard_session() -> None:
    """Give up the failed transaction; the connection may be gone, so a failure here is expected."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a dead connection cannot roll back; the pool discards it
        pass
    db.session.remove()


@contextmanager
def commit_outcome(*refusals: type[BaseException]) -> Iterator[None]:
    """Around a commit: a failure of the database or the connection there is :class:`CommitFailed`
    (503, outcome unknown), the session given up. A constraint checked at commit (``IntegrityError``,
    and ``refusals``) is the request's fault and passes as it is."""
    passing: tuple[type[BaseException], ...] = (IntegrityError, *refusals)
    try:
        yield
    except passing:
        raise
    except Exception as exc:
        if not isinstance(exc, (DBAPIError, *driver_error_classes())):
            raise
        _discard_session()
        raise CommitFailed() from exc


def finish_request() -> None:
    """The request's commit (see the module docs)."""
    with commit_outcome():
        db.session.commit()


def command(func: F) -> F:
    """A click command's callback as one unit of work."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with unit_of_work():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def run_job_once(func: Callable[[], Any]) -> Any:
    """A scheduled job as one unit of work; the session is cleared afterwards."""
    try:
        with unit_of_work():
            return func()
    finally:
        db.session.remove()
