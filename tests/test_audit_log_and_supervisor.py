"""The audit-log API, the audit log's append-only guard, and the read-only supervisor role."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text


@pytest.fixture
def people(world):
    world.user("chair", "committee")
    world.user("watcher", "supervisor")
    world.user("clerk1", "clerk")
    world.community("other", "别的社区")
    world.user("far", "committee", community_code="other")
    return world


def _record(app, action, username, target, community_code=None):
    from timebank.core.audit_log import record
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.people.operations import community_by_code

    with app.app_context():
        user = db.session.execute(select(User).where(User.username == username)).scalar_one()
        cid = community_by_code(community_code).id if community_code else None
        entry_id = record(action, user=user, target=target, community_id=cid, reason="test")
        db.session.commit()
        return entry_id, user.id


def test_audit_log_filters_and_scope(people, app, clock):
    world = people
    _record(app, "claim.approve", "chair", "claim:1")
    clock.advance(hours=2)
    _, clerk_id = _record(app, "redemption.void", "clerk1", "redemption:4")
    clock.advance(hours=2)
    _record(app, "claim.approve", "far", "claim:9")

    items = world.call("GET", "/api/v1/audit-log", "chair").get_json()["items"]
    targets = [i["target"] for i in items]
    # Logins are staff actions too; the other community's entries are not shown.
    assert "claim:9" not in targets and targets.index("redemption:4") < targets.index("claim:1")
    first = next(i for i in items if i["target"] == "claim:1")
    assert first["actor"] == "chair" and first["community_code"] == "hongxing"
    assert first["details"] == {"reason": "test"}
    assert first["created_at"].endswith("+08:00")

    r = world.call("GET", "/api/v1/audit-log?action=claim.approve", "watcher").get_json()["items"]
    assert [i["target"] for i in r] == ["claim:1"]
    r = world.call("GET", f"/api/v1/audit-log?user_id={clerk_id}", "chair").get_json()["items"]
    assert {i["target"] for i in r} <= {"redemption:4", None} and any(i["target"] == "redemption:4" for i in r)
    since = "2026-03-02T10:30:00+08:00"
    until = "2026-03-02T12:30:00+08:00"
    r = world.call("GET", "/api/v1/audit-log", "chair", query_string={"since": since, "until": until}).get_json()
    assert [i["target"] for i in r["items"]] == ["redemption:4"]
    r = world.call("GET", "/api/v1/audit-log", "chair", query_string={"since": until, "until": since})
    assert r.status_code == 422
    r = world.call("GET", "/api/v1/audit-log?community_code=other", "chair")
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    r = world.call("GET", "/api/v1/audit-log?community_code=other&action=claim.approve", "admin").get_json()
    assert [i["target"] for i in r["items"]] == ["claim:9"]
    page = world.call("GET", "/api/v1/audit-log?limit=1", "admin").get_json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    nxt = world.call("GET", f"/api/v1/audit-log?limit=1&cursor={page['next_cursor']}", "admin").get_json()
    assert nxt["items"][0]["id"] < page["items"][0]["id"]
    assert world.call("GET", "/api/v1/audit-log", "clerk1").status_code == 403
    assert world.client.get("/api/v1/audit-log").status_code == 401


def test_audit_log_refuses_update_and_delete(people, app):
    entry_id, _ = _record(app, "claim.approve", "chair", "claim:1")
    from timebank.core.extensions import db

    for statement in (f"UPDATE audit_log SET action = 'nothing' WHERE id = {entry_id}",
                      f"DELETE FROM audit_log WHERE id = {entry_id}"):
        with app.app_context():
            with pytest.raises(Exception, match="append-only"):
                with db.engine.begin() as conn:
                    conn.execute(text(statement))
    with app.app_context():
        assert db.session.execute(text(f"SELECT action FROM audit_log WHERE id = {entry_id}")).scalar_one() == \
            "claim.approve"


@pytest.mark.parametrize("method, url, body", [
    ("POST", "/api/v1/households", {"community_code": "hongxing", "name": "李家", "address": "x"}),
    ("POST", "/api/v1/residents", {"household_id": 1, "name": "李四", "phone": "13800000000"}),
    ("POST", "/api/v1/users", {"username": "sneaky", "password": "secret-pass", "role": "clerk",
                               "community_code": "hongxing"}),
    ("POST", "/api/v1/communities", {"code": "new", "name": "新"}),
    ("POST", "/api/v1/ledger/checkpoints", None),
    ("POST", "/api/v1/month-closes", {"community_code": "hongxing", "month": "2026-03"}),
    ("POST", "/api/v1/claims", {"community_code": "hongxing", "rule_code": "x", "resident_id": 1}),
    ("POST", "/api/v1/redemptions", {"member_code": "H1", "lines": []}),
    ("PUT", "/api/v1/households/1", {"name": "改"}),
    ("PATCH", "/api/v1/households/1", {"name": "改"}),
    ("DELETE", "/api/v1/households/1", None),
])
def test_supervisor_cannot_write(people, method, url, body):
    world = people
    world.household()
    r = world.call(method, url, "watcher", json=body)
    assert r.status_code == 403, (url, r.get_json())
    assert r.get_json()["error"] == "read_only_role"
    # The same request by a committee member is not refused by the guard.
    if method == "POST" and url in ("/api/v1/households", "/api/v1/ledger/checkpoints"):
        assert world.call(method, url, "chair", json=body).status_code in (200, 201)


def test_supervisor_reads_and_logs_in(people, app):
    world = people
    r = world.client.post("/api/v1/auth/token", json={"username": "watcher", "password": "secret-pass"})
    assert r.status_code == 200
    assert world.call("GET", "/api/v1/ledger/transactions", "watcher").status_code == 200
    assert world.call("GET", "/api/v1/audit-log", "watcher").status_code == 200
    assert world.call("GET", "/api/v1/ledger/verify", "watcher").status_code == 200
    assert world.call("GET", "/api/v1/month-closes/hongxing/2026-03", "watcher").status_code == 200
    assert world.call("HEAD", "/api/v1/ledger/checkpoints", "watcher").status_code == 200

    # A page session of a supervisor is read-only on the API as well.
    from timebank.core.extensions import db
    from timebank.core.users import User

    with app.app_context():
        uid = db.session.execute(select(User.id).where(User.username == "watcher")).scalar_one()
    page_client = app.test_client()
    with page_client.session_transaction() as session:
        session["_user_id"] = str(uid)
        session["_fresh"] = True
    r = page_client.post("/api/v1/households", json={"community_code": "hongxing", "name": "王家", "address": "y"})
    assert r.status_code == 403 and r.get_json()["error"] == "read_only_role"
    assert page_client.get("/api/v1/me").status_code == 200
