"""Demo goods, donations and a few redemptions for the love supermarket (爱心超市).

:func:`load_shop_demo` is called by ``timebank demo`` for the demo community. It flushes and never
commits, and is idempotent: a community that already has the demo goods is left alone.
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from timebank.core.extensions import db
from timebank.people.models import Community, Household
from timebank.shop import operations as ops
from timebank.shop import partners, sale
from timebank.shop.models import Item, PartnerShop

#: (sku, name, price in points, barcode, monthly limit per household, low-stock threshold)
GOODS = [
    ("soap", "香皂", 3, "6901234500011", None, 10),
    ("tissue", "抽纸（3包）", 8, "6901234500028", None, 10),
    ("toothpaste", "牙膏", 6, "6901234500035", None, 5),
    ("towel", "毛巾", 10, "6901234500042", None, 5),
    ("detergent", "洗衣液 2kg", 28, "6901234500059", 2, 5),
    ("oil", "食用油 5L", 45, "6901234500066", 1, 3),
    ("rice", "大米 5kg", 40, "6901234500073", 1, 3),
    ("eggs", "鸡蛋（10枚）", 12, None, 2, 5),
]

#: (sku, quantity, donor, donor kind, note): stock as it came in.
DONATIONS = [
    ("soap", 60, "爱心企业·华联超市", "enterprise", "春节爱心捐赠"),
    ("tissue", 40, "爱心企业·华联超市", "enterprise", "春节爱心捐赠"),
    ("oil", 20, "帮扶单位·县农业银行", "unit", "结对帮扶物资"),
    ("rice", 20, "帮扶单位·县农业银行", "unit", "结对帮扶物资"),
    ("detergent", 15, "爱心企业·蓝月亮经销部", "enterprise", ""),
    ("towel", 12, "县供销合作社", "unit", ""),
    ("eggs", 10, "王阿姨", "person", "自家养的土鸡蛋"),
]
PURCHASES = [("toothpaste", 30), ("soap", 20), ("oil", 4)]

#: Baskets the demo households take, if they have points by then.
BASKETS = [
    [("oil", 1), ("soap", 2)],
    [("tissue", 2), ("toothpaste", 1)],
    [("detergent", 1), ("soap", 1)],
    [("rice", 1)],
    [("eggs", 1), ("towel", 1)],
]
MAX_RECEIPTS = 8


def _demo_actor(community: Community, clerk=None):
    """The demo's clerk when ``timebank demo`` names one; otherwise a stand-in nobody logs in as."""
    if clerk is not None and clerk.community_id == community.id:
        return clerk
    return SimpleNamespace(id=None, username="demo", role="admin", actor="demo", community_id=community.id,
                           resident=None, resident_id=None, household_id=None)


def load_shop_demo(community: Community, clerk=None) -> dict:
    """Stock the demo community's supermarket and ring up a few receipts. Returns what it did."""
    done = {"items": 0, "movements": 0, "redemptions": 0}
    existing = db.session.execute(
        select(Item.id).where(Item.community_id == community.id, Item.sku == GOODS[0][0])).first()
    if existing is not None:
        return done
    actor = _demo_actor(community, clerk)
    items = {}
    for sku, name, price, barcode, limit, threshold in GOODS:
        items[sku] = ops.create_item(community, actor, sku=sku, name=name, price_points=price, barcode=barcode,
                                     monthly_limit_per_household=limit, low_stock_threshold=threshold)
        done["items"] += 1
    for sku, quantity, donor, kind, note in DONATIONS:
        ops.record_movement(items[sku], actor, quantity=quantity, reason="donation", donor=donor,
                            donor_kind=kind, note=note)
        done["movements"] += 1
    for sku, quantity in PURCHASES:
        ops.record_movement(items[sku], actor, quantity=quantity, reason="purchase", note="社区采购")
        done["movements"] += 1
    ops.record_movement(items["eggs"], actor, quantity=2, reason="spoilage", note="破损")
    done["movements"] += 1

    households = db.session.execute(
        select(Household).where(Household.community_id == community.id).order_by(Household.id)).scalars()
    receipts = []
    for index, household in enumerate(households):
        if len(receipts) == MAX_RECEIPTS:
            break
        basket = BASKETS[index % len(BASKETS)]
        cost = sum(items[sku].price_points * quantity for sku, quantity in basket)
        if ops.household_balance(household.id) < cost:
            continue
        receipts.append(sale.redeem(actor, member_code=household.member_code,
                                   lines=[{"item_id": items[sku].id, "quantity": q} for sku, q in basket]))
        done["redemptions"] += 1
    # A clerk's mistake corrected by a void, and a return of one unit: both as compensating entries.
    if len(receipts) >= 3:
        ops.void(receipts[1].id, actor, "扫错商品，重新结账")
        first_line = receipts[2].lines[0]
        ops.return_goods(receipts[2].id, actor, [{"item_id": first_line.item_id, "quantity": 1}], "包装破损")
        done["voids"], done["returns"] = 1, 1
    db.session.flush()
    return done


#: The demo's partner shop (爱心商家) and services: (sku, name, price, places a day, at the partner?).
PARTNER = ("幸福理发店", "幸福路18号")
SERVICES = [
    ("haircut", "理发（老人优惠）", 8, 6, True),
    ("canteen-lunch", "老年食堂午餐", 3, 30, False),
]
SERVICE_SALES = 2


def load_services_demo(community: Community, clerk=None, partner_clerk=None) -> dict:
    """A partner shop (幸福理发店) with a haircut service of 6 places a day, a lunch at the 老年食堂 sold
    by the supermarket, and a few sales of each, so that the settlement report shows something. The
    partner's sales are rung up by ``partner_clerk`` (linked to the partner here) when given.
    Idempotent, like :func:`load_shop_demo`."""
    done = {"partners": 0, "services": 0, "service_sales": 0}
    existing = db.session.execute(
        select(PartnerShop.id).where(PartnerShop.community_id == community.id, PartnerShop.name == PARTNER[0])).first()
    if existing is not None:
        return done
    actor = _demo_actor(community, None)
    partner = partners.create_partner(community, actor, name=PARTNER[0], address=PARTNER[1])
    done["partners"] = 1
    seller = actor
    if partner_clerk is not None and partner_clerk.community_id == community.id and partner_clerk.role == "clerk":
        partners.link_clerk(partner, actor, partner_clerk)
        seller = partner_clerk
    items = {}
    for sku, name, price, places, at_partner in SERVICES:
        items[sku] = ops.create_item(community, actor, sku=sku, name=name, price_points=price, kind="service",
                                     daily_places=places, partner_id=partner.id if at_partner else None)
        done["services"] += 1
    households = db.session.execute(
        select(Household).where(Household.community_id == community.id).order_by(Household.id.desc())).scalars()
    sold = {sku: 0 for sku in items}
    for household in households:
        if all(n == SERVICE_SALES for n in sold.values()):
            break
        for sku, item in items.items():
            if sold[sku] == SERVICE_SALES or ops.household_balance(household.id) < item.price_points:
                continue
            by = seller if item.partner_id is not None else _demo_actor(community, clerk)
            sale.redeem(by, member_code=household.member_code, lines=[{"item_id": item.id, "quantity": 1}])
            sold[sku] += 1
            done["service_sales"] += 1
    db.session.flush()
    return done
