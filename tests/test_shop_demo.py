"""The supermarket's demo data loads, keeps the books straight, and loads only once."""

from sqlalchemy import func, select

import ledger
from timebank.core.extensions import db
from timebank.people.operations import community_by_code
from timebank.shop import operations as ops
from timebank.shop.demo import DONATIONS, GOODS, load_shop_demo
from timebank.shop.models import Item, Redemption


def test_shop_demo_loads_once(app, world):
    rich, poor = world.household(name="李家"), world.household(name="赵家")
    world.grant(rich, 200)
    world.grant(poor, 5)
    with app.app_context():
        first = load_shop_demo(community_by_code("hongxing"))
        db.session.commit()
        assert first == {"items": len(GOODS), "movements": len(DONATIONS) + 4, "redemptions": 1}
        again = load_shop_demo(community_by_code("hongxing"))
        db.session.commit()
        assert again["items"] == 0
        assert db.session.execute(select(func.count()).select_from(Item)).scalar_one() == len(GOODS)
        receipt = db.session.execute(select(Redemption)).scalar_one()
        assert receipt.household_id == rich and receipt.total_points == 45 + 2 * 3
        assert ops.verify_stock() == [] and ledger.verify(db.session).ok
        assert {d["donor"] for d in ops.donors(receipt.community_id)} >= {"爱心企业·华联超市", "王阿姨"}


def test_services_demo_has_a_partner_sale_in_its_settlement(app, world, clock):
    from timebank.shop.demo import load_services_demo
    from timebank.shop.partners import settlement

    for name in ("李家", "赵家", "钱家"):
        world.grant(world.household(name=name), 50)
    world.user("barber", "clerk")
    with app.app_context():
        from timebank.core.users import User

        barber = db.session.execute(select(User).where(User.username == "barber")).scalar_one()
        community = community_by_code("hongxing")
        done = load_services_demo(community, partner_clerk=barber)
        db.session.commit()
        assert done == {"partners": 1, "services": 2, "service_sales": 4}
        assert load_services_demo(community)["partners"] == 0
        report = settlement(community.id, "2026-03")
        assert report["partners"][0]["redeemed_points"] == 16 and report["partners"][0]["receipts"] == 2
        receipts = db.session.execute(select(Redemption).where(Redemption.partner_id.is_not(None))).scalars().all()
        assert {r.clerk_id for r in receipts} == {barber.id}
        assert ops.verify_stock() == [] and ledger.verify(db.session).ok
