"""The registry of scheduled jobs. Features register their jobs here with :func:`job`.

A job is a function taking no arguments, run inside an app context; it must be safe to run twice
(doing nothing the second time). It flushes and never commits: the runner commits it as one unit
(:func:`timebank.core.boundary.run_job_once`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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
