"""Tasks, rotating signed check-in codes, QR images, check-in errors, the rate limit and the page."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import base_config
from earning_support import advance, build_town, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world, code="clean", review="auto", publicity_days=0, points=10)
    return t


def make_task(world, clock, slots=5, hours=2, user="committee"):
    r = world.call("POST", "/api/v1/tasks", user, json={
        "community_code": "hongxing", "rule_code": "clean", "title": "周六清扫槐树街",
        "starts_at": clock.now().isoformat(), "ends_at": (clock.now() + timedelta(hours=hours)).isoformat(),
        "slots": slots})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def code_for(world, task_id, user="grid"):
    r = world.call("GET", f"/api/v1/tasks/{task_id}/checkin-code", user)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def check_in(world, user, token, **kw):
    return world.call("POST", "/api/v1/checkins", user, json={"token": token}, **kw)


def test_check_in_creates_a_claim_once(town, world, clock):
    task = make_task(world, clock)
    assert task["slots"] == 5 and task["checked_in"] == 0 and task["rule_code"] == "clean"
    code = code_for(world, task["id"])
    assert urlparse(code["url"]).path == "/checkin"
    assert parse_qs(urlparse(code["url"]).query)["token"] == [code["token"]]
    assert code["expires_at"]

    first = check_in(world, town.resident1, code["token"])
    assert first.status_code == 201
    claim = first.get_json()["claim"]
    assert claim["task_id"] == task["id"] and claim["resident_id"] == town.r1 and claim["status"] == "posted"
    again = check_in(world, town.resident1, code["token"])
    assert again.status_code == 200 and again.get_json()["claim"]["id"] == claim["id"]
    assert world.balance(accounts.household_points(town.h1)) == 10
    got = world.call("GET", f"/api/v1/tasks/{task['id']}", town.resident2).get_json()
    assert got["checked_in"] == 1


def test_check_in_follows_the_rules_review(town, world, clock):
    rule(world, code="visit", review="review", publicity_days=3)
    r = world.call("POST", "/api/v1/tasks", "grid", json={
        "community_code": "hongxing", "rule_code": "visit", "title": "探访空巢老人",
        "starts_at": clock.now().isoformat(), "ends_at": (clock.now() + timedelta(hours=1)).isoformat(),
        "slots": 3})
    token = code_for(world, r.get_json()["id"])["token"]
    claim = check_in(world, town.resident2, token).get_json()["claim"]
    assert claim["status"] == "pending"


def test_code_rotates_and_the_previous_one_stays_valid_one_period(town, world, clock):
    task = make_task(world, clock)
    old = code_for(world, task["id"])["token"]
    clock.advance(seconds=60)
    new = code_for(world, task["id"])["token"]
    assert new != old
    assert check_in(world, town.resident1, old).status_code == 201  # the previous period still counts
    clock.advance(seconds=60)
    r = check_in(world, town.resident2, old)
    assert r.status_code == 410 and r.get_json()["error"] == "token_expired"
    assert check_in(world, town.resident2, new).status_code == 201


def test_token_invalid(town, world, clock):
    task = make_task(world, clock)
    token = code_for(world, task["id"])["token"]
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "hello", "x.y"):
        r = check_in(world, town.resident1, bad)
        assert r.status_code == 422 and r.get_json()["error"] == "token_invalid", bad
    # A code signed with another deployment's key is not ours.
    from itsdangerous import URLSafeSerializer

    foreign = URLSafeSerializer("another-key", salt="timebank.checkin").dumps({"task": task["id"], "period": 1})
    r = check_in(world, town.resident1, foreign)
    assert r.status_code == 422 and r.get_json()["error"] == "token_invalid"


def test_task_full(town, world, clock):
    task = make_task(world, clock, slots=1)
    token = code_for(world, task["id"])["token"]
    assert check_in(world, town.resident1, token).status_code == 201
    r = check_in(world, town.resident2, token)
    assert r.status_code == 409 and r.get_json()["error"] == "task_full"


def test_task_closed_before_and_after_its_window(town, world, clock):
    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "明天的清扫",
        "starts_at": (clock.now() + timedelta(days=1)).isoformat(),
        "ends_at": (clock.now() + timedelta(days=1, hours=2)).isoformat(), "slots": 5})
    early = code_for(world, r.get_json()["id"])["token"]
    r = check_in(world, town.resident1, early)
    assert r.status_code == 409 and r.get_json()["error"] == "task_closed"
    task = make_task(world, clock, hours=1)
    advance(world, clock, hours=1)
    late = code_for(world, task["id"])["token"]
    r = check_in(world, town.resident1, late)
    assert r.status_code == 409 and r.get_json()["error"] == "task_closed"


def test_task_errors_and_access(town, world, clock):
    task = make_task(world, clock)
    body = {"community_code": "hongxing", "rule_code": "clean", "title": "x",
            "starts_at": clock.now().isoformat(), "ends_at": clock.now().isoformat(), "slots": 1}
    r = world.call("POST", "/api/v1/tasks", "committee", json=body)
    assert r.status_code == 422 and "ends_at" in r.get_json()["errors"]
    r = world.call("POST", "/api/v1/tasks", "committee", json={**body, "slots": 0})
    assert r.status_code == 422 and "slots" in r.get_json()["errors"]
    for user in (town.resident1, "clerk", "other_committee"):
        r = world.call("POST", "/api/v1/tasks", user,
                       json={**body, "ends_at": (clock.now() + timedelta(hours=1)).isoformat()})
        assert r.status_code == 403, user
    # Codes are for the community's staff only.
    assert world.call("GET", f"/api/v1/tasks/{task['id']}/checkin-code", town.resident1).status_code == 403
    assert world.call("GET", f"/api/v1/tasks/{task['id']}/checkin-code", "other_committee").status_code == 404
    assert world.call("GET", f"/api/v1/tasks/{task['id']}", town.resident3).status_code == 404
    assert world.call("GET", "/api/v1/tasks?community_code=hongxing", town.resident3).status_code == 403
    listed = world.call("GET", "/api/v1/tasks?community_code=hongxing", town.resident1).get_json()
    assert [t["id"] for t in listed["items"]] == [task["id"]]
    # A resident of another community cannot check in; staff do not check in with their logins.
    token = code_for(world, task["id"])["token"]
    r = check_in(world, town.resident3, token)
    assert r.status_code == 403
    assert check_in(world, "grid", token).status_code == 403
    assert world.client.post("/api/v1/checkins", json={"token": token}).status_code == 401


def test_qr_images(town, world, clock):
    task = make_task(world, clock)
    svg = world.call("GET", f"/api/v1/tasks/{task['id']}/qr.svg", "grid")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert svg.headers["Cache-Control"] == "no-store"
    png = world.call("GET", f"/api/v1/tasks/{task['id']}/qr.png", "committee")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    assert world.call("GET", f"/api/v1/tasks/{task['id']}/qr.svg", town.resident1).status_code == 403
    assert world.call("GET", f"/api/v1/tasks/{task['id']}/qr.png", "other_committee").status_code == 404


def test_checkin_page(town, world, clock, app):
    task = make_task(world, clock)
    token = code_for(world, task["id"])["token"]
    client = app.test_client()
    r = client.get(f"/checkin?token={token}")
    assert r.status_code == 302 and "/login" in r.headers["Location"] and "next=" in r.headers["Location"]

    from timebank.core.extensions import db
    from timebank.core.users import User

    with app.app_context():
        user_id = db.session.query(User).filter_by(username=town.resident1).one().id
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    page = client.get(f"/checkin?token={token}")
    assert page.status_code == 200 and "周六清扫槐树街" in page.get_data(as_text=True)
    assert world.balance(accounts.household_points(town.h1)) == 0  # opening the page changes nothing
    done = client.post("/checkin", data={"token": token, "form_key": "checkin-key-1"})
    assert done.status_code == 201
    assert world.balance(accounts.household_points(town.h1)) == 10
    repeat = client.post("/checkin", data={"token": token, "form_key": "checkin-key-2"})
    assert repeat.status_code == 200
    bad = client.post("/checkin", data={"token": "nonsense", "form_key": "checkin-key-3"})
    assert bad.status_code == 422
    assert world.balance(accounts.household_points(town.h1)) == 10


@pytest.fixture
def limited_app(db_uri, tmp_path, clock):
    from timebank import create_app

    config = base_config(tmp_path, db_uri)
    config.update(RATELIMIT_ENABLED=True, TIMEBANK_CHECKIN_RATE_LIMIT="3 per minute")
    app = create_app(config)
    app.extensions["timebank.core.clock"] = clock
    yield app
    from timebank.core.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_check_in_attempts_are_rate_limited_per_user(limited_app, clock):
    from conftest import World

    world = World(limited_app, limited_app.test_client())
    world.community()
    town = build_town(world)
    for attempt in range(3):
        r = check_in(world, town.resident1, f"guess-{attempt}")
        assert r.status_code == 422
    r = check_in(world, town.resident1, "guess-4")
    assert r.status_code == 429 and r.get_json()["error"] == "rate_limited"
    # The limit is per user: a neighbour on the same address is not blocked.
    assert check_in(world, town.resident2, "guess-5").status_code == 422


def test_a_new_claims_answer_shows_the_history_a_later_read_shows(town, world, clock):
    """The check-in's answer builds the new claim's history from what it wrote (no read back): it must
    be the history the database holds, event for event."""
    task = make_task(world, clock)
    answer = check_in(world, town.resident1, code_for(world, task["id"])["token"])
    assert answer.status_code == 201, answer.get_json()
    claim = answer.get_json()["claim"]
    assert [event["action"] for event in claim["events"]] == ["create", "post"]
    read = world.call("GET", f"/api/v1/claims/{claim['id']}", town.resident1)
    assert read.status_code == 200, read.get_json()
    assert claim["events"] == read.get_json()["events"]
    assert claim == read.get_json()
