"""Who added a household, a person or a login is on record (the audit log): a made-up member with a
login can spend the household's points, and a second staff login can approve its owner's claims, so
neither may appear without a name against it."""

from __future__ import annotations


def _log(world, action):
    r = world.call("GET", f"/api/v1/audit-log?action={action}", "admin")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def test_households_residents_and_logins_made_through_the_api_are_audit_logged(world):
    world.user("committee", "committee")
    world.user("grid", "grid_worker")
    r = world.call("POST", "/api/v1/households", "grid",
                   json={"community_code": "hongxing", "name": "王家", "address": "2号"})
    assert r.status_code == 201
    household = r.get_json()["id"]
    # Adding a person to an existing household is the committee's (a grid worker: 403).
    r = world.call("POST", "/api/v1/residents", "grid",
                   json={"household_id": household, "name": "王五", "phone": "13900000077",
                         "password": "long-enough-9"})
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    r = world.call("POST", "/api/v1/residents", "committee",
                   json={"household_id": household, "name": "王五", "phone": "13900000077",
                         "password": "long-enough-9"})
    assert r.status_code == 201, r.get_json()
    resident = r.get_json()["id"]
    r = world.call("POST", "/api/v1/users", "committee",
                   json={"username": "clerk2", "password": "long-enough-9", "role": "clerk",
                         "community_code": "hongxing"})
    assert r.status_code == 201, r.get_json()
    clerk = r.get_json()["id"]

    [made] = _log(world, "household.create")
    assert made["target"] == f"household:{household}" and made["actor"] == "grid"
    [added] = _log(world, "resident.create")
    assert added["target"] == f"resident:{resident}" and added["actor"] == "committee"
    assert added["details"]["login"] is True and added["details"]["household_id"] == household
    [login] = _log(world, "user.create")
    assert login["target"] == f"user:{clerk}" and login["actor"] == "committee"
    assert login["details"]["role"] == "clerk"


def test_a_login_made_with_the_cli_is_audit_logged(world, runner):
    result = runner.invoke(args=["create-user", "clerk9", "--role", "clerk", "--community", "hongxing",
                                 "--password-stdin"], input="long-enough-9\n")
    assert result.exit_code == 0, result.output
    [login] = _log(world, "user.create")
    assert login["actor"] == "cli" and login["details"]["username"] == "clerk9"
