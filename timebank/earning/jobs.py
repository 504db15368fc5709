"""Scheduled jobs of the earning feature. Each is safe to run twice; the job runner commits.

Each claim or household is one item of the run (:class:`timebank.core.jobs.JobRun`): a refused one
is skipped and reported under ``skipped``, and the others are done."""

from __future__ import annotations

from timebank.core.jobs import JobRun, job
from timebank.earning import deductions as _deductions
from timebank.earning import honours as _honours
from timebank.earning.expiry import expire_points as _expire_points
from timebank.earning.expiry import warn_expiring as _warn_expiring
from timebank.earning.operations import close_publicity as _close_publicity


@job("close_publicity", "Post the claims whose publicity (公示) has ended.", trigger="interval", minutes=5)
def close_publicity():
    run = JobRun("close_publicity")
    return run.result(posted=_close_publicity(run=run))


@job("expire_points", "Expire points per community policy (none, annual, rolling), as ledger transactions.",
     trigger="cron", hour=0, minute=30)
def expire_points():
    run = JobRun("expire_points")
    return run.result(expired=_expire_points(run=run))


@job("warn_expiring_points", "Tell households whose points expire within 30 days (a notice to each member).",
     trigger="cron", hour=9, minute=0)
def warn_expiring_points():
    run = JobRun("warn_expiring_points")
    return run.result(told=_warn_expiring(run=run))


@job("close_honour_publicity", "Award the honours whose publicity (公示) has ended, crediting their points once.",
     trigger="interval", minutes=5)
def close_honour_publicity():
    run = JobRun("close_honour_publicity")
    return run.result(awarded=_honours.close_publicity(run=run))


@job("review_honours", "Put held honours up for their half-yearly review (半年一审核) when due; end those "
     "whose term is over. Runs daily; acts only on the due ones.", trigger="cron", hour=1, minute=20)
def review_honours():
    run = JobRun("review_honours")
    return run.result(**_honours.review_due(run=run))


@job("close_deduction_publicity", "Apply the deductions (扣分) whose publicity (公示) has ended, never below zero.",
     trigger="interval", minutes=5)
def close_deduction_publicity():
    run = JobRun("close_deduction_publicity")
    return run.result(applied=_deductions.close_publicity(run=run))
