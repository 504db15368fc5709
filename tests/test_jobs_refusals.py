"""Scheduled jobs skip an item the domain refuses and go on with the others.

Each job runs over many items (claims, households); one item that is refused (a closed month, a
constraint the database enforces) is rolled back alone, logged with its id and reason, and reported
in the job's result, while the rest of the run is done and committed. A database that is unavailable
is not a refusal: that run stops, nothing of it is kept, and the next run tries again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import OperationalError

import ledger
from conftest import close_month
from earning_support import build_town, claim, rule
from timebank.core import accounts

SHANGHAI = timezone(timedelta(hours=8))


def _ledger_verifies(app) -> None:
    from timebank.core.extensions import db

    with app.app_context():
        assert ledger.verify(db.session).ok
    result = app.test_cli_runner().invoke(args=["verify"])
    assert result.exit_code == 0, result.output


def _claim_status(app, claim_id):
    from timebank.core.extensions import db
    from timebank.earning.models import Claim

    with app.app_context():
        return db.session.get(Claim, claim_id).status


def _skipped_logs(caplog, job):
    return [r.getMessage() for r in caplog.records if r.name == "timebank.core.jobs"
            and r.levelno == logging.WARNING and f"job {job} skipped" in r.getMessage()]


# --- close_publicity: a claim of a community whose month is closed ---------------------------------

def test_close_publicity_skips_a_claim_in_a_closed_month_and_posts_the_others(world, clock, runner, caplog):
    town = build_town(world)
    world.user("lvye_vice", "committee", community_code="lvye")
    rule(world)
    rule(world, user="other_committee", community_code="lvye")
    first = claim(world, town.r1, town.resident1)
    middle = claim(world, town.r3, town.resident3, community_code="lvye")
    last = claim(world, town.r2, town.resident2)
    assert first["id"] < middle["id"] < last["id"]
    for c, reviewer in ((first, "grid"), (middle, "other_committee"), (last, "grid")):
        r = world.call("POST", f"/api/v1/claims/{c['id']}/approve", reviewer)
        assert r.get_json()["status"] == "publicized", r.get_json()
    # 绿野村's March is closed while it is still March here (see close_month): nothing dated in it
    # may be posted there any more.
    close_month(world, clock, "lvye", "2026-03", "other_committee", "lvye_vice")
    clock.advance(days=3, seconds=1)  # publicity over, still March

    caplog.set_level(logging.INFO)
    result = runner.invoke(args=["jobs", "run", "close_publicity"])
    assert result.exit_code == 0, result.output
    assert _claim_status(world.app, first["id"]) == "posted"
    assert _claim_status(world.app, last["id"]) == "posted"
    assert _claim_status(world.app, middle["id"]) == "publicized"
    assert world.balance(accounts.household_points(town.h1)) == 10
    assert world.balance(accounts.household_points(town.h2)) == 10
    assert world.balance(accounts.household_points(town.h3)) == 0
    # Reported: in the command's output and in the log, with the item and the reason.
    assert f"skipped claim:{middle['id']}: month_closed" in result.output
    assert "1 skipped" in result.output
    logged = _skipped_logs(caplog, "close_publicity")
    assert len(logged) == 1 and f"claim:{middle['id']}" in logged[0] and "month_closed" in logged[0]
    _ledger_verifies(world.app)

    # The next run tries the refused claim again (still refused) and does nothing twice.
    from timebank.core.scheduler import run_job

    with world.app.app_context():
        again = run_job("close_publicity")
    assert again["posted"] == [] and again["skipped"] == [
        {"item": f"claim:{middle['id']}", "code": "month_closed", "reason": again["skipped"][0]["reason"]}]
    assert "2026-03" in again["skipped"][0]["reason"]
    assert world.balance(accounts.household_points(town.h1)) == 10

    # Once the month is over, the claim is posted.
    clock.set(datetime(2026, 4, 1, 0, 5, tzinfo=SHANGHAI))
    with world.app.app_context():
        done = run_job("close_publicity")
    assert done["posted"] == [middle["id"]] and done["skipped"] == []
    assert world.balance(accounts.household_points(town.h3)) == 10
    _ledger_verifies(world.app)


# --- expire_points: the households of a community whose month is closed ----------------------------

def _annual_expiry(app, *community_codes):
    from timebank.core.extensions import db
    from timebank.people.operations import community_by_code

    with app.app_context():
        for code in community_codes:
            community_by_code(code).expiry_policy = "annual"
        db.session.commit()


def _grant(app, household_id, points):
    """Points into a household's wallet, dated by the app's clock, through the application's guards."""
    from timebank.core import ledgering
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        community_id = db.session.get(Household, household_id).community_id
        ledgering.post(community_id, [ledger.Leg(accounts.issuance_points(community_id, "moral"), -points),
                                      ledger.Leg(accounts.household_points(household_id), points)],
                       kind="grant", memo="test", actor="test")
        db.session.commit()


def test_expire_points_skips_the_households_of_a_closed_month_and_expires_the_others(world, clock, app, caplog):
    town = build_town(world)
    world.community("dongfang", "东方社区")
    h4 = world.household(community_code="dongfang", name="赵家")
    world.user("lvye_vice", "committee", community_code="lvye")
    _annual_expiry(app, "hongxing", "lvye", "dongfang")
    for household, points in ((town.h1, 40), (town.h3, 30), (h4, 20)):
        _grant(app, household, points)

    # New Year: 绿野村's January is closed before the expiry job runs (see close_month).
    clock.set(datetime(2027, 1, 1, 0, 10, tzinfo=SHANGHAI))
    world._tokens.clear()
    close_month(world, clock, "lvye", "2027-01", "other_committee", "lvye_vice")
    clock.set(datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI))

    # The way the scheduler runs it: the leased runner, then run_job_once.
    from timebank.core.scheduler import LeasedRunner

    caplog.set_level(logging.INFO)
    assert LeasedRunner(app, holder="test").run("expire_points") is True
    assert world.balance(accounts.household_points(town.h1)) == 0
    assert world.balance(accounts.household_points(h4)) == 0
    assert world.balance(accounts.household_points(town.h3)) == 30
    assert world.balance(accounts.expired_points(1)) == 40
    logged = _skipped_logs(caplog, "expire_points")
    assert len(logged) == 1 and f"household:{town.h3}" in logged[0] and "month_closed" in logged[0]
    summary = [r.getMessage() for r in caplog.records
               if r.name == "timebank.core.scheduler" and "job expire_points done" in r.getMessage()]
    assert len(summary) == 1 and "1 skipped" in summary[0] and f"household:{town.h3}" in summary[0]
    _ledger_verifies(app)

    from timebank.core.scheduler import run_job

    with app.app_context():
        again = run_job("expire_points")
    assert again["expired"] == []  # twice is once
    assert [(s["item"], s["code"]) for s in again["skipped"]] == [(f"household:{town.h3}", "month_closed")]


# --- the mechanism: a constraint the database enforces, and a database that is not there ----------

@pytest.fixture
def probe_job():
    """Register a job made of items; each item is a function run in the job's own item savepoint."""
    from timebank.core.jobs import JOBS, Job, JobRun

    registered = []

    def register(name, items):
        def run():
            job_run = JobRun(name)
            done = []
            for label, work in items:
                with job_run.item(label) as item:
                    work()
                if item.done:
                    done.append(label)
            return job_run.result(done=done)

        JOBS[name] = Job(name, run, {"trigger": "interval", "minutes": 1}, "probe")
        registered.append(name)

    yield register
    for name in registered:
        del JOBS[name]


def _add_community(code):
    def work():
        from timebank.core.extensions import db
        from timebank.people.models import Community

        db.session.add(Community(code=code, name=code))
        db.session.flush()
    return work


def _codes(app):
    from sqlalchemy import select

    from timebank.core.extensions import db
    from timebank.people.models import Community

    with app.app_context():
        return set(db.session.execute(select(Community.code)).scalars())


def test_an_item_the_database_refuses_is_skipped_and_the_rest_committed(world, runner, probe_job, caplog):
    # The middle item breaks the unique community code: the database refuses it, not the code.
    probe_job("_probe_unique", [("community:a", _add_community("probe-a")),
                                ("community:dup", _add_community("hongxing")),
                                ("community:b", _add_community("probe-b"))])
    caplog.set_level(logging.INFO)
    result = runner.invoke(args=["jobs", "run", "_probe_unique"])
    assert result.exit_code == 0, result.output
    assert {"probe-a", "probe-b"} <= _codes(world.app)
    assert "skipped community:dup: integrity_error" in result.output
    assert "'done': ['community:a', 'community:b']" in result.output
    logged = _skipped_logs(caplog, "_probe_unique")
    assert len(logged) == 1 and "community:dup" in logged[0] and "integrity_error" in logged[0]


def test_a_database_that_is_unavailable_stops_the_run_and_keeps_nothing(world, probe_job):
    def unavailable():
        raise OperationalError("UPDATE something", {}, Exception("server closed the connection unexpectedly"))

    probe_job("_probe_down", [("community:a", _add_community("probe-a")),
                              ("community:down", unavailable),
                              ("community:b", _add_community("probe-b"))])
    from timebank.core.scheduler import run_job

    with world.app.app_context(), pytest.raises(OperationalError):
        run_job("_probe_down")
    assert not {"probe-a", "probe-b"} & _codes(world.app)  # the run is retried later as a whole


def test_not_now_is_not_a_refusal(world, probe_job):
    from timebank.core.errors import Unavailable

    def busy():
        raise Unavailable("The database is busy.")

    probe_job("_probe_busy", [("community:a", _add_community("probe-a")), ("community:busy", busy)])
    from timebank.core.scheduler import run_job

    with world.app.app_context(), pytest.raises(Unavailable):
        run_job("_probe_busy")
    assert "probe-a" not in _codes(world.app)
