"""A simulation of the ledger against a simple in-memory model.

Hypothesis drives random grants, transfers, reversals, idempotent retries, key reuse and refused
spends; after every step the invariants are checked: postings sum to zero per unit, no wallet below
zero, the cached balances equal a replay of the postings, the hash chain verifies, and the balances
equal the model's.

How many runs, and how long, comes from the Hypothesis profile (tests/conftest.py). Each run starts
from an empty database, so a failing run replays alone from the steps Hypothesis prints, and the
per-step verification reads one run's ledger rather than every earlier run's.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

import ledger
from ledger import Leg
from ledger.models import Posting
from timebank.core.extensions import db

WALLETS = ["w1", "w2", "w3"]
HOURS = ["h1", "h2"]


def make_machine(app, reset_database):
    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self):
            reset_database(app)
            self.ctx = app.app_context()
            self.ctx.push()
            s = db.session
            self.model = {}
            for code in WALLETS:
                ledger.open_account(s, code, "points")
                self.model[code] = 0
            for code in HOURS:
                ledger.open_account(s, code, "minutes")
                self.model[code] = 0
            ledger.open_account(s, "issuer", "points", allow_negative=True)
            ledger.open_account(s, "pool", "minutes", allow_negative=True)
            self.model["issuer"] = 0
            self.model["pool"] = 0
            s.commit()
            self.posted = []  # (tx id, {code: delta}, reversed?)
            self.keys = {}  # key -> (tx id, request)
            self.key_counter = 0

        def teardown(self):
            db.session.remove()
            self.ctx.pop()

        def _apply(self, deltas):
            for code, delta in deltas.items():
                self.model[code] += delta

        def _post(self, deltas, kind, key=None):
            legs = [Leg(code, amount) for code, amount in deltas.items() if amount]
            tx = ledger.post(db.session, legs, kind=kind, idempotency_key=key)
            db.session.commit()
            return tx

        @rule(to=st.sampled_from(WALLETS), amount=st.integers(1, 50))
        def grant(self, to, amount):
            deltas = {"issuer": -amount, to: amount}
            tx = self._post(deltas, "grant")
            self._apply(deltas)
            self.posted.append([tx.id, deltas, False])

        @rule(to=st.sampled_from(HOURS), minutes=st.integers(1, 240))
        def deposit_hours(self, to, minutes):
            deltas = {"pool": -minutes, to: minutes}
            tx = self._post(deltas, "deposit")
            self._apply(deltas)
            self.posted.append([tx.id, deltas, False])

        @rule(src=st.sampled_from(WALLETS), dst=st.sampled_from(WALLETS), amount=st.integers(1, 80))
        def transfer(self, src, dst, amount):
            if src == dst:
                return
            deltas = {src: -amount, dst: amount}
            if self.model[src] < amount:
                with pytest.raises(ledger.InsufficientFunds):
                    self._post(deltas, "transfer")
                db.session.rollback()
                return
            tx = self._post(deltas, "transfer")
            self._apply(deltas)
            self.posted.append([tx.id, deltas, False])

        @precondition(lambda self: self.posted)
        @rule(pick=st.integers(0, 10_000))
        def reverse(self, pick):
            entry = self.posted[pick % len(self.posted)]
            tx_id, deltas, reversed_already = entry
            negated = {code: -amount for code, amount in deltas.items()}
            would_overdraw = any(
                code not in ("issuer", "pool") and self.model[code] + d < 0 for code, d in negated.items())
            if reversed_already:
                with pytest.raises(ledger.AlreadyReversed):
                    ledger.reverse(db.session, tx_id)
                db.session.rollback()
            elif would_overdraw:
                with pytest.raises(ledger.InsufficientFunds):
                    ledger.reverse(db.session, tx_id)
                db.session.rollback()
            else:
                rev = ledger.reverse(db.session, tx_id)
                db.session.commit()
                self._apply(negated)
                entry[2] = True
                # A reversal is never itself reversed.
                with pytest.raises(ledger.NotReversible):
                    ledger.reverse(db.session, rev.id)
                db.session.rollback()

        @rule(to=st.sampled_from(WALLETS), amount=st.integers(1, 30))
        def keyed_grant(self, to, amount):
            self.key_counter += 1
            key = f"k{self.key_counter}"
            deltas = {"issuer": -amount, to: amount}
            tx = self._post(deltas, "grant", key)
            self._apply(deltas)
            self.posted.append([tx.id, deltas, False])
            self.keys[key] = (tx.id, deltas)

        @precondition(lambda self: self.keys)
        @rule(pick=st.integers(0, 10_000), change=st.booleans())
        def retry(self, pick, change):
            key = sorted(self.keys)[pick % len(self.keys)]
            tx_id, deltas = self.keys[key]
            if change:
                other = {code: (amount + 1 if amount > 0 else amount - 1) for code, amount in deltas.items()}
                with pytest.raises(ledger.IdempotencyKeyReused):
                    self._post(other, "grant", key)
                db.session.rollback()
            else:
                tx = self._post(deltas, "grant", key)
                assert tx.replayed and tx.id == tx_id

        @invariant()
        def books_balance(self):
            if not hasattr(self, "model"):
                return
            s = db.session
            per_unit = dict(s.execute(select(Posting.unit, func.sum(Posting.amount)).group_by(Posting.unit)).all())
            assert all(total == 0 for total in per_unit.values())
            actual = ledger.balances(s, list(self.model))
            assert {c: actual[c] for c in self.model} == self.model
            assert all(self.model[c] >= 0 for c in WALLETS + HOURS)
            replay = ledger.replay_balances(s)
            assert all(replay[c] == actual[c] for c in self.model)
            report = ledger.verify(s)
            assert report.ok, report.problems
            s.rollback()

    return LedgerMachine


@pytest.mark.slow
def test_ledger_simulation(app, reset_database):
    """Runs and steps per the active profile; new examples every run (a failure prints its steps)."""
    run_state_machine_as_test(make_machine(app, reset_database), settings=settings(
        deadline=None, suppress_health_check=[HealthCheck.too_slow]))
