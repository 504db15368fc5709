"""Logins: the list, deactivating, one-time passwords, choosing a new password, and their pages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from earning_support import PASSWORD
from timebank.core.extensions import db


@pytest.fixture
def town(world):
    world.community("lvye", "绿野村")
    world.h1 = world.household(name="张家")
    world.r1 = world.resident(world.h1, "张三", phone="13800000001", password=PASSWORD)
    world.r_nologin = world.resident(world.h1, "张奶奶", phone="13800000002")
    world.r_nophone = world.resident(world.h1, "张小宝")
    world.user("chair", "committee")
    world.user("grid", "grid_worker")
    world.user("clerk", "clerk", phone="13712345678")
    world.user("watcher", "supervisor")
    world.user("far", "committee", community_code="lvye")
    return world


def _problem(r, status, code):
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"] == code, r.get_json()


def _id(world, username):
    from timebank.core.users import User

    with world.app.app_context():
        return db.session.execute(db.select(User.id).where(User.username == username)).scalar_one()


def _login(client, username, password):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _page(app, username, password=PASSWORD):
    client = app.test_client()
    r = client.post("/login", data={"username": username, "password": password})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


def _text(response) -> str:
    main = response.get_data(as_text=True).split("<main", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


# --- the list -------------------------------------------------------------------------------------

def test_the_committee_and_supervisors_list_their_communitys_logins(world, town):
    r = world.call("GET", "/api/v1/users?community_code=hongxing", "chair")
    assert r.status_code == 200, r.get_json()
    items = {i["username"]: i for i in r.get_json()["items"]}
    assert {"chair", "grid", "clerk", "watcher", "13800000001"} <= set(items)
    assert "far" not in items and "admin" not in items
    clerk = items["clerk"]
    assert clerk["role"] == "clerk" and clerk["community_code"] == "hongxing" and clerk["active"] is True
    assert clerk["phone"] == "137****5678" and clerk["has_person"] is True
    assert clerk["password_change_required"] is False
    assert items["13800000001"]["person_name"] == "张三"
    assert world.call("GET", "/api/v1/users?community_code=hongxing", "watcher").status_code == 200
    assert world.call("GET", "/api/v1/users?community_code=hongxing", "admin").status_code == 200
    _problem(world.call("GET", "/api/v1/users?community_code=hongxing", "grid"), 403, "forbidden")
    _problem(world.call("GET", "/api/v1/users?community_code=hongxing", "far"), 403, "forbidden")
    page = world.call("GET", "/api/v1/users?community_code=hongxing&limit=2", "chair").get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]


# --- deactivating ---------------------------------------------------------------------------------

def test_a_deactivated_login_stops_working_at_once(app, world, town):
    clerk = _id(world, "clerk")
    token = world.token("clerk")
    page = _page(app, "clerk")
    assert page.get("/clerk/pos").status_code == 200
    # Not by a grid worker, nor by the committee of another community; the committee's own is an admin's.
    _problem(world.call("POST", f"/api/v1/users/{clerk}/deactivate", "grid"), 403, "forbidden")
    _problem(world.call("POST", f"/api/v1/users/{clerk}/deactivate", "far"), 404, "not_found")
    _problem(world.call("POST", f"/api/v1/users/{_id(world, 'watcher')}/deactivate", "chair"), 403, "forbidden")
    r = world.call("POST", f"/api/v1/users/{clerk}/deactivate", "chair")
    assert r.status_code == 200 and r.get_json()["active"] is False, r.get_json()
    assert world.client.get("/api/v1/me", headers=_bearer(token)).status_code == 401
    assert page.get("/clerk/pos").status_code == 302  # back to the login page
    assert _login(world.client, "clerk", PASSWORD).status_code == 401
    [entry] = world.call("GET", "/api/v1/audit-log?action=user.deactivate", "admin").get_json()["items"]
    assert entry["target"] == f"user:{clerk}" and entry["actor"] == "chair"


# --- one-time passwords ---------------------------------------------------------------------------

def test_a_reset_gives_a_one_time_password_that_must_be_replaced(app, world, town, clock):
    clerk = _id(world, "clerk")
    old_token = world.token("clerk")
    _problem(world.call("POST", f"/api/v1/users/{clerk}/reset-password", "grid"), 403, "forbidden")
    r = world.call("POST", f"/api/v1/users/{clerk}/reset-password", "chair")
    assert r.status_code == 200, r.get_json()
    otp = r.get_json()["one_time_password"]
    expires = datetime.fromisoformat(r.get_json()["expires_at"])
    assert expires - clock.now() == timedelta(hours=24)
    # Only its hash is kept, and the old password and the old token stop working.
    with app.app_context():
        from timebank.core.users import User

        row = db.session.get(User, clerk)
        assert otp not in repr([getattr(row, c.key) for c in User.__table__.columns])
    assert _login(world.client, "clerk", PASSWORD).status_code == 401
    assert world.client.get("/api/v1/me", headers=_bearer(old_token)).status_code == 401

    r = _login(world.client, "clerk", otp)
    assert r.status_code == 200 and r.get_json()["password_change_required"] is True, r.get_json()
    token = r.get_json()["access_token"]
    # Once: a second login with it is refused.
    assert _login(world.client, "clerk", otp).status_code == 401
    # Every other call: 403 password_change_required.
    for method, url in (("GET", "/api/v1/me"), ("GET", "/api/v1/items?community_code=hongxing"),
                        ("POST", "/api/v1/items")):
        _problem(world.client.open(url, method=method, headers=_bearer(token), json={}), 403,
                 "password_change_required")
    _problem(world.client.post("/api/v1/me/password", headers=_bearer(token),
                               json={"old_password": "not-it-at-all", "new_password": "a-new-secret-9"}),
             403, "wrong_password")
    _problem(world.client.post("/api/v1/me/password", headers=_bearer(token),
                               json={"old_password": otp, "new_password": "12345678"}), 422, "weak_password")
    r = world.client.post("/api/v1/me/password", headers=_bearer(token),
                          json={"old_password": otp, "new_password": "a-new-secret-9"})
    assert r.status_code == 204, r.get_json()
    assert world.client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    r = _login(world.client, "clerk", "a-new-secret-9")
    assert r.status_code == 200 and r.get_json()["password_change_required"] is False
    actions = [e["action"] for e in world.call("GET", "/api/v1/audit-log", "admin").get_json()["items"]]
    assert "user.reset_password" in actions and "user.password_change" in actions


def test_a_one_time_password_works_for_24_hours(world, town, clock):
    clerk = _id(world, "clerk")
    otp = world.call("POST", f"/api/v1/users/{clerk}/reset-password", "chair").get_json()["one_time_password"]
    clock.advance(hours=24)
    assert _login(world.client, "clerk", otp).status_code == 401


def test_a_resident_gets_a_one_time_password_and_a_login_if_they_have_none(world, town):
    # A resident with a login: a grid worker of the community resets it.
    r = world.call("POST", f"/api/v1/residents/{town.r1}/reset-password", "grid")
    assert r.status_code == 200 and r.get_json()["login_created"] is False, r.get_json()
    assert _login(world.client, "13800000001", r.get_json()["one_time_password"]).get_json()[
        "password_change_required"] is True
    # Without a login: one is made, its username the phone.
    r = world.call("POST", f"/api/v1/residents/{town.r_nologin}/reset-password", "grid")
    assert r.status_code == 200 and r.get_json()["login_created"] is True, r.get_json()
    assert r.get_json()["username"] == "13800000002"
    token = _login(world.client, "13800000002", r.get_json()["one_time_password"]).get_json()["access_token"]
    assert world.client.post("/api/v1/me/password", headers=_bearer(token), json={
        "old_password": r.get_json()["one_time_password"], "new_password": "my-own-secret-7"}).status_code == 204
    me = world.client.get("/api/v1/me", headers=_bearer(token)).get_json()
    assert me["role"] == "resident" and me["resident_id"] == town.r_nologin
    # Without a phone: no login can be made.
    r = world.call("POST", f"/api/v1/residents/{town.r_nophone}/reset-password", "grid")
    assert r.status_code == 422 and "phone" in r.get_json()["detail"], r.get_json()
    # Not by a clerk, nor by another community (who does not see the resident).
    _problem(world.call("POST", f"/api/v1/residents/{town.r1}/reset-password", "clerk"), 403, "forbidden")
    _problem(world.call("POST", f"/api/v1/residents/{town.r1}/reset-password", "far"), 404, "not_found")
    # A grid worker resets residents' logins only.
    _problem(world.call("POST", f"/api/v1/users/{_id(world, 'clerk')}/reset-password", "grid"), 403, "forbidden")
    created = [e for e in world.call("GET", "/api/v1/audit-log?action=user.create", "admin").get_json()["items"]
               if e["details"].get("via") == "reset_password"]
    assert [e["details"]["username"] for e in created] == ["13800000002"]


def test_the_committee_does_not_reset_a_committee_login(world, town):
    _problem(world.call("POST", f"/api/v1/users/{_id(world, 'chair')}/reset-password", "chair"), 403, "forbidden")
    assert world.call("POST", f"/api/v1/users/{_id(world, 'chair')}/reset-password", "admin").status_code == 200


def test_changing_ones_own_password(world, town):
    r = world.call("POST", "/api/v1/me/password", "grid",
                   json={"old_password": PASSWORD, "new_password": "grid-new-pass-1"})
    assert r.status_code == 204
    assert _login(world.client, "grid", "grid-new-pass-1").status_code == 200
    _problem(world.call("POST", "/api/v1/me/password", "grid",
                        json={"old_password": "grid-new-pass-1", "new_password": "grid-new-pass-1"}),
             422, "validation_error")


# --- pages ----------------------------------------------------------------------------------------

def test_the_logins_page_makes_a_staff_login_with_a_slip(app, world, town):
    chair = _page(app, "chair")
    r = chair.get("/committee/logins")
    assert r.status_code == 200
    page = _text(r)
    assert "账号" in page and "clerk" in page and "137****5678" in page and "网格员" in page
    r = chair.post("/committee/logins", data={"username": "clerk2", "role": "clerk", "phone": "13700000088",
                                              "form_key": "k" * 20})
    assert r.status_code == 200, _text(r)
    slip = _text(r)
    assert "一次性密码" in slip and "clerk2" in slip
    otp = re.search(r'id="slip-password"><strong class="big">([^<]+)<', r.get_data(as_text=True)).group(1)
    # The same form sent again shows no password, and makes nothing twice.
    again = chair.post("/committee/logins", data={"username": "clerk2", "role": "clerk", "phone": "13700000088",
                                                  "form_key": "k" * 20}, follow_redirects=True)
    assert otp not in again.get_data(as_text=True)
    # The committee cannot make a committee login here either.
    r = chair.post("/committee/logins", data={"username": "c2", "role": "committee", "phone": "13700000089",
                                              "form_key": "m" * 20}, follow_redirects=True)
    assert "没有办成：您没有权限办理" in _text(r), _text(r)
    # Nor a second login for a person who holds one.
    r = chair.post("/committee/logins", data={"username": "c3", "role": "clerk", "phone": "13712345678",
                                              "form_key": "n" * 20}, follow_redirects=True)
    assert "此人在本社区已有工作人员账号" in _text(r), _text(r)
    # The new login's first page is "choose a new password"; then the rest opens.
    clerk2 = _page(app, "clerk2", otp)
    r = clerk2.get("/clerk/pos")
    assert r.status_code == 302 and r.headers["Location"].endswith("/me/password")
    assert "设置新密码" in _text(clerk2.get("/me/password"))
    r = clerk2.post("/me/password", data={"old_password": otp, "new_password": "clerk2-pass-9",
                                          "repeat_password": "clerk2-pass-9", "form_key": "p" * 20})
    assert r.status_code == 302
    assert clerk2.get("/clerk/pos").status_code == 200
    log = world.call("GET", "/api/v1/audit-log?action=user.create", "admin").get_json()["items"]
    assert any(e["details"]["username"] == "clerk2" and e["actor"] == "chair" for e in log)


def test_deactivating_and_resetting_on_the_logins_page(app, world, town):
    chair = _page(app, "chair")
    clerk = _id(world, "clerk")
    r = chair.post(f"/committee/logins/{clerk}/reset-password", data={"form_key": "r" * 20})
    assert r.status_code == 200 and "一次性密码" in _text(r)
    r = chair.post(f"/committee/logins/{clerk}/deactivate", data={"form_key": "d" * 20}, follow_redirects=True)
    assert "已停用" in _text(r)
    assert _login(world.client, "clerk", PASSWORD).status_code == 401
    # The supervisor sees the page and changes nothing.
    watcher = _page(app, "watcher")
    assert watcher.get("/committee/logins").status_code == 200
    assert watcher.post(f"/committee/logins/{_id(world, 'grid')}/deactivate",
                        data={"form_key": "w" * 20}).status_code == 403


def test_a_grid_worker_resets_a_residents_password_from_the_household_roster(app, world, town):
    grid = _page(app, "grid")
    roster = grid.get("/committee/households").get_data(as_text=True)
    assert f"/committee/households/{town.h1}/logins" in roster
    r = grid.get(f"/committee/households/{town.h1}/logins")
    assert r.status_code == 200 and "张奶奶" in _text(r)
    r = grid.post(f"/committee/residents/{town.r_nologin}/reset-password", data={"form_key": "g" * 20})
    assert r.status_code == 200
    slip = _text(r)
    assert "张奶奶" in slip and "13800000002" in slip and "有效期至" in slip
    otp = re.search(r'id="slip-password"><strong class="big">([^<]+)<', r.get_data(as_text=True)).group(1)
    resident = _page(app, "13800000002", otp)
    assert resident.get("/me/").headers["Location"].endswith("/me/password")
    # Another community's grid worker does not see the household.
    world.user("far_grid", "grid_worker", community_code="lvye")
    assert _page(app, "far_grid").get(f"/committee/households/{town.h1}/logins").status_code == 404


def test_everyone_has_a_password_page(app, world, town):
    resident = _page(app, "13800000001")
    r = resident.post("/me/password", data={"old_password": PASSWORD, "new_password": "zhang-new-pass-3",
                                            "repeat_password": "zhang-new-pass-4", "form_key": "a" * 20},
                      follow_redirects=True)
    assert "不一致" in _text(r)
    r = resident.post("/me/password", data={"old_password": "wrong-wrong-1", "new_password": "zhang-new-pass-3",
                                            "repeat_password": "zhang-new-pass-3", "form_key": "b" * 20},
                      follow_redirects=True)
    assert "当前密码不正确" in _text(r)
    r = resident.post("/me/password", data={"old_password": PASSWORD, "new_password": "zhang-new-pass-3",
                                            "repeat_password": "zhang-new-pass-3", "form_key": "c" * 20})
    assert r.status_code == 302
    assert _login(world.client, "13800000001", "zhang-new-pass-3").status_code == 200


def test_a_supervisor_chooses_its_own_password(app, world, town):
    """Supervisors change nothing, except their own password (API and page)."""
    watcher = _id(world, "watcher")
    otp = world.call("POST", f"/api/v1/users/{watcher}/reset-password", "admin").get_json()["one_time_password"]
    token = _login(world.client, "watcher", otp).get_json()["access_token"]
    r = world.client.post("/api/v1/me/password", headers=_bearer(token),
                          json={"old_password": otp, "new_password": "watch-pass-77"})
    assert r.status_code == 204, r.get_json()
    page = _page(app, "watcher", "watch-pass-77")
    r = page.post("/me/password", data={"old_password": "watch-pass-77", "new_password": "watch-pass-78",
                                        "repeat_password": "watch-pass-78", "form_key": "s" * 20})
    assert r.status_code == 302
    assert _login(world.client, "watcher", "watch-pass-78").status_code == 200
