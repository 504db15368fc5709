"""A state machine of the love supermarket, driven through its HTTP API against a simple model.

Hypothesis stocks goods (donations, purchases), spoils and adjusts them, changes prices, sells
baskets by household card, resident card and phone pay code (some of them beyond the household's
points, the shelf or the monthly limit, some naming unknown cards or goods), voids receipts (again,
too), takes goods back, turns the month, and retries requests with the same ``Idempotency-Key``
(same body: the same answer and nothing moves again; another body: ``idempotency_key_reused``).
Every refusal must carry the expected error code and change nothing.

After every step the model and the database must agree: each household's points, each item's
stock, the supermarket's takings (what the receipts still charge), each receipt's status and what
was returned; no wallet and no shelf below zero; postings sum to zero per unit; receipt numbers run
1, 2, 3... without gaps; no donation's trail claims more units out than it brought; and
``GET /api/v1/ledger/verify`` (hash chain, cached balances, stock and lot caches) reports no problem.

Runs and steps come from the Hypothesis profile (tests/conftest.py); each run starts from an empty
database, so a failure replays alone from the steps Hypothesis prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import hypothesis.strategies as st
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
from conftest import START
from ledger.models import Posting
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.people.operations import create_community, create_household, create_resident, create_user
from timebank.shop import operations as ops
from timebank.shop.models import Item, Redemption, StockMovement

HOUSEHOLDS = 3
ITEMS = 3
PASSWORD = "secret-pass"
DONORS = ["爱心企业·华联超市", "帮扶单位·区税务局", "王阿姨"]
#: Items 0 and 1 carry a barcode (the scanner's way); item 2 is sold by id only.
BARCODES = ["6900000000011", "6900000000028", None]

#: A basket: lines of (item index, quantity, scanned by barcode?); lines of one item add up.
BASKETS = st.lists(st.tuples(st.integers(0, ITEMS - 1), st.integers(1, 4), st.booleans()), min_size=1, max_size=3)


@dataclass
class Receipt:
    id: int
    household: int
    month: int
    #: item index -> [quantity bought, unit price, quantity returned]
    lines: dict[int, list[int]]
    total: int
    returned_points: int = 0
    voided: bool = False

    @property
    def charged(self) -> int:
        """Points the receipt still holds (what the supermarket's account keeps for it)."""
        return 0 if self.voided else self.total - self.returned_points


@dataclass
class Keyed:
    """A request sent with an Idempotency-Key, and its first answer."""

    key: str
    url: str
    body: dict
    other_body: dict
    status: int
    answer: dict = field(default_factory=dict)


def make_machine(app, clock, reset_database, done):
    """The machine class; ``done`` (a Counter) counts what its steps did, over all runs."""

    class ShopMachine(RuleBasedStateMachine):
        ready = False

        # --- set-up -----------------------------------------------------------------------

        @initialize(prices=st.lists(st.integers(1, 40), min_size=ITEMS, max_size=ITEMS),
                    limits=st.lists(st.none() | st.integers(1, 6), min_size=ITEMS, max_size=ITEMS),
                    grants=st.lists(st.integers(0, 300), min_size=HOUSEHOLDS, max_size=HOUSEHOLDS),
                    stock=st.lists(st.integers(0, 12), min_size=ITEMS, max_size=ITEMS))
        def setup(self, prices, limits, grants, stock):
            reset_database(app)
            clock.set(START)
            self.client = app.test_client()
            self.tokens = {}
            with app.app_context():
                community = create_community("hongxing", "红星社区")
                self.community_id = community.id
                clerk = create_user("clerk", PASSWORD, "clerk", community_id=community.id, phone="13700000001")
                create_user("watcher", PASSWORD, "supervisor", community_id=community.id, phone="13700000002")
                self.households, self.cards, self.phones = [], [], []
                for n in range(HOUSEHOLDS):
                    household = create_household(community, f"户{n}", "幸福路1号", "1", "green")
                    resident = create_resident(household, f"居民{n}", f"1380000000{n}", PASSWORD)
                    self.households.append(household.id)
                    self.cards.append({"household": household.member_code, "resident": resident.member_code})
                    self.phones.append(f"1380000000{n}")
                    if grants[n]:
                        ledger.post(db.session, [
                            ledger.Leg(accounts.issuance_points(community.id, "volunteer"), -grants[n]),
                            ledger.Leg(accounts.household_points(household.id), grants[n])],
                            kind="grant", category="volunteer", memo="test set-up", actor="test")
                self.items = []
                for n in range(ITEMS):
                    item = ops.create_item(community, clerk, sku=f"g{n}", name=f"货{n}", price_points=prices[n],
                                           barcode=BARCODES[n], monthly_limit_per_household=limits[n])
                    self.items.append(item.id)
                    if stock[n]:
                        ops.record_movement(item, clerk, quantity=stock[n], reason="donation", donor=DONORS[n])
                db.session.commit()
            self.balance = list(grants)
            self.on_hand = list(stock)
            self.price = list(prices)
            self.limit = list(limits)
            self.receipts: list[Receipt] = []
            self.keyed: list[Keyed] = []
            self.pay_codes: list[list] = []  # [code, household index, used?, month issued]
            self.month = 0
            self.ready = True

        # --- helpers ----------------------------------------------------------------------

        def _token(self, username):
            if username not in self.tokens:
                r = self.client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
                assert r.status_code == 200, r.get_json()
                self.tokens[username] = r.get_json()["access_token"]
            return self.tokens[username]

        def _headers(self, username="clerk", key=None):
            headers = {"Authorization": f"Bearer {self._token(username)}"}
            if key is not None:
                headers["Idempotency-Key"] = key
            return headers

        def _send(self, url, body, other_body, keyed):
            """POST as the clerk; with ``keyed``, under a fresh Idempotency-Key that a retry may reuse."""
            if keyed:
                assert other_body != body, "the retry with another body needs another body"
            key = f"till-{len(self.keyed) + 1}" if keyed else None
            r = self.client.post(url, json=body, headers=self._headers(key=key))
            if keyed:
                self.keyed.append(Keyed(key, url, body, other_body, r.status_code, r.get_json()))
            return r

        @staticmethod
        def _refused(r, status, code):
            assert r.status_code == status, (r.status_code, r.get_json())
            assert r.mimetype == "application/problem+json"
            assert r.get_json()["error"] == code, r.get_json()
            done[code] += 1

        def _line(self, index, quantity, by_barcode):
            if by_barcode and BARCODES[index]:
                return {"barcode": BARCODES[index], "quantity": quantity}
            return {"item_id": self.items[index], "quantity": quantity}

        def _bought(self, household, index):
            """Units of an item the household took this month and still holds (the monthly limit)."""
            return sum(r.lines[index][0] - r.lines[index][2] for r in self.receipts
                       if r.household == household and r.month == self.month and not r.voided
                       and index in r.lines)

        def _expected_sale(self, household, basket):
            """(201, total, basket) or (409, error code, basket), the basket's lines of one item added
            up; checked in the till's order: monthly limits, stock, points."""
            wanted: dict[int, int] = {}
            for index, quantity, _ in basket:
                wanted[index] = wanted.get(index, 0) + quantity
            for index, quantity in wanted.items():
                if self.limit[index] is not None and self._bought(household, index) + quantity > self.limit[index]:
                    return 409, "limit_exceeded", wanted
            for index, quantity in wanted.items():
                if self.on_hand[index] < quantity:
                    return 409, "insufficient_stock", wanted
            total = sum(self.price[index] * quantity for index, quantity in wanted.items())
            if self.balance[household] < total:
                return 409, "insufficient_points", wanted
            return 201, total, wanted

        def _check_sale(self, r, household, basket, identified_by):
            status, outcome, wanted = self._expected_sale(household, basket)
            if status != 201:
                self._refused(r, status, outcome)
                return False
            assert r.status_code == 201, (r.status_code, r.get_json(), wanted)
            body = r.get_json()
            total = outcome
            assert body["receipt_no"] == len(self.receipts) + 1
            assert body["household_id"] == self.households[household]
            assert body["identified_by"] == identified_by and body["status"] == "completed"
            assert body["total_points"] == total
            assert body["balance_after"] == self.balance[household] - total
            assert {line["item_id"]: (line["quantity"], line["unit_points"]) for line in body["lines"]} == {
                self.items[index]: (quantity, self.price[index]) for index, quantity in wanted.items()}
            self.balance[household] -= total
            for index, quantity in wanted.items():
                self.on_hand[index] -= quantity
            self.receipts.append(Receipt(body["id"], household, self.month,
                                         {i: [q, self.price[i], 0] for i, q in wanted.items()}, total))
            done["sold"] += 1
            return True

        # --- stock ------------------------------------------------------------------------

        @rule(index=st.integers(0, ITEMS - 1), quantity=st.integers(1, 10),
              donor=st.none() | st.sampled_from(DONORS), keyed=st.booleans(),
              slip=st.sampled_from([None, None, None, "no donor", "no units"]))
        def stock_in(self, index, quantity, donor, keyed, slip):
            """A donation (with its donor) or a purchase; now and then a slip the shop refuses (a
            donation without a donor, a purchase of no units), which moves nothing."""
            body = {"item_id": self.items[index], "quantity": quantity,
                    "reason": "donation" if donor else "purchase"}
            if donor:
                body["donor"] = donor
            if slip == "no donor":
                body = {"item_id": self.items[index], "quantity": quantity, "reason": "donation"}
            elif slip == "no units":
                body = {"item_id": self.items[index], "quantity": 1 - quantity, "reason": "purchase"}
            r = self._send("/api/v1/stock-movements", body, {**body, "quantity": quantity + 1}, keyed)
            if slip:
                self._refused(r, 422, "validation_error")
                return
            assert r.status_code == 201, r.get_json()
            self.on_hand[index] += quantity
            assert r.get_json()["on_hand"] == self.on_hand[index]

        @rule(index=st.integers(0, ITEMS - 1), reason=st.sampled_from(["spoilage", "adjustment"]),
              quantity=st.integers(-5, 5).filter(bool), keyed=st.booleans())
        def stock_out_or_adjust(self, index, reason, quantity, keyed):
            body = {"item_id": self.items[index], "quantity": quantity, "reason": reason}
            r = self._send("/api/v1/stock-movements", body, {**body, "note": "other"}, keyed)
            delta = -abs(quantity) if reason == "spoilage" else quantity
            if self.on_hand[index] + delta < 0:
                self._refused(r, 409, "insufficient_stock")
                return
            assert r.status_code == 201, r.get_json()
            self.on_hand[index] += delta
            assert r.get_json()["on_hand"] == self.on_hand[index]

        @rule(index=st.integers(0, ITEMS - 1), price=st.integers(1, 40))
        def change_price(self, index, price):
            r = self.client.post(f"/api/v1/items/{self.items[index]}/price", json={"price_points": price},
                                 headers=self._headers())
            assert r.status_code == 200 and r.get_json()["price_points"] == price, r.get_json()
            self.price[index] = price

        # --- sales ------------------------------------------------------------------------

        @rule(household=st.integers(0, HOUSEHOLDS - 1), card=st.sampled_from(["household", "resident"]),
              basket=BASKETS, keyed=st.booleans(),
              unknown=st.sampled_from([None, None, None, None, "member", "item", "barcode"]))
        def sell(self, household, card, basket, keyed, unknown):
            """A sale by household or resident card. Now and then the card or some goods are unknown,
            which is refused before limits, stock and points are looked at."""
            code = self.cards[household][card]
            lines = [self._line(*line) for line in basket]
            if unknown == "member":
                code = "NO-SUCH-CARD"
            elif unknown == "item":
                lines.append({"item_id": 999_999, "quantity": 1})
            elif unknown == "barcode":
                lines.insert(0, {"barcode": "0000000000000", "quantity": 1})
            body = {"member_code": code, "lines": lines}
            other = {"member_code": code, "lines": lines + [{"item_id": self.items[0], "quantity": 1}]}
            r = self._send("/api/v1/redemptions", body, other, keyed)
            if unknown:
                self._refused(r, 404, "unknown_member" if unknown == "member" else "unknown_item")
            else:
                self._check_sale(r, household, basket, "member_code")

        @rule(household=st.integers(0, HOUSEHOLDS - 1), basket=BASKETS, keyed=st.booleans())
        def sell_by_pay_code(self, household, basket, keyed):
            r = self.client.get("/api/v1/me/pay-code", headers=self._headers(self.phones[household]))
            assert r.status_code == 200, r.get_json()
            code = r.get_json()["pay_code"]
            lines = [self._line(*line) for line in basket]
            r = self._send("/api/v1/redemptions", {"pay_code": code, "lines": lines},
                           {"pay_code": code, "lines": lines + [{"item_id": self.items[0], "quantity": 1}]}, keyed)
            self.pay_codes.append([code, household, self._check_sale(r, household, basket, "pay_code"), self.month])

        @precondition(lambda self: self.pay_codes)
        @rule(pick=st.integers(0, 10_000), basket=BASKETS)
        def reuse_pay_code(self, pick, basket):
            """A used pay code is refused before anything else; a refused sale left its code unused; a
            code lives two minutes, so one from an earlier month has expired."""
            entry = self.pay_codes[pick % len(self.pay_codes)]
            code, household, used, month = entry
            r = self._send("/api/v1/redemptions", {"pay_code": code, "lines": [self._line(*b) for b in basket]},
                           {}, False)
            if month != self.month:
                self._refused(r, 410, "pay_code_expired")
            elif used:
                self._refused(r, 409, "pay_code_used")
            else:
                entry[2] = self._check_sale(r, household, basket, "pay_code")

        # --- voids and returns ------------------------------------------------------------

        @precondition(lambda self: self.receipts)
        @rule(pick=st.integers(0, 10_000), keyed=st.booleans())
        def void(self, pick, keyed):
            receipt = self.receipts[pick % len(self.receipts)]
            r = self._send(f"/api/v1/redemptions/{receipt.id}/void", {"reason": "扫错了"}, {"reason": "整单作废"},
                           keyed)
            if receipt.voided:
                self._refused(r, 409, "already_voided")
                return
            if receipt.charged == 0:
                self._refused(r, 409, "fully_returned")
                return
            assert r.status_code == 200, r.get_json()
            body = r.get_json()
            refunded = receipt.charged
            self.balance[receipt.household] += refunded
            for index, (quantity, _, returned) in receipt.lines.items():
                self.on_hand[index] += quantity - returned
            receipt.voided = True
            done["voided"] += 1
            assert body["status"] == "voided" and body["refunded_points"] == refunded
            assert body["balance_after"] == self.balance[receipt.household]

        @precondition(lambda self: self.receipts)
        @rule(pick=st.integers(0, 10_000), keyed=st.booleans(),
              lines=st.lists(st.tuples(st.booleans(), st.integers(0, 10), st.integers(1, 3)), min_size=1, max_size=3),
              everything=st.booleans())
        def give_back(self, pick, keyed, lines, everything):
            """Return some goods: each line an item of the receipt, or (False) any item of the shop;
            or everything the receipt still holds (after which it cannot be voided)."""
            receipt = self.receipts[pick % len(self.receipts)]
            bought = sorted(receipt.lines)
            wanted: dict[int, int] = {}
            for on_receipt, n, quantity in lines:
                index = bought[n % len(bought)] if on_receipt else n % ITEMS
                wanted[index] = wanted.get(index, 0) + quantity
            left = {i: quantity - returned for i, (quantity, _, returned) in receipt.lines.items()
                    if quantity > returned}
            if everything and left:
                wanted = left
            body = {"reason": "不合适", "lines": [{"item_id": self.items[i], "quantity": q} for i, q in wanted.items()]}
            r = self._send(f"/api/v1/redemptions/{receipt.id}/returns", body, {**body, "reason": "坏了"}, keyed)
            if receipt.voided:
                self._refused(r, 409, "already_voided")
                return
            if any(i not in receipt.lines or q > receipt.lines[i][0] - receipt.lines[i][2] for i, q in wanted.items()):
                self._refused(r, 409, "return_exceeds_purchase")
                return
            assert r.status_code == 201, r.get_json()
            points = sum(receipt.lines[i][1] * q for i, q in wanted.items())
            self.balance[receipt.household] += points
            for index, quantity in wanted.items():
                self.on_hand[index] += quantity
                receipt.lines[index][2] += quantity
            receipt.returned_points += points
            done["returned"] += 1
            body = r.get_json()
            assert body["points"] == points and body["balance_after"] == self.balance[receipt.household]

        # --- time and retries -------------------------------------------------------------

        @precondition(lambda self: self.month < 2)
        @rule()
        def next_month(self):
            """A new calendar month: the monthly limits start again."""
            clock.advance(days=31)
            self.month += 1
            self.tokens.clear()  # bearer tokens last a working day

        @precondition(lambda self: self.keyed)
        @rule(pick=st.integers(0, 10_000), other_body=st.booleans())
        def retry(self, pick, other_body):
            """The same key again: with the same body the first answer comes back and nothing moves;
            with another body the key is refused."""
            sent = self.keyed[pick % len(self.keyed)]
            r = self.client.post(sent.url, json=sent.other_body if other_body else sent.body,
                                 headers=self._headers(key=sent.key))
            if other_body:
                self._refused(r, 422, "idempotency_key_reused")
                return
            assert r.headers.get("Idempotent-Replayed") == "true"
            assert (r.status_code, r.get_json()) == (sent.status, sent.answer)
            done["replayed"] += 1

        # --- invariants -------------------------------------------------------------------

        @invariant()
        def books_agree_with_the_model(self):
            if not self.ready:
                return
            with app.app_context():
                s = db.session
                wallets = [accounts.household_points(h) for h in self.households]
                found = ledger.balances(s, wallets)
                stock = dict(s.execute(select(Item.id, Item.on_hand)).all())
                assert all(points >= 0 for points in found.values()), found
                assert all(units >= 0 for units in stock.values()), stock
                assert [found[w] for w in wallets] == self.balance
                assert [stock[i] for i in self.items] == self.on_hand
                per_unit = dict(s.execute(select(Posting.unit, func.sum(Posting.amount)).group_by(Posting.unit)).all())
                assert all(total == 0 for total in per_unit.values()), per_unit
                assert ledger.balance(s, accounts.supermarket_points(self.community_id)) == sum(
                    r.charged for r in self.receipts)
                rows = s.execute(select(Redemption.id, Redemption.receipt_no, Redemption.status,
                                        Redemption.returned_points).order_by(Redemption.receipt_no)).all()
                assert [tuple(row) for row in rows] == [
                    (r.id, n, "voided" if r.voided else "completed", r.returned_points)
                    for n, r in enumerate(self.receipts, 1)]
                # Each donation's trail never claims more units out than it brought, nor fewer than none.
                donations = s.execute(select(StockMovement).where(StockMovement.reason == "donation")).scalars()
                for row in ops.donation_rows(list(donations)):
                    assert 0 <= row["units_remaining"] <= row["quantity"], row
            r = self.client.get("/api/v1/ledger/verify", headers=self._headers("watcher"))
            assert r.status_code == 200 and r.get_json()["ok"], r.get_json()

    return ShopMachine


def test_shop_state_machine(app, clock, reset_database):
    """Runs and steps per the active profile; new examples every run (a failure prints its steps)."""
    done = Counter()
    run_state_machine_as_test(make_machine(app, clock, reset_database, done), settings=settings(
        deadline=None, suppress_health_check=[HealthCheck.too_slow]))
    if settings.default.max_examples >= 50:
        # The runs exercised sales, voids, returns and replays, not only refusals (each of these
        # happens dozens of times in 50 runs; fewer runs may miss one by chance).
        assert all(done[what] for what in ("sold", "voided", "returned", "replayed", "already_voided")), done
