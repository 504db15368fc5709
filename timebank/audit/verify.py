"""Verifying the whole ledger: the chain, the balances and (when present) the checkpoints."""

from __future__ import annotations

from flask import current_app

import ledger
from timebank.core.extensions import db


def verify_everything() -> dict:
    report = ledger.verify(db.session)
    result = {
        "ok": report.ok,
        "size": report.size,
        "head_hash": report.head_hash,
        "problems": list(report.problems),
        "first_bad_transaction": report.first_bad_transaction,
        "notes": [],
    }
    # Further checks (checkpoint roots and signatures) register themselves here.
    for check in current_app.extensions.get("timebank.verify_hooks", []):
        check(result)
    result["ok"] = not result["problems"]
    return result
