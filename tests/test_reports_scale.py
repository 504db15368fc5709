"""The monthly report and the ledger export read only what they output, and still agree with the
whole ledger.

The report's balances at a month's end are read from whichever side of the month has fewer
transactions (today's balance less what came later, or the sum of what came before); its flows and
earnings from the month's transactions only. These tests build a random ledger over four months,
written in a shuffled time order (a clock that jumps back and forth, as a restore or a frozen test
clock can make it), and compare every month's report with the same figures recomputed naively from
every posting. The export must hold every posting of the community, once, and end with its trailer.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta

import pytest

#: Four months in UTC, well inside each month in Shanghai too.
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]


def _moment(month: str, rng: random.Random) -> datetime:
    year, number = (int(x) for x in month.split("-"))
    return datetime(year, number, 2, 0, 0) + timedelta(hours=rng.randrange(24 * 25))


@pytest.fixture
def random_ledger(app, world):
    """Two communities (the report must not mix them); returns the postings as the naive side sees them."""
    import ledger
    from ledger import Leg
    from timebank.core import accounts
    from timebank.core.extensions import db

    world.community("other", "另一社区")
    homes = [world.household(name=f"户{n}") for n in range(6)]
    strangers = [world.household(community_code="other", name=f"外{n}") for n in range(2)]
    people = [world.resident(h, name=f"人{h}") for h in homes]
    rng = random.Random(20261203)
    with app.app_context():
        from timebank.people.models import Community

        cid = db.session.execute(db.select(Community.id).where(Community.code == "hongxing")).scalar_one()
        other = db.session.execute(db.select(Community.id).where(Community.code == "other")).scalar_one()
        shop = accounts.supermarket_points(cid)
        pool = accounts.pool_minutes(cid)
        # Written in a shuffled order of months: the rows' ids do not follow their times.
        plan = [rng.choice(MONTHS) for _ in range(240)]
        for n, month in enumerate(plan):
            now = _moment(month, rng)
            h = rng.choice(homes)
            wallet = accounts.household_points(h)
            step = n % 7
            try:
                if step in (0, 1, 2):
                    cat = rng.choice(accounts.CATEGORIES)
                    p = rng.randint(1, 40)
                    ledger.post(db.session, [Leg(accounts.issuance_points(cid, cat), -p), Leg(wallet, p)],
                                kind="grant", category=cat, memo="t", actor="test", now=now)
                elif step == 3:
                    ledger.post(db.session, [Leg(wallet, -(p := rng.randint(1, 10))), Leg(shop, p)],
                                kind="redemption", memo="t", actor="test", now=now)
                elif step == 4:
                    ledger.post(db.session, [Leg(accounts.issuance_minutes(cid), -30), Leg(pool, 30)],
                                kind="pool_funding", memo="t", actor="test", now=now)
                elif step == 5:
                    person = rng.choice(people)
                    ledger.post(db.session, [Leg(pool, -15), Leg(accounts.resident_minutes(person), 15)],
                                kind="help", memo="t", actor="test", now=now)
                else:
                    s = rng.choice(strangers)
                    ledger.post(db.session, [Leg(accounts.issuance_points(other, "volunteer"), -9),
                                             Leg(accounts.household_points(s), 9)],
                                kind="grant", category="volunteer", memo="t", actor="test", now=now)
            except ledger.InsufficientFunds:
                pass
        db.session.commit()
    return {"community_id": cid}


def _naive(app, community_id: int, month: str) -> dict:
    """The figures recomputed from every posting of the ledger, in Python."""
    from sqlalchemy import select

    from ledger.models import Account, Posting, Transaction
    from timebank.core import accounts
    from timebank.core.accounts import AccountOwner
    from timebank.core.clock import month_bounds
    from timebank.core.extensions import db

    start, end = month_bounds(month)
    with app.app_context():
        rows = db.session.execute(
            select(Transaction.id, Transaction.created_at, Transaction.kind, Account.code, Account.unit,
                   Posting.amount, AccountOwner.community_id, AccountOwner.household_id, AccountOwner.resident_id)
            .join(Posting, Posting.transaction_id == Transaction.id)
            .join(Account, Account.id == Posting.account_id)
            .outerjoin(AccountOwner, AccountOwner.account_id == Account.id)).all()
    issuance = {accounts.issuance_points(community_id, c) for c in accounts.CATEGORIES}
    issuing = {r.id for r in rows if r.code in issuance and start <= r.created_at < end}
    issued = {c: 0 for c in accounts.CATEGORIES}
    outstanding = minutes = pool = redeemed = 0
    earned: dict[int, int] = {}
    for r in rows:
        if r.community_id != community_id:
            continue
        if r.created_at < end:
            if r.household_id is not None and r.resident_id is None and r.unit == "points":
                outstanding += r.amount
            if r.resident_id is not None and r.unit == "minutes":
                minutes += r.amount
            if r.code == accounts.pool_minutes(community_id):
                pool += r.amount
        if start <= r.created_at < end:
            for c in accounts.CATEGORIES:
                if r.code == accounts.issuance_points(community_id, c):
                    issued[c] -= r.amount
            if r.code == accounts.supermarket_points(community_id) and r.amount > 0:
                redeemed += r.amount
            if r.id in issuing and r.household_id is not None and r.resident_id is None and r.unit == "points":
                earned[r.household_id] = earned.get(r.household_id, 0) + r.amount
    top = sorted(((-p, h) for h, p in earned.items() if p > 0))[:10]
    return {"issued": issued, "outstanding": outstanding, "minutes": minutes, "pool": pool, "redeemed": redeemed,
            "earning": sum(1 for p in earned.values() if p > 0), "top": [(h, -p) for p, h in top]}


@pytest.mark.parametrize("month", MONTHS + ["2025-12", "2026-07"])
def test_every_month_agrees_with_the_whole_ledger(app, random_ledger, month):
    from timebank.core.extensions import db
    from timebank.people.models import Community
    from timebank.reports.operations import monthly_report

    expected = _naive(app, random_ledger["community_id"], month)
    with app.app_context():
        report = monthly_report(db.session.get(Community, random_ledger["community_id"]), month)
    assert report["points"]["issued_by_category"] == expected["issued"]
    assert report["points"]["outstanding"] == expected["outstanding"]
    assert report["points"]["redeemed"] == expected["redeemed"]
    assert report["hours"]["outstanding_minutes"] == expected["minutes"]
    assert report["hours"]["pool_balance_minutes"] == expected["pool"]
    assert report["participation"]["households_earning"] == expected["earning"]
    assert [(e["household_id"], e["points"]) for e in report["top_households"]] == expected["top"]


@pytest.mark.parametrize("side", ["start", "now", "before", "after"])
def test_every_way_of_reading_a_month_end_balance_agrees(app, random_ledger, monkeypatch, side):
    """From the first transaction, from today's balances, or from the stored totals of the month-end
    before or after (made by the ``month_totals`` job): every month's balances are the whole ledger's."""
    from timebank.core.clock import month_bounds
    from timebank.core.extensions import db
    from timebank.reports import operations

    with app.app_context():
        # Every month from the first transaction's (January) to the last that ended (May), for both
        # communities; a second run stores nothing new.
        assert operations.keep_month_totals(datetime(2026, 6, 1)) == 2 * 5
        assert operations.keep_month_totals(datetime(2026, 6, 1)) == 0
        db.session.commit()
    monkeypatch.setattr(operations, "_CHEAPER_SIDE", side)
    for month in MONTHS:
        expected = _naive(app, random_ledger["community_id"], month)
        with app.app_context():
            got = operations._balances_at(random_ledger["community_id"], month_bounds(month)[1])
            if side in ("before", "after"):  # the stored totals themselves are the ledger's
                assert operations._balances_at(random_ledger["community_id"], month_bounds(month)[1]) == got
        assert got == {"households": expected["outstanding"], "residents": expected["minutes"],
                       "pool": expected["pool"]}


def test_the_export_holds_every_posting_once_and_ends_with_its_trailer(app, world, random_ledger):
    from sqlalchemy import func, select

    from ledger.models import Posting, Transaction
    from timebank.audit.ledger_browser import ledger_query
    from timebank.core.extensions import db

    world.user("auditor", "committee")
    with app.app_context():
        ids = ledger_query(community_id=random_ledger["community_id"]).with_only_columns(Transaction.id)
        expected = db.session.execute(select(func.count()).select_from(Posting)
                                      .where(Posting.transaction_id.in_(ids))).scalar_one()
    r = world.call("GET", "/api/v1/ledger/transactions/export?community_code=hongxing", "auditor")
    assert r.status_code == 200
    assert r.headers["X-Export-Rows"] == str(expected)
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    header, body, trailer = rows[0], rows[1:-1], rows[-1]
    assert header[0] == "transaction_id"
    assert trailer == ["#end", str(expected)]
    assert len(body) == expected
    assert len({(row[0], row[8]) for row in body}) == expected
    ids = [int(row[0]) for row in body]
    assert ids == sorted(ids)


def test_an_export_that_breaks_is_not_a_file_that_looks_whole(app, world, random_ledger, monkeypatch):
    """A failure half-way ends the stream without the trailer (and the client sees the connection
    end early: the body is shorter than a whole export), never a short file that looks whole."""
    from timebank.audit import ledger_browser

    world.user("auditor", "committee")
    real = ledger_browser._export_rows

    def broken(query):
        for n, row in enumerate(real(query)):
            if n == 50:
                raise RuntimeError("the database went away")
            yield row

    monkeypatch.setattr(ledger_browser, "_export_rows", broken)
    r = world.call("GET", "/api/v1/ledger/transactions/export?community_code=hongxing", "auditor")
    with pytest.raises(RuntimeError):
        r.get_data(as_text=True)


def test_verify_checks_the_stored_month_totals(app, random_ledger):
    """``timebank verify`` re-derives every stored month's totals; a wrong one is a problem."""
    from sqlalchemy import update

    from timebank.audit.verify import verify_everything
    from timebank.core.extensions import db
    from timebank.reports import operations
    from timebank.reports.models import MonthTotals

    with app.app_context():
        operations.keep_month_totals(datetime(2026, 6, 1))
        db.session.commit()
        result = verify_everything()
        assert result["ok"], result["problems"]
        assert "month-end totals: 10 checked, ok" in result["notes"]
        db.session.execute(update(MonthTotals).where(MonthTotals.month == "2026-02",
                                                     MonthTotals.community_id == random_ledger["community_id"])
                           .values(households_points=MonthTotals.households_points + 1))
        result = verify_everything()
        assert not result["ok"]
        assert any("2026-02" in p["problem"] for p in result["problems"])
        db.session.rollback()


def test_the_month_totals_job_is_scheduled_and_runs(app, random_ledger, runner):
    from timebank.core.jobs import JOBS

    assert "month_totals" in JOBS
    result = runner.invoke(args=["jobs", "run", "month_totals"])
    assert result.exit_code == 0, result.output
