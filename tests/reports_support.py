"""A month of activity for the report tests (see tests/test_reports_monthly.py for the table)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8))


def exports_logged(caplog) -> list[dict]:
    """The export lines (``timebank.audit.exports``, one JSON object each) captured so far, oldest first."""
    import json

    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "timebank.audit.exports"]


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def _grant(app, household_id, points, category, kind="grant"):
    import ledger
    from timebank.core import accounts, ledgering
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        h = db.session.get(Household, household_id)
        tx = ledgering.post(h.community_id, [ledger.Leg(accounts.issuance_points(h.community_id, category), -points),
                                             ledger.Leg(accounts.household_points(household_id), points)],
                            kind=kind, category=category, memo="scenario", actor="test")
        db.session.commit()
        return tx.id


def build_scenario(world, clock):
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.earning import expiry
    from timebank.earning import operations as earning
    from timebank.hours import operations as hours
    from timebank.people.models import Community, Household
    from timebank.shop import operations as shop
    from timebank.shop import sale

    app = world.app
    s = {}
    clock.set(local(2026, 2, 1, 9, 0))
    world.community("yangguang", "阳光社区", expiry_policy="rolling", expiry_months=1)
    s["A"] = world.household("yangguang", "张家")
    s["B"] = world.household("yangguang", "李家")
    s["C"] = world.household("yangguang", "王家", color="red")
    s["D"] = world.household("yangguang", "赵家")
    s["a1"] = world.resident(s["A"], "张三丰")
    s["b1"] = world.resident(s["B"], "李四")
    s["c1"] = world.resident(s["C"], "王五")
    s["d1"] = world.resident(s["D"], "赵六")
    world.user("yg_committee", "committee", community_code="yangguang")
    world.user("yg_clerk", "clerk", community_code="yangguang")
    world.user("yg_super", "supervisor", community_code="yangguang")

    def ctx_objects():
        community = db.session.execute(db.select(Community).filter_by(code="yangguang")).scalar_one()
        committee = db.session.execute(db.select(User).filter_by(username="yg_committee")).scalar_one()
        clerk = db.session.execute(db.select(User).filter_by(username="yg_clerk")).scalar_one()
        return community, committee, clerk

    clock.set(local(2026, 2, 10, 10, 0))
    _grant(app, s["D"], 12, "volunteer")
    clock.set(local(2026, 2, 20, 10, 0))
    _grant(app, s["A"], 50, "volunteer")
    with app.app_context():
        community, committee, clerk = ctx_objects()
        s["soap"] = shop.create_item(community, committee, sku="soap", name="香皂", price_points=3).id
        s["oil"] = shop.create_item(community, committee, sku="oil", name="食用油", price_points=45).id
        shop.record_movement(db.session.get(shop.Item, s["soap"]), clerk, quantity=4, reason="donation",
                             donor="老张", donor_kind="person")
        earning.create_rule(committee, community, "clean", "清扫楼道", "volunteer", 10, "auto")
        earning.create_rule(committee, community, "visit", "探访空巢老人", "neighbour_help", 8, "auto", minutes=60)
        db.session.commit()
    clock.set(local(2026, 2, 28, 23, 30))
    _grant(app, s["B"], 7, "moral")
    clock.set(local(2026, 3, 1, 0, 30))
    _grant(app, s["B"], 20, "moral")

    clock.set(local(2026, 3, 5, 10, 0))
    _grant(app, s["A"], 30, "volunteer")
    _grant(app, s["C"], 15, "red")
    with app.app_context():
        community, committee, clerk = ctx_objects()
        earning.create_claim(committee, community, "clean", s["a1"])
        earning.create_claim(committee, community, "visit", s["b1"])
        db.session.commit()

    clock.set(local(2026, 3, 10, 10, 0))
    reversed_id = _grant(app, s["A"], 5, "volunteer")
    with app.app_context():
        from timebank.core import ledgering

        ledgering.reverse(community_id=ctx_objects()[0].id, transaction_id=reversed_id, memo="entered twice",
                          actor="test")
        db.session.commit()

    clock.set(local(2026, 3, 12, 10, 0))
    with app.app_context():
        community, committee, clerk = ctx_objects()
        soap, oil = db.session.get(shop.Item, s["soap"]), db.session.get(shop.Item, s["oil"])
        shop.record_movement(soap, clerk, quantity=20, reason="donation", donor="华联超市", donor_kind="enterprise")
        shop.record_movement(oil, clerk, quantity=5, reason="donation", donor="华联超市", donor_kind="enterprise")
        shop.record_movement(soap, clerk, quantity=10, reason="donation", donor="县农业银行", donor_kind="unit")
        homes = {k: db.session.get(Household, s[k]) for k in "ABC"}
        ra = sale.redeem(clerk, lines=[{"item_id": s["oil"], "quantity": 1}, {"item_id": s["soap"], "quantity": 5}],
                         member_code=homes["A"].member_code)
        rb = sale.redeem(clerk, lines=[{"item_id": s["soap"], "quantity": 3}], member_code=homes["B"].member_code)
        sale.redeem(clerk, lines=[{"item_id": s["soap"], "quantity": 1}], member_code=homes["C"].member_code)
        db.session.commit()
        shop.void(rb.id, clerk, "wrong household")
        shop.return_goods(ra.id, clerk, [{"item_id": s["soap"], "quantity": 2}], "not needed")
        db.session.commit()

    clock.set(local(2026, 3, 15, 10, 0))
    with app.app_context():
        community, committee, clerk = ctx_objects()
        hours.fund_pool(committee, community, 50, "街道拨付")  # the pool pays only what was put into it
        first = hours.create_help_request(committee, s["c1"], "买菜", 30)
        hours.accept_help_request(committee, first, s["a1"])
        hours.complete_help_request(committee, first)
        second = hours.create_help_request(committee, s["b1"], "修水管", 20)
        hours.accept_help_request(committee, second, s["d1"])
        hours.complete_help_request(committee, second)
        db.session.commit()

    clock.set(local(2026, 3, 25, 0, 30))
    with app.app_context():
        done = expiry.expire_points(date(2026, 3, 25))
        db.session.commit()
        assert [(d["household_id"], d["points"]) for d in done] == [(s["D"], 12)]

    clock.set(local(2026, 3, 31, 23, 30))
    _grant(app, s["C"], 4, "red")
    clock.set(local(2026, 4, 1, 0, 30))
    _grant(app, s["A"], 100, "volunteer")
    s["E"] = world.household("yangguang", "孙家")
    clock.set(local(2026, 4, 2, 9, 0))
    world._tokens.clear()
    return s
