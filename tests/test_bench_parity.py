"""SQLite and PostgreSQL build the same ledger: the same scripted day gives the same Merkle root and head.

The scenario runs through the HTTP API with the frozen clock, so every id, timestamp and account
code is deterministic on both databases (each test starts from a fresh database, so household and
claim ids start at 1 on both). The expected root and head were recorded from a SQLite run; ``make
test`` runs the suite on SQLite and again on PostgreSQL, so both are held to the same constants.
If the leaf encoding or the scenario changes on purpose, record the new values from a SQLite run.
"""

from __future__ import annotations

from sqlalchemy import select

import ledger
from ledger import merkle
from ledger.models import Transaction
from ledger.tree import MerkleTree
from timebank.core.extensions import db
from timebank.people.models import Household

EXPECTED_SIZE = 8
EXPECTED_KINDS = ["claim", "claim", "claim", "gift", "redemption", "redemption", "void", "return"]
EXPECTED_ROOT = "060cde7be273d69a745232f3492ac4261d0530b71ad2c5e48f0ac426550c5bf4"
EXPECTED_HEAD = "44286cc290b52d62839ac82abafc1f85ce691b304383981c7ed3f76ddd837bb0"


def _ok(response, status=201):
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _scripted_day(world, clock):
    w = world
    zhang = w.household(name="张家")
    li = w.household(name="李家", color="red")
    zhang_1 = w.resident(zhang, "张三", phone="13800000001", password="secret-pass")
    zhang_2 = w.resident(zhang, "张小三")
    li_1 = w.resident(li, "李四")
    w.user("grid", "grid_worker")
    w.user("boss", "committee")
    w.user("clerk", "clerk")
    with w.app.app_context():
        zhang_card = db.session.get(Household, zhang).member_code

    _ok(w.call("POST", "/api/v1/rules", "boss", json={
        "community_code": "hongxing", "code": "clean", "title": "清扫楼道", "category": "volunteer",
        "points": 30, "minutes": 60, "review": "auto", "publicity_days": 0}))
    _ok(w.call("POST", "/api/v1/rules", "boss", json={
        "community_code": "hongxing", "code": "visit", "title": "探访独居老人", "category": "neighbour_help",
        "points": 20, "review": "auto", "publicity_days": 0}))
    clock.advance(minutes=5)
    assert _ok(w.call("POST", "/api/v1/claims", "grid", json={
        "community_code": "hongxing", "rule_code": "clean", "resident_id": zhang_1}))["status"] == "posted"
    clock.advance(minutes=7)
    _ok(w.call("POST", "/api/v1/claims", "grid", json={
        "community_code": "hongxing", "rule_code": "visit", "resident_id": zhang_1}))
    clock.advance(minutes=3)
    _ok(w.call("POST", "/api/v1/claims", "grid", json={
        "community_code": "hongxing", "rule_code": "clean", "resident_id": li_1}))
    clock.advance(hours=1)
    _ok(w.call("POST", "/api/v1/hours/transfers", "13800000001", json={
        "from_resident_id": zhang_1, "to_resident_id": zhang_2, "minutes": 30}))

    soap = _ok(w.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 3}))["id"]
    oil = _ok(w.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "oil", "name": "食用油", "price_points": 15}))["id"]
    for item in (soap, oil):
        _ok(w.call("POST", "/api/v1/stock-movements", "clerk", json={
            "item_id": item, "quantity": 10, "reason": "donation", "donor": "爱心企业"}))
    clock.advance(minutes=30)
    sale = _ok(w.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": zhang_card, "lines": [{"item_id": soap, "quantity": 2}, {"item_id": oil, "quantity": 1}]}))
    clock.advance(minutes=2)
    second = _ok(w.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": zhang_card, "lines": [{"item_id": soap, "quantity": 1}]}))
    clock.advance(minutes=10)
    _ok(w.call("POST", f"/api/v1/redemptions/{second['id']}/void", "clerk", json={"reason": "按错了"}), 200)
    clock.advance(minutes=10)
    _ok(w.call("POST", f"/api/v1/redemptions/{sale['id']}/returns", "clerk", json={
        "lines": [{"item_id": soap, "quantity": 1}], "reason": "包装破损"}))


def test_same_operations_give_the_same_merkle_root_and_head_on_every_database(world, clock):
    _scripted_day(world, clock)
    with world.app.app_context():
        s = db.session
        report = ledger.verify(s)
        assert report.ok, report.problems
        tree = MerkleTree(s)
        root = merkle.to_hex(tree.root())
        head = s.execute(select(Transaction.hash).order_by(Transaction.id.desc()).limit(1)).scalar_one()
        kinds = [k for (k,) in s.execute(select(Transaction.kind).order_by(Transaction.id))]
    assert (tree.size(), report.head_hash) == (EXPECTED_SIZE, head)
    assert kinds == EXPECTED_KINDS, kinds
    assert root == EXPECTED_ROOT, f"root {root}, head {head}"
    assert head == EXPECTED_HEAD
