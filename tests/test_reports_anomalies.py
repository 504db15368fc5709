"""Anomalies: each kind is produced by a test, normal activity produces none, access and the page."""

from __future__ import annotations

from datetime import timedelta

import pytest

from timebank.core.clock import utc_naive

PASSWORD = "secret-pass"
URL = "/api/v1/reports/anomalies?community_code=hongxing"


class Town:
    def __init__(self, world, clock):
        self.world, self.clock, self.app = world, clock, world.app
        names = ["张家", "李家", "王家", "赵家", "孙家", "周家"]
        self.households = [world.household(name=n) for n in names]
        self.residents = [world.resident(h, n[0] + "一", phone=f"1390000000{i}", password=PASSWORD)
                          for i, (h, n) in enumerate(zip(self.households, names, strict=True))]
        self.phones = [f"1390000000{i}" for i in range(len(names))]
        world.user("committee", "committee")
        world.user("grid", "grid_worker")
        world.user("super", "supervisor")
        for clerk in ("clerk1", "clerk2", "clerk3"):
            world.user(clerk, "clerk")
        for code, review in (("quick", "auto"), ("review", "review")):
            r = world.call("POST", "/api/v1/rules", "committee", json={
                "community_code": "hongxing", "code": code, "title": "清扫楼道", "category": "volunteer",
                "points": 2, "minutes": 30, "review": review, "publicity_days": 0})
            assert r.status_code == 201, r.get_json()
        r = world.call("POST", "/api/v1/items", "committee",
                       json={"community_code": "hongxing", "sku": "oil", "name": "食用油", "price_points": 3})
        self.item = r.get_json()["id"]
        assert world.call("POST", "/api/v1/stock-movements", "committee", json={
            "item_id": self.item, "quantity": 500, "reason": "donation", "donor": "华联超市"}).status_code == 201
        for h, r in zip(self.households, self.residents, strict=True):
            self.grant(h, 500, r)

    def grant(self, household_id, points, resident_id):
        import ledger
        from timebank.core import accounts, ledgering
        from timebank.core.extensions import db
        from timebank.people.models import Household

        with self.app.app_context():
            h = db.session.get(Household, household_id)
            ledgering.post(h.community_id, [ledger.Leg(accounts.issuance_points(h.community_id, "volunteer"), -points),
                                            ledger.Leg(accounts.household_points(household_id), points)],
                           kind="grant", category="volunteer", memo="set-up", actor="test")
            ledgering.post(h.community_id, [ledger.Leg(accounts.issuance_minutes(h.community_id), -600),
                                            ledger.Leg(accounts.resident_minutes(resident_id), 600)],
                           kind="grant", category="time_bank", memo="set-up", actor="test")
            db.session.commit()

    def advance(self, **delta):
        self.clock.advance(**delta)
        self.world._tokens.clear()

    def claim(self, i, rule="quick"):
        r = self.world.call("POST", "/api/v1/claims", self.phones[i], json={
            "community_code": "hongxing", "rule_code": rule, "resident_id": self.residents[i]})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def approve(self, claim_id, user):
        r = self.world.call("POST", f"/api/v1/claims/{claim_id}/approve", user)
        assert r.status_code == 200, r.get_json()

    def help(self, requester, volunteer, minutes=30):
        w = self.world
        r = w.call("POST", "/api/v1/help-requests", self.phones[requester],
                   json={"resident_id": self.residents[requester], "title": "买菜", "minutes": minutes})
        assert r.status_code == 201, r.get_json()
        hid = r.get_json()["id"]
        assert w.call("POST", f"/api/v1/help-requests/{hid}/accept", self.phones[volunteer],
                      json={"volunteer_id": self.residents[volunteer]}).status_code == 200
        r = w.call("POST", f"/api/v1/help-requests/{hid}/complete", self.phones[requester])
        assert r.status_code == 200, r.get_json()
        return hid

    def sell(self, clerk, household_index, quantity=1):
        from timebank.core.extensions import db
        from timebank.people.models import Household

        with self.app.app_context():
            code = db.session.get(Household, self.households[household_index]).member_code
        r = self.world.call("POST", "/api/v1/redemptions", clerk,
                            json={"member_code": code, "lines": [{"item_id": self.item, "quantity": quantity}]})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def task(self, title="清扫楼道"):
        now = self.clock.now()
        r = self.world.call("POST", "/api/v1/tasks", "committee", json={
            "community_code": "hongxing", "rule_code": "quick", "title": title, "slots": 50,
            "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=3)).isoformat()})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def check_in(self, task_id, i, address, device):
        token = self.world.call("GET", f"/api/v1/tasks/{task_id}/checkin-code", "committee").get_json()["token"]
        r = self.world.call("POST", "/api/v1/checkins", self.phones[i], json={"token": token},
                            headers={"User-Agent": device}, environ_base={"REMOTE_ADDR": address})
        assert r.status_code == 201, r.get_json()

    def anomalies(self, user="committee", query=""):
        r = self.world.call("GET", URL + query, user)
        assert r.status_code == 200, r.get_json()
        return r.get_json()["items"]


@pytest.fixture
def town(world, clock):
    return Town(world, clock)


def kinds(items):
    return [a["kind"] for a in items]


def test_reciprocal_help(town):
    for _ in range(2):
        town.help(0, 1)
        town.help(1, 0)
    items = town.anomalies()
    assert kinds(items) == ["reciprocal_help"]
    a = items[0]
    assert {s["id"] for s in a["subjects"]} == {town.households[0], town.households[1]}
    assert len(a["evidence"]["a_helped_b"]) == 2 and len(a["evidence"]["b_helped_a"]) == 2
    assert a["evidence"]["a_to_b_minutes"] == 60 and "helped each other" in a["reason"]


def test_claim_burst(town):
    claims = []
    for _ in range(5):
        claims.append(town.claim(2))
        town.advance(minutes=12)  # five claims within 48 minutes
    items = town.anomalies()
    assert kinds(items) == ["claim_burst"]
    assert items[0]["evidence"]["claim_ids"] == claims and items[0]["evidence"]["count"] == 5
    assert items[0]["subjects"][0] == {"type": "household", "id": town.households[2], "name": "王家"}
    assert items[0]["subjects"][1]["name"] == "王一"


def test_approver_concentration(town):
    for _ in range(5):
        town.approve(town.claim(3, "review"), "committee")
        town.advance(hours=2)
    town.approve(town.claim(4, "review"), "grid")  # a second reviewer exists in the community
    items = town.anomalies()
    assert kinds(items) == ["approver_concentration"]
    a = items[0]
    assert a["evidence"]["approvals"] == 5 and a["evidence"]["by_this_approver"] == 5 and a["evidence"]["share"] == 1
    assert [s["type"] for s in a["subjects"]] == ["household", "user"] and a["subjects"][1]["name"] == "committee"


def test_clerk_volume_and_voids(town):
    receipts = [town.sell("clerk1", i % 6, quantity=10) for i in range(5)]
    town.sell("clerk2", 0)
    town.sell("clerk3", 1)
    for rid in receipts[:3]:
        r = town.world.call("POST", f"/api/v1/redemptions/{rid}/void", "clerk1", json={"reason": "mistake"})
        assert r.status_code == 200
    items = town.anomalies()
    assert kinds(items) == ["clerk_volume", "clerk_voids"]
    volume, voids = items
    assert volume["evidence"] == {"points": 150, "receipts": 5, "median_of_other_clerks": 3, "other_clerks": 2}
    assert volume["subjects"][0]["name"] == "clerk1"
    assert voids["evidence"] == {"voids": 3, "receipts_served": 5}


def test_shared_device(town):
    task = town.task()
    for i in range(3):
        town.check_in(task, i, "10.1.2.3", "Mozilla/5.0 (Linux; Android 10; Redmi 9A)")
    items = town.anomalies()
    assert kinds(items) == ["shared_device"]
    assert items[0]["evidence"]["address"] == "10.1.2.3" and len(items[0]["evidence"]["checkin_ids"]) == 3
    assert {s["id"] for s in items[0]["subjects"]} == set(town.residents[:3])
    with town.app.app_context():
        from timebank.core.extensions import db
        from timebank.earning.models import CheckIn

        row = db.session.execute(db.select(CheckIn).order_by(CheckIn.id)).scalars().first()
        assert (row.address, row.device) == ("10.1.2.3", "Mozilla/5.0 (Linux; Android 10; Redmi 9A)")


def test_shared_address(town):
    first, second = town.task("清扫楼道"), town.task("探访老人")
    for i in range(5):
        town.check_in(first if i < 3 else second, i, "10.9.9.9", f"phone-{i}")
    items = town.anomalies()
    assert kinds(items) == ["shared_address"]
    assert items[0]["evidence"]["tasks"] == [first, second] and items[0]["evidence"]["devices"] == 5


def test_normal_activity_produces_none(town):
    # Help once each way, and help between other households.
    town.help(0, 1)
    town.help(1, 0)
    town.help(2, 3)
    town.help(2, 3)
    # Claims spread over the day: four within an hour, the fifth later.
    for _ in range(4):
        town.claim(2)
        town.advance(minutes=10)
    town.advance(hours=3)
    town.claim(2)
    # Two reviewers share a household's claims (3 of 5 = 60%).
    for n in range(5):
        town.approve(town.claim(3, "review"), "committee" if n % 2 == 0 else "grid")
        town.advance(hours=2)
    # Clerks serve alike; one void among many receipts.
    served = [town.sell(clerk, i) for clerk in ("clerk1", "clerk2", "clerk3") for i in range(5)]
    town.world.call("POST", f"/api/v1/redemptions/{served[0]}/void", "clerk1", json={"reason": "mistake"})
    # A task where everyone uses the site's wifi with their own phones, and two on one phone.
    task = town.task()
    for i in range(5):
        town.check_in(task, i, "10.0.0.1", f"phone-{i}" if i != 4 else "phone-3")
    assert town.anomalies() == []
    assert town.anomalies("super") == []


def test_window_and_access(world, town):
    for _ in range(5):
        town.claim(2)
    town.advance(days=40)
    assert town.anomalies() == []  # the default window is the last 30 days
    since = (town.clock.now() - timedelta(days=45)).isoformat().replace("+", "%2B")
    assert kinds(town.anomalies(query=f"&since={since}")) == ["claim_burst"]
    world.community("lvye", "绿野村")
    world.user("lv_committee", "committee", community_code="lvye")
    assert world.call("GET", URL, "lv_committee").get_json()["error"] == "forbidden"
    assert world.call("GET", URL, "clerk1").status_code == 403
    assert world.call("GET", URL, "grid").status_code == 403
    assert world.call("GET", URL, town.phones[0]).status_code == 403
    assert world.call("GET", URL, "admin").status_code == 200
    assert world.client.get(URL).status_code == 401
    bad = world.call("GET", URL + "&since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "committee")
    assert bad.status_code == 422 and bad.get_json()["error"] == "validation_error"


def test_committee_page(world, town):
    for _ in range(5):
        town.claim(2)
    client = world.app.test_client()
    assert client.get("/committee/anomalies").status_code == 302  # to the login page
    r = client.post("/login", data={"username": "committee", "password": PASSWORD})
    assert r.status_code in (302, 303)
    page = client.get("/committee/anomalies")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "claim_burst" in html and "王家" in html and 'class="main"' in html  # the base layout's menu
    clerk = world.app.test_client()
    clerk.post("/login", data={"username": "clerk1", "password": PASSWORD})
    assert clerk.get("/committee/anomalies").status_code == 403
    quiet = client.get(f"/committee/anomalies?since={(utc_naive() + timedelta(days=2)).date()}"
                       f"&until={(utc_naive() + timedelta(days=3)).date()}")
    assert "claim_burst" not in quiet.get_data(as_text=True)


def test_fresh_rule_paying_many_points_on_its_first_day(town):
    """A rule made to pay somebody at once: created and claimed for 150 points the same day."""
    w = town.world
    r = w.call("POST", "/api/v1/rules", "committee", json={
        "community_code": "hongxing", "code": "bonus", "title": "特别贡献", "category": "volunteer",
        "points": 50, "minutes": 0, "review": "auto", "publicity_days": 0})
    assert r.status_code == 201, r.get_json()
    claims = [town.claim(3, rule="bonus") for _ in range(2)] + [town.claim(4, rule="bonus")]
    items = [a for a in town.anomalies() if a["kind"] == "fresh_rule"]
    assert len(items) == 1
    a = items[0]
    assert a["evidence"]["points"] == 150 and a["evidence"]["claim_ids"] == claims
    assert a["evidence"]["rule_code"] == "bonus"
    assert {s["type"] for s in a["subjects"]} == {"user", "household"}
    assert [s["name"] for s in a["subjects"] if s["type"] == "user"] == ["committee"]
    assert {s["id"] for s in a["subjects"] if s["type"] == "household"} == {town.households[3], town.households[4]}
    # The next day the same rule is an old rule: its claims are not flagged again.
    town.advance(days=1)
    town.claim(5, rule="bonus")
    flagged = [a for a in town.anomalies() if a["kind"] == "fresh_rule"]
    assert len(flagged) == 1 and town.claim(5, rule="quick") not in flagged[0]["evidence"]["claim_ids"]


def test_one_staff_member_entering_most_claims(town):
    """代录 concentrated on one grid worker: 10 of the month's 12 claims entered by them."""
    w = town.world
    entered = []
    for i in range(10):
        r = w.call("POST", "/api/v1/claims", "grid", json={
            "community_code": "hongxing", "rule_code": "review", "resident_id": town.residents[i % 6]})
        assert r.status_code == 201, r.get_json()
        entered.append(r.get_json()["id"])
    town.claim(0, rule="review")
    town.claim(1, rule="review")
    items = [a for a in town.anomalies() if a["kind"] == "entry_concentration"]
    assert len(items) == 1
    a = items[0]
    assert a["subjects"] == [{"type": "user", "id": a["subjects"][0]["id"], "name": "grid", "role": "grid_worker"}]
    assert a["evidence"]["entered"] == 10 and a["evidence"]["claims"] == 12 and a["evidence"]["claim_ids"] == entered
