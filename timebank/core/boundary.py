"""Where work is committed: once, at the edge of a request, a scheduled job or a command.

Operations (every feature's ``operations``) and views only ``flush()``; they never commit. The edge
decides:

* a request: :class:`timebank.core.app.TimebankFlask` commits when the view has returned (whatever
  the status: a view that refuses either raises, which rolls everything back, or rolls back itself
  before answering, and an idempotent write stores its refusal on purpose). A failure at commit is
  an exception like any other, answered by :mod:`timebank.core.problems`. Streamed bodies are read
  after the commit.
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

from timebank.core.extensions import db

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


def finish_request() -> None:
    """The request's commit (see the module docs)."""
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
