"""Scheduled jobs of the earning feature. Each is safe to run twice; the job runner commits."""

from __future__ import annotations

from timebank.core.jobs import job
from timebank.earning.expiry import expire_points as _expire_points
from timebank.earning.operations import close_publicity as _close_publicity


@job("close_publicity", "Post the claims whose publicity (公示) has ended.", trigger="interval", minutes=5)
def close_publicity():
    posted = _close_publicity()
    return {"posted": posted}


@job("expire_points", "Expire points per community policy (none, annual, rolling), as ledger transactions.",
     trigger="cron", hour=0, minute=30)
def expire_points():
    expired = _expire_points()
    return {"expired": expired}
