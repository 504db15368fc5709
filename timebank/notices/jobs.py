"""Scheduled jobs of the notices: sending the text messages of the outbox. Safe to run twice."""

from __future__ import annotations

from timebank.core.jobs import JobRun, job
from timebank.notices.delivery import send_due


@job("send_notices", "Send the notices' text messages that are due (retries with back-off; dead letters).",
     trigger="interval", minutes=1)
def send_notices():
    run = JobRun("send_notices")
    return run.result(**send_due(run=run))
