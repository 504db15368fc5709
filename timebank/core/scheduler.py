"""Running the scheduled jobs (APScheduler 3): ``timebank scheduler`` and ``timebank jobs run NAME``.

Only one scheduler acts per deployment, even when two are started (two servers, a restart that
overlaps): before each job a scheduler must hold the lease row ``scheduler_leases.jobs``. Taking or
renewing it is one atomic UPDATE (``... WHERE holder = me OR expires_at <= now``) or, the first time,
an INSERT that only one writer can win. A scheduler that stops renewing loses the lease when it
expires, and another takes over.

Jobs register themselves in :data:`timebank.core.jobs.JOBS` with ``@job`` when their module is imported:
each feature imports its jobs when the app factory plugs it in, and :func:`load_jobs` adds the
modules named in ``TIMEBANK_JOB_MODULES``.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import Any, cast

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import DateTime, String, insert, or_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.local import LocalProxy

from timebank.core import boundary
from timebank.core.clock import utc_naive
from timebank.core.extensions import Model, db
from timebank.core.jobs import JOBS, describe_skipped, skipped_in


class SchedulerLease(Model):
    """Who runs the scheduled jobs: only the holder of an unexpired lease acts."""

    __tablename__ = "scheduler_leases"

    #: The lease's name (one per deployment: ``jobs``).
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Which scheduler process holds it: host, process id and a random part.
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    acquired_at: Mapped[datetime] = mapped_column(DateTime)


log = logging.getLogger(__name__)

LEASE_NAME = "jobs"


def load_jobs(app=None) -> dict:
    """The registered jobs: the features register theirs when the app factory plugs them in; modules
    named in ``TIMEBANK_JOB_MODULES`` add more."""
    for name in (app or current_app).config.get("TIMEBANK_JOB_MODULES", ()):
        importlib.import_module(name)
    return JOBS


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def acquire_lease(holder: str, seconds: int, name: str = LEASE_NAME) -> bool:
    """Take or renew the lease for ``seconds``; True when ``holder`` holds it now. Commits."""
    moment = utc_naive()
    expires = moment + timedelta(seconds=seconds)
    try:
        result = cast("CursorResult[Any]", db.session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.name == name,
                   or_(SchedulerLease.holder == holder, SchedulerLease.expires_at <= moment))
            .values(holder=holder, expires_at=expires, acquired_at=moment)
        ))
        if result.rowcount == 1:
            db.session.commit()
            return True
        exists = db.session.get(SchedulerLease, name) is not None
        if exists:
            db.session.rollback()
            return False
        db.session.execute(insert(SchedulerLease).values(name=name, holder=holder, expires_at=expires,
                                                         acquired_at=moment))
        db.session.commit()
        return True
    except IntegrityError:  # another scheduler inserted the row first
        db.session.rollback()
        return False


def release_lease(holder: str, name: str = LEASE_NAME) -> None:
    db.session.execute(update(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder)
                       .values(expires_at=utc_naive()))
    db.session.commit()


def run_job(name: str):
    """Run one job now in the current app context (no lease: for operators and tests)."""
    load_jobs()
    if name not in JOBS:
        raise KeyError(name)
    return boundary.run_job_once(JOBS[name].func)


class LeasedRunner:
    """Runs jobs for one scheduler process, only while it holds the deployment's lease."""

    def __init__(self, app, holder: str | None = None, lease_seconds: int | None = None):
        self.app = app
        self.holder = holder or new_holder()
        self.lease_seconds = lease_seconds or int(app.config.get("TIMEBANK_SCHEDULER_LEASE_SECONDS", 90))

    def holds_lease(self) -> bool:
        with self.app.app_context():
            try:
                return acquire_lease(self.holder, self.lease_seconds)
            finally:
                db.session.remove()

    def run(self, name: str) -> bool:
        """Run job ``name`` if this process holds the lease. Returns whether it ran."""
        if not self.holds_lease():
            log.info("job %s skipped: another scheduler holds the lease", name)
            return False
        with self.app.app_context():
            try:
                result = boundary.run_job_once(JOBS[name].func)
            except Exception:
                log.exception("job %s failed", name)
                raise
        skipped = skipped_in(result)
        if skipped:
            log.warning("job %s done, %d skipped (refused; the next run meets them again): %s", name, len(skipped),
                        describe_skipped(skipped))
        else:
            log.info("job %s done: %s", name, result)
        return True

    def build(self, blocking: bool = True):
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler

        with self.app.app_context():
            load_jobs(self.app)
        cls = BlockingScheduler if blocking else BackgroundScheduler
        scheduler = cls(timezone=self.app.config.get("TIMEBANK_TIMEZONE", "Asia/Shanghai"))
        for name, item in JOBS.items():
            scheduler.add_job(self.run, args=[name], id=name, name=item.description, coalesce=True,
                              max_instances=1, misfire_grace_time=300, **item.schedule)
        # Renew well before expiry, so the holder keeps it while it lives.
        scheduler.add_job(self.holds_lease, "interval", seconds=max(5, self.lease_seconds // 3),
                          id="_lease", coalesce=True, max_instances=1)
        return scheduler


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """Run the scheduled jobs in the foreground (only the lease holder acts; start one per deployment).

    The database is marked in use while it runs: `timebank restore` refuses until it stops."""
    from timebank.core import in_use

    if not logging.getLogger().handlers:
        # One line per job run and per skipped item, with the time (the journal under systemd).
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    app = cast("LocalProxy[Flask]", current_app)._get_current_object()
    in_use.ensure(app.config)
    runner = LeasedRunner(app)
    scheduler = runner.build(blocking=True)
    # Taken again if the database could not be reached at start (a flag check once held).
    scheduler.add_job(in_use.ensure, "interval", args=[app.config], seconds=30, id="_in_use",
                      coalesce=True, max_instances=1)
    click.echo(f"scheduler {runner.holder}: jobs {', '.join(sorted(JOBS))}")
    if runner.holds_lease():
        click.echo("holding the lease: this scheduler runs the jobs")
    else:
        click.echo("another scheduler holds the lease: standing by")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        release_lease(runner.holder)


@click.group("jobs")
def jobs_group():
    """Scheduled jobs: list them, or run one now."""


@jobs_group.command("list")
@with_appcontext
def jobs_list_command():
    """List the registered jobs and their schedules."""
    for name, item in sorted(load_jobs().items()):
        click.echo(f"{name}\t{item.schedule}\t{item.description}")


@jobs_group.command("run")
@click.argument("name")
@with_appcontext
def jobs_run_command(name):
    """Run one scheduled job once now."""
    jobs = load_jobs()
    if name not in jobs:
        raise click.ClickException(f"no job {name!r}; known: {', '.join(sorted(jobs))}")
    result = run_job(name)
    skipped = skipped_in(result)
    shown = {k: v for k, v in result.items() if k != "skipped"} if isinstance(result, dict) else result
    click.echo(f"{name}: done {shown if shown is not None else ''}".rstrip())
    if skipped:
        click.echo(f"{name}: {len(skipped)} skipped (refused; the next run meets them again):")
        for s in skipped:
            click.echo(f"  skipped {s['item']}: {s['code']}: {s['reason']}")


COMMANDS = (scheduler_command, jobs_group)
