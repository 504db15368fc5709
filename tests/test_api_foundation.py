"""Auth, errors as problem+json, the OpenAPI document, people and access rules."""

from __future__ import annotations

import pytest


def test_token_and_me(world):
    r = world.client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"]
    me = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.get_json()["username"] == "admin"


@pytest.mark.parametrize("creds", [
    {"username": "admin", "password": "wrong-pass"},
    {"username": "nobody", "password": "secret-pass"},
])
def test_bad_credentials(world, creds):
    r = world.client.post("/api/v1/auth/token", json=creds)
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["error"] == "invalid_credentials"


def test_problem_json_shapes(world):
    r = world.client.get("/api/v1/me")
    assert r.status_code == 401 and r.get_json()["error"] == "unauthenticated"
    assert set(r.get_json()) >= {"status", "title", "detail", "error"}
    r = world.client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert r.get_json()["error"] == "not_found"
    r = world.client.post("/api/v1/auth/token", json={"username": 5})
    assert r.status_code == 422
    body = r.get_json()
    assert body["error"] == "validation_error" and "password" in body["errors"] and "username" in body["errors"]
    r = world.client.post("/api/v1/auth/token", data="{not json", content_type="application/json")
    assert r.status_code in (400, 422) and r.mimetype == "application/problem+json"
    r = world.client.delete("/api/v1/auth/token")
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"


def test_expired_and_revoked_tokens(world, clock):
    token = world.token("admin")
    clock.advance(hours=13)
    r = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.get_json()["error"] == "token_expired"
    r = world.client.get("/api/v1/me", headers={"Authorization": "Bearer made-up"})
    assert r.status_code == 401 and r.get_json()["error"] == "unauthenticated"


def test_openapi_document_and_docs(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/auth/token", "/api/v1/households", "/api/v1/ledger/transactions"):
        assert path in spec["paths"]
    assert client.get("/api/v1/docs").status_code == 200


def test_people_flow(world):
    r = world.call("POST", "/api/v1/communities", "admin", json={"code": "lijia", "name": "李家村"})
    assert r.status_code == 201 and r.get_json()["code"] == "lijia"
    r = world.call("POST", "/api/v1/communities", "admin", json={"code": "lijia", "name": "again"})
    assert r.status_code == 409 and r.get_json()["error"] == "conflict"
    world.user("wang", "committee")
    r = world.call("POST", "/api/v1/households", "wang",
                   json={"community_code": "hongxing", "name": "王家", "address": "1号", "grid": "2", "color": "red"})
    assert r.status_code == 201
    h = r.get_json()
    assert h["community_code"] == "hongxing" and h["member_code"].startswith("H")
    r = world.call("POST", "/api/v1/residents", "wang",
                   json={"household_id": h["id"], "name": "王大妈", "phone": "13800000001", "password": "mama-pass-1"})
    assert r.status_code == 201
    rid = r.get_json()["id"]
    token = world.token("13800000001", "mama-pass-1")
    r = world.client.get(f"/api/v1/households/{h['id']}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.get_json()["balance_points"] == 0
    assert r.get_json()["members"] == [{"id": rid, "name": "王大妈", "active": True}]
    r = world.client.get(f"/api/v1/residents/{rid}", headers={"Authorization": f"Bearer {token}"})
    assert r.get_json()["hours_balance_minutes"] == 0
    r = world.call("POST", "/api/v1/households", "wang",
                   json={"community_code": "hongxing", "name": "x", "color": "blue"})
    assert r.status_code == 422 and "color" in r.get_json()["errors"]


def test_access_across_households_and_communities(world):
    world.community("lijia", "李家村")
    mine = world.household()
    theirs = world.household(name="李家")
    far = world.household("lijia", name="远方")
    me = world.resident(mine, "张三", "13900000001", "zhang-pass-1")
    world.resident(theirs, "李四", "13900000002", "lisi-pass-12")
    world.user("clerk1", "clerk")
    world.user("far_committee", "committee", community_code="lijia")
    tok = world.token("13900000001", "zhang-pass-1")
    auth = {"Authorization": f"Bearer {tok}"}
    assert world.client.get(f"/api/v1/households/{mine}", headers=auth).status_code == 200
    assert world.client.get(f"/api/v1/households/{theirs}", headers=auth).status_code == 404
    assert world.client.get(f"/api/v1/residents/{me}", headers=auth).status_code == 200
    # Staff of another community cannot see this community's households.
    assert world.call("GET", f"/api/v1/households/{mine}", "far_committee").status_code == 404
    assert world.call("GET", f"/api/v1/households/{far}", "far_committee").status_code == 200
    # A clerk cannot register households; a resident cannot create users.
    r = world.call("POST", "/api/v1/households", "clerk1", json={"community_code": "hongxing", "name": "n"})
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    r = world.client.post("/api/v1/users", headers=auth,
                          json={"username": "evil", "password": "12345678", "role": "admin"})
    assert r.status_code == 403


def test_committee_adds_staff_only_in_own_community(world):
    world.community("lijia", "李家村")
    world.user("wang", "committee")
    r = world.call("POST", "/api/v1/users", "wang",
                   json={"username": "grid1", "password": "grid-pass-1", "role": "grid_worker",
                         "community_code": "hongxing"})
    assert r.status_code == 201 and r.get_json()["role"] == "grid_worker"
    r = world.call("POST", "/api/v1/users", "wang",
                   json={"username": "grid2", "password": "grid-pass-1", "role": "grid_worker",
                         "community_code": "lijia"})
    assert r.status_code == 403
    r = world.call("POST", "/api/v1/users", "wang",
                   json={"username": "boss", "password": "boss-pass-1", "role": "admin"})
    assert r.status_code == 403
