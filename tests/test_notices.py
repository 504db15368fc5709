"""Notices (issue 19, part 4): the outbox written with each event, its delivery by text message
through an HTTP gateway (a fake one on 127.0.0.1 here) with retries and dead letters, the
resident's notices with read marks, and the printed list for residents without a phone."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from conftest import IS_POSTGRES, World, main_text, page_login
from earning_support import PASSWORD, advance, build_town, claim, rule
from timebank.core import boundary
from timebank.core.extensions import db
from timebank.notices.models import Notification

# --- a fake SMS gateway ------------------------------------------------------------------------------

class FakeGateway:
    """An HTTP server on 127.0.0.1 that takes text messages; ``answers`` says what it answers next
    (a status code; the last one repeats)."""

    def __init__(self):
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.answers = [200]
        self.during = None  # called while a request is being answered
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.received.append(body)
                gateway.headers.append(dict(self.headers))
                if gateway.during is not None:
                    gateway.during()
                status = gateway.answers.pop(0) if len(gateway.answers) > 1 else gateway.answers[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status < 300 else b'{"error": "no"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    fake = FakeGateway()
    yield fake
    fake.close()


@pytest.fixture
def sms_world(make_app, gateway):
    """A community whose app sends text messages through the fake gateway."""
    app = make_app(TIMEBANK_SMS_URL=gateway.url, TIMEBANK_SMS_TOKEN="gw-secret", TIMEBANK_SMS_SIGNATURE="【红星社区】")
    w = World(app, app.test_client())
    w.community()
    w.user("admin", "admin", community_code=None)
    return w


# --- helpers -------------------------------------------------------------------------------------------

def notices(app, **where) -> list[Notification]:
    with app.app_context():
        query = select(Notification).order_by(Notification.id)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        rows = db.session.execute(query).scalars().all()
        db.session.expunge_all()
        return rows


def mine(world, username, **params):
    r = world.call("GET", "/api/v1/me/notifications", username, query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def form_key(page, form_id: str) -> str:
    html = page.get_data(as_text=True)
    form = html.split(f'id="{form_id}"', 1)[1]
    return re.search(r'name="form_key" value="([^"]+)"', form).group(1)


def grant_now(world, household_id, points):
    """Points dated by the app's clock (the tests move it), as a claim's would be."""
    import ledger
    from timebank.core import accounts
    from timebank.core.ledgering import post

    with world.app.app_context():
        post(1, [ledger.Leg(accounts.issuance_points(1, "moral"), -points),
                 ledger.Leg(accounts.household_points(household_id), points)], kind="grant", memo="test",
             actor="test")
        db.session.commit()


def run_job(app, name):
    from timebank.core.jobs import JOBS

    with app.app_context():
        return boundary.run_job_once(JOBS[name].func)


# --- the events of a claim ---------------------------------------------------------------------------

def test_a_claimant_is_told_of_approval_rejection_objection_and_the_end_of_publicity(world, clock):
    t = build_town(world)
    rule(world)  # reviewed, 3 days on the notice board
    first = claim(world, t.r1, t.resident1)["id"]
    second = claim(world, t.r1, t.resident1, note="again")["id"]
    assert mine(world, t.resident1)["items"] == []  # a claim made is not news to the claimant

    assert world.call("POST", f"/api/v1/claims/{first}/approve", "committee").status_code == 200
    assert world.call("POST", f"/api/v1/claims/{second}/reject", "committee",
                      json={"reason": "材料不全"}).status_code == 200
    listed = mine(world, t.resident1)
    assert [n["event"] for n in listed["items"]] == ["claim_rejected", "claim_approved"]  # newest first
    assert listed["unread_count"] == 2
    assert "材料不全" in listed["items"][0]["text"]
    approved = listed["items"][1]
    assert approved["facts"]["claim_id"] == first and approved["facts"]["points"] == 10
    assert approved["read"] is False and approved["channel"] == "page" and approved["status"] == "none"
    assert "清扫楼道" in approved["text"] and "2026-03-05" in approved["text"]  # on the board until then

    # A neighbour objects while it is on the board; the claimant is told, the objector's name is not.
    assert world.call("POST", f"/api/v1/claims/{first}/object", t.resident2,
                      json={"reason": "没看到他扫"}).status_code == 200
    told = mine(world, t.resident1)["items"][0]
    assert told["event"] == "claim_objected" and "没看到他扫" in told["text"] and "李四" not in told["text"]

    # Approved again, then the publicity ends: the points are credited and the claimant told.
    assert world.call("POST", f"/api/v1/claims/{first}/approve", "committee").status_code == 200
    advance(world, clock, days=3, minutes=1)
    run_job(world.app, "close_publicity")
    events = [n["event"] for n in mine(world, t.resident1)["items"]]
    assert events == ["publicity_ended", "claim_approved", "claim_objected", "claim_rejected", "claim_approved"]
    # Only the claimant: the other member of the household and other residents hear nothing of it.
    assert mine(world, t.resident1b)["items"] == [] and mine(world, t.resident2)["items"] == []
    # Running the job again tells nobody twice.
    run_job(world.app, "close_publicity")
    assert len(mine(world, t.resident1)["items"]) == 5


def test_a_refused_event_leaves_no_notice(world):
    """The outbox is written in the event's transaction: an approval refused (the reviewer's own
    household) writes no notice."""
    t = build_town(world)
    rule(world)
    made = claim(world, t.r1, t.resident1)["id"]
    r = world.call("POST", f"/api/v1/claims/{made}/approve", "committee_h1")
    assert r.status_code == 403 and r.get_json()["error"] == "self_approval"
    assert notices(world.app) == []


def test_read_marks_are_ones_own(world):
    t = build_town(world)
    rule(world)
    made = claim(world, t.r1, t.resident1)["id"]
    world.call("POST", f"/api/v1/claims/{made}/reject", "committee", json={"reason": "重复"})
    notice_id = mine(world, t.resident1)["items"][0]["id"]
    # Somebody else's notice does not exist for them (404), and nothing is marked.
    for other in (t.resident2, t.resident1b, "committee"):
        r = world.call("POST", f"/api/v1/me/notifications/{notice_id}/read", other)
        assert r.status_code == 404, other
    assert mine(world, t.resident1)["unread_count"] == 1
    r = world.call("POST", f"/api/v1/me/notifications/{notice_id}/read", t.resident1)
    assert r.status_code == 200 and r.get_json()["read"] is True
    again = world.call("POST", f"/api/v1/me/notifications/{notice_id}/read", t.resident1)
    assert again.get_json()["read_at"] == r.get_json()["read_at"]
    assert mine(world, t.resident1)["unread_count"] == 0
    assert mine(world, t.resident1, unread="true")["items"] == []


# --- the supermarket ---------------------------------------------------------------------------------

def _goods(world, threshold):
    r = world.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "肥皂", "price_points": 3,
        "low_stock_threshold": threshold})
    assert r.status_code == 201, r.get_json()
    item = r.get_json()["id"]
    r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 5, "reason": "donation", "donor": "华联超市"})
    assert r.status_code == 201, r.get_json()
    return item


def _card(app, household_id):
    from timebank.people.models import Household

    with app.app_context():
        return db.session.get(Household, household_id).member_code


def test_a_sale_tells_the_household_and_low_stock_tells_the_clerks_once(world):
    t = build_town(world)
    world.grant(t.h1, 100)
    item = _goods(world, threshold=2)
    card = _card(world.app, t.h1)
    sale = world.call("POST", "/api/v1/redemptions", "clerk",
                      json={"member_code": card, "lines": [{"item_id": item, "quantity": 2}]})
    assert sale.status_code == 201, sale.get_json()
    # Every active member of 张家 is told; 张主任 has no phone, but the others have: the page only.
    told = notices(world.app, event="pay_code_used")
    assert sorted(n.resident_id for n in told) == sorted([t.r1, t.r1b, t.c1_resident])
    assert {n.channel for n in told} == {"page"}
    text = mine(world, t.resident1b)["items"][0]["text"]
    assert "6" in text and "94" in text and str(sale.get_json()["receipt_no"]) in text
    assert notices(world.app, event="low_stock") == []  # 3 left, above 2

    world.call("POST", "/api/v1/redemptions", "clerk", json={"member_code": card, "lines": [{"item_id": item,
                                                                                              "quantity": 1}]})
    low = notices(world.app, event="low_stock")
    assert len(low) == 1 and low[0].user_id is not None
    clerk_items = mine(world, "clerk")["items"]
    assert [n["event"] for n in clerk_items] == ["low_stock"] and "肥皂" in clerk_items[0]["text"]
    # Lower still: not told again until restocked above the threshold; spoilage counts as a fall too.
    world.call("POST", "/api/v1/redemptions", "clerk", json={"member_code": card, "lines": [{"item_id": item,
                                                                                              "quantity": 1}]})
    assert len(notices(world.app, event="low_stock")) == 1
    world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 5, "reason": "donation", "donor": "华联超市"})
    r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 4, "reason": "spoilage"})
    assert r.status_code == 201, r.get_json()
    assert len(notices(world.app, event="low_stock")) == 2
    # Only clerks: the committee and the grid worker are not told of stock.
    assert {n.user_id for n in notices(world.app, event="low_stock")} == {low[0].user_id}


def test_a_household_without_a_phone_gets_printed_notices(world):
    t = build_town(world)
    quiet = world.household(name="赵家", grid="3")
    grandma = world.resident(quiet, "赵奶奶")
    grandpa = world.resident(quiet, "赵爷爷")
    world.grant(quiet, 50)
    item = _goods(world, threshold=0)
    r = world.call("POST", "/api/v1/redemptions", "clerk",
                   json={"member_code": _card(world.app, quiet), "lines": [{"item_id": item, "quantity": 1}]})
    assert r.status_code == 201
    printed = notices(world.app, channel="print")
    assert sorted(n.resident_id for n in printed) == sorted([grandma, grandpa])
    assert {n.status for n in printed} == {"pending"}

    # The grid worker's list, by grid; a resident may not see it.
    listed = world.call("GET", "/api/v1/notifications/print-list?community_code=hongxing&grid=3", "grid")
    assert listed.status_code == 200, listed.get_json()
    items = listed.get_json()["items"]
    assert [i["resident_name"] for i in items] == ["赵奶奶", "赵爷爷"] and items[0]["household_name"] == "赵家"
    assert world.call("GET", "/api/v1/notifications/print-list?community_code=hongxing&grid=1",
                      "grid").get_json()["items"] == []
    assert world.call("GET", "/api/v1/notifications/print-list?community_code=hongxing",
                      t.resident1).status_code == 403

    # The printed page, then "handed over".
    client = page_login(world.app, "grid")
    page = client.get("/grid/notices?grid=3")
    assert page.status_code == 200
    words = main_text(page)
    assert "赵奶奶" in words and "赵家" in words
    r = world.call("POST", f"/api/v1/notifications/{items[0]['id']}/delivered", "grid")
    assert r.status_code == 200 and r.get_json()["status"] == "delivered"
    assert r.get_json()["delivered_by_user_id"] is not None
    left = items[1]["id"]
    page = client.get("/grid/notices?grid=3")
    r = client.post("/grid/notices/delivered", data={"form_key": form_key(page, "delivered-form"),
                                                     "notice_id": [str(left)], "grid": "3"})
    assert r.status_code == 302
    assert {n.status for n in notices(world.app, channel="print")} == {"delivered"}
    assert "赵奶奶" not in main_text(client.get("/grid/notices?grid=3"))


# --- the month close ---------------------------------------------------------------------------------

def test_a_month_waiting_for_its_second_sign_off_tells_the_other_committee_members(world, clock):
    build_town(world)
    world.user("committee2", "committee")
    advance(world, clock, days=31)  # March 2026 is over
    r = world.call("POST", "/api/v1/month-closes", "committee", json={"community_code": "hongxing",
                                                                       "month": "2026-03"})
    assert r.status_code in (200, 201), r.get_json()
    waiting = notices(world.app, event="month_signoff_waiting")
    users = {n.user_id for n in waiting}
    with world.app.app_context():
        from timebank.core.users import User

        names = {u.username for u in db.session.execute(select(User).where(User.id.in_(users))).scalars()}
    # The other committee members of the community; not the signer, not another person's community.
    assert names == {"committee_h1", "committee2"}
    assert "2026-03" in mine(world, "committee2")["items"][0]["text"]
    assert mine(world, "committee")["items"] == []


# --- points about to expire ----------------------------------------------------------------------------

def test_households_are_told_thirty_days_before_their_points_expire_once(world, clock):
    from timebank.core.extensions import db as _db
    from timebank.people.models import Community

    t = build_town(world)
    with world.app.app_context():
        community = _db.session.execute(select(Community).where(Community.code == "hongxing")).scalar_one()
        community.expiry_policy = "annual"
        _db.session.commit()
    grant_now(world, t.h1, 40)
    # 2 March: the year's end is far; nothing said.
    assert run_job(world.app, "warn_expiring_points")["told"] == []
    clock.set(datetime(2026, 12, 5, 1, 0, tzinfo=UTC))  # 5 December, 09:00 in Shanghai
    told = run_job(world.app, "warn_expiring_points")["told"]
    assert told == [{"household_id": t.h1, "points": 40, "by": "2026-12-31"}]
    expiring = notices(world.app, event="points_expiring")
    assert sorted(n.resident_id for n in expiring) == sorted([t.r1, t.r1b, t.c1_resident])
    assert "40" in mine(world, t.resident1)["items"][0]["text"]
    assert "2026-12-31" in mine(world, t.resident1)["items"][0]["text"]
    # The next days: told once a year.
    clock.advance(days=1)
    assert run_job(world.app, "warn_expiring_points")["told"] == []
    assert len(notices(world.app, event="points_expiring")) == 3


def test_rolling_expiry_is_warned_at_most_once_in_thirty_days(world, clock):
    from timebank.people.models import Community

    t = build_town(world)
    with world.app.app_context():
        community = db.session.execute(select(Community).where(Community.code == "hongxing")).scalar_one()
        community.expiry_policy, community.expiry_months = "rolling", 2
        db.session.commit()
    grant_now(world, t.h2, 25)  # granted 2 March: expires 2 May
    clock.advance(days=20)  # 22 March: 2 May is 41 days away
    assert run_job(world.app, "warn_expiring_points")["told"] == []
    clock.advance(days=15)  # 6 April: within 30 days
    told = run_job(world.app, "warn_expiring_points")["told"]
    assert told == [{"household_id": t.h2, "points": 25, "by": "2026-05-06"}]
    clock.advance(days=10)
    assert run_job(world.app, "warn_expiring_points")["told"] == []
    assert len(notices(world.app, event="points_expiring")) == 1


# --- text messages through the gateway -------------------------------------------------------------------

def _sms_town(w):
    h = w.household(name="张家")
    r = w.resident(h, "张三", phone="13800000001", password=PASSWORD)
    quiet = w.resident(h, "张奶奶")
    w.user("committee", "committee")
    w.user("committee2", "committee")
    rule(w)
    return h, r, quiet


def test_a_text_message_goes_through_the_gateway(sms_world, gateway):
    w = sms_world
    _h, r, quiet = _sms_town(w)
    made = claim(w, r, "13800000001")["id"]
    assert w.call("POST", f"/api/v1/claims/{made}/approve", "committee").status_code == 200
    [notice] = notices(w.app)
    assert (notice.channel, notice.status, notice.resident_id) == ("sms", "pending", r)
    assert gateway.received == []  # nothing leaves inside the request

    result = run_job(w.app, "send_notices")
    assert result["sent"] == [notice.id] and result["skipped"] == []
    [message] = gateway.received
    assert message["id"] == f"notice-{notice.id}" and message["to"] == "13800000001"
    assert message["text"].startswith("【红星社区】") and "清扫楼道" in message["text"]
    assert gateway.headers[0]["Authorization"] == "Bearer gw-secret"
    [notice] = notices(w.app)
    assert notice.status == "sent" and notice.attempts == 1 and notice.delivered_at is not None
    # Sent once: the next run finds nothing due.
    assert run_job(w.app, "send_notices")["sent"] == []
    assert len(gateway.received) == 1
    # The resident still reads it on their page, unread until marked.
    assert mine(w, "13800000001")["unread_count"] == 1


def test_failures_are_retried_with_back_off_then_kept_as_a_dead_letter(sms_world, gateway, clock):
    from timebank.notices.delivery import MAX_ATTEMPTS, RETRY_MINUTES

    w = sms_world
    _h, r, _quiet = _sms_town(w)
    made = claim(w, r, "13800000001")["id"]
    w.call("POST", f"/api/v1/claims/{made}/reject", "committee", json={"reason": "重复申报"})
    [notice] = notices(w.app)
    gateway.answers = [503]
    for attempt, wait in enumerate(RETRY_MINUTES, start=1):
        assert run_job(w.app, "send_notices")["retrying"] == [notice.id]
        [now] = notices(w.app)
        assert now.attempts == attempt and now.status == "pending" and "503" in now.last_error
        assert now.next_attempt_at == clock.now().replace(tzinfo=None) + timedelta(minutes=wait)
        clock.advance(minutes=wait - 1)
        assert run_job(w.app, "send_notices")["retrying"] == []  # not due yet: not tried
        clock.advance(minutes=1)
    assert run_job(w.app, "send_notices")["dead"] == [notice.id]
    assert len(gateway.received) == MAX_ATTEMPTS
    [dead] = notices(w.app)
    assert dead.status == "dead" and dead.dead_at is not None

    # The committee sees it; a resident may not.
    listed = w.call("GET", "/api/v1/notifications/dead-letters?community_code=hongxing", "committee")
    assert listed.status_code == 200
    [item] = listed.get_json()["items"]
    assert item["id"] == notice.id and item["attempts"] == MAX_ATTEMPTS and "503" in item["last_error"]
    assert w.call("GET", "/api/v1/notifications/dead-letters?community_code=hongxing",
                  "13800000001").status_code == 403
    page = page_login(w.app, "committee").get("/committee/notices")
    assert page.status_code == 200 and "重复申报" in main_text(page)
    # The dead letter is left alone by later runs, until the committee sends it again.
    clock.advance(hours=5)
    assert run_job(w.app, "send_notices")["sent"] == []
    gateway.answers = [200]
    r2 = w.call("POST", f"/api/v1/notifications/{notice.id}/retry", "committee")
    assert r2.status_code == 200 and r2.get_json()["status"] == "pending" and r2.get_json()["attempts"] == 0
    assert w.call("POST", f"/api/v1/notifications/{notice.id}/retry", "committee").get_json()["error"] == \
        "notice_not_dead"
    assert run_job(w.app, "send_notices")["sent"] == [notice.id]
    assert notices(w.app)[0].status == "sent"


def test_a_refusal_by_the_gateway_is_a_dead_letter_at_once_and_may_be_printed(sms_world, gateway):
    w = sms_world
    _h, r, _quiet = _sms_town(w)
    made = claim(w, r, "13800000001")["id"]
    w.call("POST", f"/api/v1/claims/{made}/approve", "committee")
    gateway.answers = [400]  # e.g. a number the gateway does not serve
    [notice] = notices(w.app)
    assert run_job(w.app, "send_notices")["dead"] == [notice.id]
    assert len(gateway.received) == 1
    moved = w.call("POST", f"/api/v1/notifications/{notice.id}/print", "committee")
    assert moved.status_code == 200 and (moved.get_json()["channel"], moved.get_json()["status"]) == \
        ("print", "pending")
    listed = w.call("GET", "/api/v1/notifications/print-list?community_code=hongxing", "committee").get_json()
    assert [i["id"] for i in listed["items"]] == [notice.id]
    # Pressed again on the committee's page (an old tab): refused in words, nothing changed.
    client = page_login(w.app, "committee")
    r = client.post(f"/committee/notices/{notice.id}/print", data={"form_key": "an-old-tab-key"},
                    follow_redirects=True)
    assert "这条通知不是发送失败的通知" in main_text(r)


def test_an_unreachable_gateway_is_tried_again(make_app, clock):
    """Nothing listens on the port: a failed try, not a failed run."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = make_app(TIMEBANK_SMS_URL=f"http://127.0.0.1:{port}/sms", TIMEBANK_SMS_TIMEOUT_S=2)
    w = World(app, app.test_client())
    w.community()
    _h, r, _quiet = _sms_town(w)
    made = claim(w, r, "13800000001")["id"]
    w.call("POST", f"/api/v1/claims/{made}/approve", "committee")
    [notice] = notices(app)
    assert run_job(app, "send_notices")["retrying"] == [notice.id]
    assert "not reached" in notices(app)[0].last_error


def test_household_and_staff_channels_with_a_gateway(sms_world, gateway):
    """A household's sale: by text to the member with a phone, the page only for the one without.
    Staff with a phone are told by text too."""
    w = sms_world
    h, r, quiet = _sms_town(w)
    w.grant(h, 30)
    w.user("clerk", "clerk")
    item = _goods(w, threshold=4)
    r1 = w.call("POST", "/api/v1/redemptions", "clerk",
                json={"member_code": _card(w.app, h), "lines": [{"item_id": item, "quantity": 1}]})
    assert r1.status_code == 201
    by_resident = {n.resident_id: n.channel for n in notices(w.app, event="pay_code_used")}
    assert by_resident == {r: "sms", quiet: "page"}
    assert {n.channel for n in notices(w.app, event="low_stock")} == {"sms"}
    sent = run_job(w.app, "send_notices")["sent"]
    assert len(sent) == 2 and {m["to"] for m in gateway.received} == {"13800000001", "19900000003"}


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite's write lock; PostgreSQL writers take row locks")
def test_no_write_lock_is_held_while_the_gateway_answers(sms_world, gateway):
    """A slow gateway must not hold up the till: while it answers, another connection can write."""
    w = sms_world
    _h, r, _quiet = _sms_town(w)
    made = claim(w, r, "13800000001")["id"]
    w.call("POST", f"/api/v1/claims/{made}/approve", "committee")
    path = w.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    seen = []

    def write_meanwhile():
        con = sqlite3.connect(path, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            seen.append("lock free")
            con.rollback()
        except sqlite3.OperationalError as exc:
            seen.append(str(exc))
        finally:
            con.close()

    gateway.during = write_meanwhile
    assert len(run_job(w.app, "send_notices")["sent"]) == 1
    assert seen == ["lock free"]


# --- the pages -------------------------------------------------------------------------------------------

def test_the_residents_notices_page_marks_unread_and_marks_read(world):
    t = build_town(world)
    rule(world)
    for note in ("a", "b"):
        made = claim(world, t.r1, t.resident1, note=note)["id"]
        world.call("POST", f"/api/v1/claims/{made}/reject", "committee", json={"reason": f"理由{note}"})
    client = page_login(world.app, t.resident1)
    home = client.get("/me/")
    assert "新通知：2" in main_text(home)
    page = client.get("/me/notices")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('class="unread"') == 2 and "理由a" in html and "新" in main_text(page)
    first = notices(world.app)[0].id
    r = client.post(f"/me/notices/{first}/read", data={"form_key": _key_near(page, first)})
    assert r.status_code == 302
    page = client.get("/me/notices")
    assert page.get_data(as_text=True).count('class="unread"') == 1
    r = client.post("/me/notices/read-all", data={"form_key": form_key(page, "read-all-form")})
    assert r.status_code == 302
    assert 'class="unread"' not in client.get("/me/notices").get_data(as_text=True)
    assert mine(world, t.resident1)["unread_count"] == 0
    # Viewing the page marks nothing read (a GET never writes).
    made = claim(world, t.r1, t.resident1, note="c")["id"]
    world.call("POST", f"/api/v1/claims/{made}/reject", "committee", json={"reason": "理由c"})
    client.get("/me/notices")
    assert mine(world, t.resident1)["unread_count"] == 1


def _key_near(page, notice_id: int) -> str:
    html = page.get_data(as_text=True)
    part = html.split(f'data-notice="{notice_id}"', 1)[1]
    return re.search(r'name="form_key" value="([^"]+)"', part).group(1)


def test_the_outbox_count_matches_the_events(world):
    """One notice per event and person, nothing else written: the table holds what was told."""
    t = build_town(world)
    rule(world, publicity_days=0)
    made = claim(world, t.r2, t.resident2)["id"]
    world.call("POST", f"/api/v1/claims/{made}/approve", "committee")
    with world.app.app_context():
        assert db.session.execute(select(func.count()).select_from(Notification)).scalar_one() == 1
    [n] = mine(world, t.resident2)["items"]
    assert n["event"] == "claim_approved" and "10" in n["text"]
