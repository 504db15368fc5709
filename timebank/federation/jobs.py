"""Scheduled job of the federation feature: expired vouchers' minutes go back. Safe to run twice; the
job runner commits. Each voucher is one item of the run (:class:`timebank.core.jobs.JobRun`)."""

from __future__ import annotations

from timebank.core.jobs import JobRun, job
from timebank.federation.operations import return_expired


@job("voucher_expiry", "Give back the minutes of expired hour vouchers that the receiver's statement shows "
                       "unredeemed.",
     trigger="interval", hours=1)
def voucher_expiry():
    run = JobRun("voucher_expiry")
    return run.result(returned=return_expired(run=run))
