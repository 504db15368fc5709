"""Seeded random runs of the supermarket: after every step stock, lots, receipts and the ledger agree."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

import ledger
from timebank.core import accounts
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.people.models import Household
from timebank.people.operations import community_by_code
from timebank.shop import operations as ops
from timebank.shop import sale
from timebank.shop.models import Item, Redemption, RedemptionLine, StockMovement


def _check(households, items):
    assert ledger.verify(db.session).ok
    assert ops.verify_stock() == []
    for item_id in items:
        item = db.session.get(Item, item_id)
        assert item.on_hand >= 0
        # Donation rows never claim more out than came in.
        for row in ops.donation_rows(list(db.session.execute(
                select(StockMovement).where(StockMovement.item_id == item_id,
                                            StockMovement.reason == "donation")).scalars())):
            assert 0 <= row["units_remaining"] <= row["quantity"]
    # What the shop holds equals what the non-voided receipts still charge.
    charged = db.session.execute(
        select(func.coalesce(func.sum(Redemption.total_points - Redemption.returned_points), 0))
        .where(Redemption.status == "completed")).scalar_one()
    assert ledger.balance(db.session, accounts.supermarket_points(1)) == charged
    numbers = sorted(db.session.execute(select(Redemption.receipt_no)).scalars())
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 3, 4, 5, 6])
def test_random_shop_days(app, world, seed):
    rng = random.Random(seed)
    households = [world.household(name=f"户{n}") for n in range(4)]
    for hh in households:
        world.grant(hh, rng.randint(100, 400))
    with app.app_context():
        community = community_by_code("hongxing")
        clerk = SimpleNamespace(id=None, username="sim", role="admin", actor="sim", community_id=community.id,
                                resident=None, resident_id=None, household_id=None)
        items = [ops.create_item(community, clerk, sku=f"g{n}", name=f"货{n}", price_points=rng.randint(1, 30),
                                 monthly_limit_per_household=rng.choice([None, 2, 5])).id for n in range(3)]
        codes = [db.session.get(Household, hh).member_code for hh in households]
        db.session.commit()
        for _step in range(80):
            action = rng.choice(["donate", "donate", "buy", "spoil", "adjust", "sell", "sell", "sell",
                                 "return", "void", "price"])
            try:
                item = db.session.get(Item, rng.choice(items))
                if action == "donate":
                    ops.record_movement(item, clerk, quantity=rng.randint(1, 6), reason="donation",
                                        donor=rng.choice(["甲企业", "乙单位", "丙"]))
                elif action == "buy":
                    ops.record_movement(item, clerk, quantity=rng.randint(1, 4), reason="purchase")
                elif action == "spoil":
                    ops.record_movement(item, clerk, quantity=rng.randint(1, 3), reason="spoilage")
                elif action == "adjust":
                    ops.record_movement(item, clerk, quantity=rng.choice([-2, -1, 1, 2]), reason="adjustment")
                elif action == "price":
                    ops.change_price(item, clerk, rng.randint(1, 30))
                elif action == "sell":
                    lines = [{"item_id": i, "quantity": rng.randint(1, 3)}
                             for i in rng.sample(items, rng.randint(1, 2))]
                    sale.redeem(clerk, member_code=rng.choice(codes), lines=lines)
                else:
                    receipt_ids = list(db.session.execute(select(Redemption.id)).scalars())
                    if not receipt_ids:
                        continue
                    rid = rng.choice(receipt_ids)
                    if action == "void":
                        ops.void(rid, clerk, "sim")
                    else:
                        line = rng.choice(list(db.session.execute(
                            select(RedemptionLine).where(RedemptionLine.redemption_id == rid)).scalars()))
                        ops.return_goods(rid, clerk, [{"item_id": line.item_id, "quantity": rng.randint(1, 2)}],
                                         "sim")
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                assert exc.code in ("insufficient_stock", "insufficient_points", "limit_exceeded",
                                    "already_voided", "fully_returned", "return_exceeds_purchase"), exc.code
            _check(households, items)
        reasons = set(db.session.execute(select(StockMovement.reason)).scalars())
        # The run exercised sales, voids and returns, not only refusals.
        assert {"redemption", "void", "return", "spoilage", "donation"} <= reasons
        assert db.session.execute(select(func.count()).select_from(Redemption)).scalar_one() >= 5
