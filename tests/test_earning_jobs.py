"""Scheduled jobs: the lease (one scheduler acts), points expiry, the CLI, and the demo."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func

import ledger
from earning_support import build_town
from timebank.core import accounts

SHANGHAI = timezone(timedelta(hours=8))


def test_jobs_are_registered_with_a_slot_for_others(app):
    from timebank.core.jobs import JOBS
    from timebank.core.scheduler import load_jobs

    with app.app_context():
        load_jobs()
    assert {"close_publicity", "expire_points"} <= set(JOBS)


def test_only_the_lease_holder_runs_jobs(app, clock):
    from timebank.core.jobs import JOBS
    from timebank.core.scheduler import LeasedRunner

    runs = []
    JOBS["_probe"] = JOBS["close_publicity"].__class__("_probe", lambda: runs.append(1), {"trigger": "interval",
                                                                                         "minutes": 1}, "probe")
    try:
        first = LeasedRunner(app, holder="first", lease_seconds=60)
        second = LeasedRunner(app, holder="second", lease_seconds=60)
        assert first.run("_probe") is True
        assert second.run("_probe") is False
        clock.advance(seconds=30)
        assert first.run("_probe") is True  # renews
        clock.advance(seconds=61)  # the first scheduler died: its lease runs out
        assert second.run("_probe") is True
        assert first.run("_probe") is False
        assert len(runs) == 3
    finally:
        del JOBS["_probe"]


def test_two_schedulers_starting_together_get_one_lease(app):
    from timebank.core.scheduler import LeasedRunner

    barrier = threading.Barrier(2)
    results = {}

    def start(name):
        runner = LeasedRunner(app, holder=name, lease_seconds=60)
        barrier.wait()
        results[name] = runner.holds_lease()

    threads = [threading.Thread(target=start, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False, True]


def test_scheduler_builds_with_every_job(app):
    from timebank.core.scheduler import LeasedRunner

    scheduler = LeasedRunner(app, holder="x").build(blocking=False)
    ids = {j.id for j in scheduler.get_jobs()}
    assert {"close_publicity", "expire_points", "_lease"} <= ids


def test_jobs_cli(runner):
    assert runner.invoke(args=["jobs", "run", "close_publicity"]).exit_code == 0
    listed = runner.invoke(args=["jobs", "list"])
    assert "expire_points" in listed.output
    unknown = runner.invoke(args=["jobs", "run", "no_such_job"])
    assert unknown.exit_code != 0 and "no job" in unknown.output


def _set_policy(app, policy, months=None):
    from timebank.core.extensions import db
    from timebank.people.models import Community

    with app.app_context():
        community = db.session.get(Community, 1)
        community.expiry_policy = policy
        community.expiry_months = months
        db.session.commit()


def _spend(world, household_id, points):
    from timebank.core.extensions import db
    from timebank.core.ledgering import post

    with world.app.app_context():
        post(1, [ledger.Leg(accounts.household_points(household_id), -points),
                 ledger.Leg(accounts.supermarket_points(1), points)], kind="redemption", memo="test", actor="test")
        db.session.commit()


def _grant_now(world, household_id, points):
    from timebank.core.extensions import db

    with world.app.app_context():
        from timebank.core.ledgering import post

        post(1, [ledger.Leg(accounts.issuance_points(1, "moral"), -points),
                 ledger.Leg(accounts.household_points(household_id), points)], kind="grant", memo="test",
             actor="test")
        db.session.commit()


def test_annual_expiry_on_31_december(world, clock, runner):
    town = build_town(world)
    _set_policy(world.app, "annual")
    _grant_now(world, town.h1, 100)
    _spend(world, town.h1, 30)
    assert runner.invoke(args=["jobs", "run", "expire_points"]).exit_code == 0
    assert world.balance(accounts.household_points(town.h1)) == 70  # nothing expires within the year
    clock.set(datetime(2026, 12, 31, 23, 0, tzinfo=SHANGHAI))
    runner.invoke(args=["jobs", "run", "expire_points"])
    assert world.balance(accounts.household_points(town.h1)) == 70
    clock.set(datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI))
    _grant_now(world, town.h2, 5)  # a grant of the new year stays
    for _ in range(2):  # twice is once
        assert runner.invoke(args=["jobs", "run", "expire_points"]).exit_code == 0
    assert world.balance(accounts.household_points(town.h1)) == 0
    assert world.balance(accounts.household_points(town.h2)) == 5
    assert world.balance(accounts.expired_points(1)) == 70
    from ledger.models import Transaction
    from timebank.core.extensions import db

    with world.app.app_context():
        expiries = db.session.query(Transaction).filter_by(kind="expiry").all()
        assert len(expiries) == 1 and expiries[0].reference == f"household:{town.h1}"


def test_rolling_expiry_takes_oldest_grants_first(world, clock, runner):
    town = build_town(world)
    _set_policy(world.app, "rolling", months=2)
    _grant_now(world, town.h1, 100)            # 2 March
    clock.set(datetime(2026, 4, 1, 10, tzinfo=SHANGHAI))
    _spend(world, town.h1, 30)                 # spends from the March grant
    clock.set(datetime(2026, 4, 10, 10, tzinfo=SHANGHAI))
    _grant_now(world, town.h1, 50)
    clock.set(datetime(2026, 5, 3, 1, tzinfo=SHANGHAI))
    runner.invoke(args=["jobs", "run", "expire_points"])
    assert world.balance(accounts.household_points(town.h1)) == 50  # 70 left of March's 100 expired
    runner.invoke(args=["jobs", "run", "expire_points"])
    assert world.balance(accounts.expired_points(1)) == 70
    clock.set(datetime(2026, 6, 9, 1, tzinfo=SHANGHAI))
    runner.invoke(args=["jobs", "run", "expire_points"])
    assert world.balance(accounts.household_points(town.h1)) == 50  # April's grant is not two months old
    clock.set(datetime(2026, 6, 11, 1, tzinfo=SHANGHAI))
    runner.invoke(args=["jobs", "run", "expire_points"])
    assert world.balance(accounts.household_points(town.h1)) == 0
    assert world.balance(accounts.expired_points(1)) == 120


def test_no_expiry_by_default(world, clock, runner):
    town = build_town(world)
    _grant_now(world, town.h1, 100)
    clock.set(datetime(2030, 1, 2, tzinfo=SHANGHAI))
    runner.invoke(args=["jobs", "run", "expire_points"])
    assert world.balance(accounts.household_points(town.h1)) == 100


@pytest.mark.slow
def test_demo_loads_once_and_the_ledger_verifies(app, runner, clock):
    from timebank.core.extensions import db
    from timebank.earning.models import CheckIn, Claim, Rule, Task
    from timebank.hours.models import HelpRequest
    from timebank.people.models import Community, Household

    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert "demo-pass-2026" in first.output and "demo_committee" in first.output
    assert app.extensions["timebank.core.clock"] is clock  # restored after the history was made
    with app.app_context():
        community = db.session.query(Community).filter_by(code="xingfu").one()
        households = db.session.query(Household).filter_by(community_id=community.id).all()
        assert 55 <= len(households) <= 65
        assert {h.color for h in households} == {"red", "yellow", "green"}
        assert {h.grid for h in households} == {"1", "2", "3"}
        statuses = {c.status for c in db.session.query(Claim).filter_by(community_id=community.id)}
        assert {"posted", "rejected"} <= statuses
        assert db.session.query(Rule).filter_by(community_id=community.id).count() >= 12
        assert db.session.query(Task).count() > 0 and db.session.query(CheckIn).count() > 0
        # A task for teams: households and a group, each checked in by its leader, each earning once.
        from timebank.earning.models import TaskTeam

        team_task = db.session.query(Task).filter_by(points_per="team").one()
        done = db.session.query(TaskTeam).filter(TaskTeam.task_id == team_task.id,
                                                 TaskTeam.checked_in_at.isnot(None)).all()
        assert {t.kind for t in done} == {"household", "group"} and all(t.claim_id for t in done)
        via_teams = db.session.query(CheckIn).filter(CheckIn.task_id == team_task.id, CheckIn.team_id.isnot(None))
        assert via_teams.count() > len(done)
        coming = db.session.query(Task).filter(Task.starts_at > db.session.query(func.max(Claim.created_at))
                                               .scalar_subquery()).one()
        assert db.session.query(TaskTeam).filter_by(task_id=coming.id).count() == 3
        assert db.session.query(HelpRequest).filter_by(status="completed").count() > 0
        claims = db.session.query(Claim).count()
        # A honour under its half-yearly review, one kept, one withdrawn; a deduction on the notice board,
        # deductions applied (never below zero).
        from timebank.earning.models import Deduction, HonourAward

        awards = {a.status for a in db.session.query(HonourAward).filter_by(community_id=community.id)}
        assert {"under_review", "held", "withdrawn"} <= awards
        deductions = db.session.query(Deduction).filter_by(community_id=community.id).all()
        assert {"publicized", "applied", "pending"} <= {d.status for d in deductions}
        assert all(d.wallet_points + d.ranking_points == -d.points for d in deductions if d.status == "applied")
        assert ledger.verify(db.session).ok
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0 and "nothing done" in second.output
    with app.app_context():
        assert db.session.query(Claim).count() == claims


def test_demo_if_empty_leaves_a_real_database_alone(world, runner):
    from timebank.core.extensions import db
    from timebank.people.models import Community

    result = runner.invoke(args=["demo", "--if-empty"])
    assert result.exit_code == 0 and "not loaded" in result.output
    with world.app.app_context():
        assert db.session.query(Community).filter_by(code="xingfu").count() == 0
