"""Pay codes (issue 16 part 4): a short number beside the QR for typing at the till, unique while valid
and guarded against guessing; a spent code refused at the scan, not only at the charge; and what the
phone asks to show the balance after a sale."""

from __future__ import annotations

import pytest

from conftest import main_text, page_login
from timebank.core import accounts

PHONE = "13800000001"
PASSWORD = "resident-pass"


@pytest.fixture
def shop(world):
    from types import SimpleNamespace

    from timebank.core.extensions import db
    from timebank.people.models import Household

    t = SimpleNamespace()
    t.hh = world.household(name="张家")
    t.resident = world.resident(t.hh, "张三", phone=PHONE, password=PASSWORD)
    t.hh2 = world.household(name="李家")
    t.resident2 = world.resident(t.hh2, "李四", phone="13800000002", password=PASSWORD)
    world.user("clerk", "clerk")
    world.community("lvshui", "绿水村")
    world.user("other_clerk", "clerk", community_code="lvshui")
    r = world.call("POST", "/api/v1/items", "clerk", json={"community_code": "hongxing", "sku": "soap", "name": "肥皂",
                                                          "price_points": 3})
    t.soap = r.get_json()["id"]
    world.call("POST", "/api/v1/stock-movements", "clerk", json={"item_id": t.soap, "quantity": 20,
                                                                "reason": "donation", "donor": "华联超市"})
    world.grant(t.hh, 30)
    world.grant(t.hh2, 30)
    with world.app.app_context():
        t.card = db.session.get(Household, t.hh).member_code
    return t


def issue(world, phone=PHONE):
    r = world.client.post("/api/v1/me/pay-code",
                          headers={"Authorization": f"Bearer {world.token(phone, PASSWORD)}"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def sell(world, shop, code, user="clerk"):
    return world.call("POST", "/api/v1/redemptions", user,
                      json={"pay_code": code, "lines": [{"item_id": shop.soap, "quantity": 1}]})


def test_a_pay_code_has_a_short_number_that_pays_once(world, shop):
    code = issue(world)
    number = code["short_code"]
    assert len(number) == 8 and number.isdigit() and "." in code["pay_code"]
    assert set(code) >= {"id", "pay_code", "short_code", "expires_at"}
    # Typed with a space, as the phone shows it.
    r = sell(world, shop, number[:4] + " " + number[4:])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["household_id"] == shop.hh and r.get_json()["identified_by"] == "pay_code"
    assert world.balance(accounts.household_points(shop.hh)) == 27
    # Either form of the same code is spent now.
    assert sell(world, shop, number).get_json()["error"] == "pay_code_used"
    assert sell(world, shop, code["pay_code"]).get_json()["error"] == "pay_code_used"
    # And the other way round: the QR spends the number too.
    other = issue(world)
    assert sell(world, shop, other["pay_code"]).status_code == 201
    assert sell(world, shop, other["short_code"]).status_code == 409
    # A number of this community only; an unknown number is no code.
    third = issue(world)
    assert sell(world, shop, third["short_code"], user="other_clerk").get_json()["error"] == "unknown_member"
    r = sell(world, shop, "00000000" if third["short_code"] != "00000000" else "00000001")
    assert r.status_code == 422 and r.get_json()["error"] == "pay_code_invalid"
    # GET stays as the contract has it: a signed code, nothing stored.
    r = world.client.get("/api/v1/me/pay-code", headers={"Authorization": f"Bearer {world.token(PHONE, PASSWORD)}"})
    assert set(r.get_json()) == {"pay_code", "expires_at"}
    assert world.call("POST", "/api/v1/me/pay-code", "clerk").status_code == 403


def test_a_number_is_unique_while_valid_and_free_again_once_expired(world, shop, clock, monkeypatch):
    from timebank.shop import operations

    drawn = iter(["11112222", "11112222", "33334444", "11112222"])
    monkeypatch.setattr(operations, "_random_short_code", lambda: next(drawn))
    first = issue(world)
    second = issue(world, "13800000002")             # draws 11112222 (taken, valid), then 33334444
    assert (first["short_code"], second["short_code"]) == ("11112222", "33334444")
    clock.advance(seconds=121)
    world._tokens.clear()
    assert sell(world, shop, "11112222").get_json()["error"] == "pay_code_expired"
    third = issue(world, "13800000002")              # 11112222 is free again: its old code has expired
    assert third["short_code"] == "11112222"
    r = sell(world, shop, "11112222")
    assert r.status_code == 201 and r.get_json()["household_id"] == shop.hh2
    # The expired first code's QR is still refused as expired, never taken for 李四's.
    assert sell(world, shop, first["pay_code"]).get_json()["error"] == "pay_code_expired"


def test_a_spent_code_is_refused_at_the_scan(app, world, shop):
    code = issue(world)
    clerk = page_login(app, "clerk")
    # Scanned before the sale: the till shows the household.
    for form in (code["pay_code"], code["short_code"]):
        r = clerk.get("/clerk/pos", query_string={"member": form})
        assert r.status_code == 200 and 'id="member-household"' in r.get_data(as_text=True)
    assert sell(world, shop, code["short_code"]).status_code == 201
    # Scanned again after it paid: refused at once, in words, and no household to sell to.
    for form in (code["pay_code"], code["short_code"]):
        r = clerk.get("/clerk/pos", query_string={"member": form})
        assert r.status_code == 409
        html = r.get_data(as_text=True)
        assert "已经用过" in main_text(r) and 'id="member-household"' not in html
    # The card still works, and a fresh code too.
    assert clerk.get("/clerk/pos", query_string={"member": shop.card}).status_code == 200
    assert clerk.get("/clerk/pos", query_string={"member": issue(world)["short_code"]}).status_code == 200


def test_the_phone_learns_of_the_sale_and_the_new_balance(app, world, shop, clock):
    phone = page_login(app, PHONE, PASSWORD)
    page = phone.get("/me/pay-code")
    assert page.status_code == 200 and 'id="paycode-number"' in page.get_data(as_text=True)
    r = phone.post("/me/pay-code.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    code = r.get_json()
    assert code["points"] == 30 and "<svg" in code["svg"] and len(code["short_code"]) == 8
    assert code["seconds_left"] == 120

    def state():
        response = phone.get(f"/me/pay-code/status.json?id={code['id']}")
        assert response.status_code == 200
        return response.get_json()

    assert state() == {"state": "valid", "points": 30}
    assert sell(world, shop, code["short_code"]).status_code == 201
    assert state() == {"state": "spent", "points": 27}
    later = phone.post("/me/pay-code.json").get_json()
    clock.advance(seconds=121)
    assert phone.get(f"/me/pay-code/status.json?id={later['id']}").get_json() == {"state": "expired", "points": 27}
    # Only one's own codes.
    other = page_login(app, "13800000002", PASSWORD)
    assert other.get(f"/me/pay-code/status.json?id={code['id']}").status_code == 404


def test_guessing_numbers_is_limited(make_app, world, shop):
    app = make_app(RATELIMIT_ENABLED=True, TIMEBANK_PAY_CODE_GUESS_LIMIT="3 per hour")
    client = app.test_client()
    clerk = {"Authorization": f"Bearer {world.token('clerk')}"}
    good = issue(world)["short_code"]
    wrong = [f"{n:08d}" for n in range(1, 6) if f"{n:08d}" != good][:3]
    for number in wrong:
        r = client.post("/api/v1/redemptions", headers=clerk,
                        json={"pay_code": number, "lines": [{"item_id": shop.soap, "quantity": 1}]})
        assert r.status_code == 422, r.get_json()
    r = client.post("/api/v1/redemptions", headers=clerk,
                    json={"pay_code": good, "lines": [{"item_id": shop.soap, "quantity": 1}]})
    assert r.status_code == 429 and r.get_json()["error"] == "rate_limited"
    # Cards are not numbers: the till goes on with them.
    r = client.post("/api/v1/redemptions", headers=clerk,
                    json={"member_code": shop.card, "lines": [{"item_id": shop.soap, "quantity": 1}]})
    assert r.status_code == 201
    # The till's scan step counts against the same limit.
    till = page_login(app, "clerk")
    assert till.get("/clerk/pos", query_string={"member": good}).status_code == 429
    assert till.get("/clerk/pos", query_string={"member": shop.card}).status_code == 200
