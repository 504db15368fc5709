"""Teams for tasks (组队): household and group teams, the leader's one check-in, points per member or per
team, caps and slots, the pages, and two teams racing for the last places."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from conftest import main_text, page_login
from earning_support import PASSWORD, build_town, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world, code="clean", review="auto", publicity_days=0, points=10)
    # 李家 grows: 李四 and two kin, so a household team has three members.
    t.r2b = world.resident(t.h2, "李小红", phone="13800000021", password=PASSWORD)
    t.r2c = world.resident(t.h2, "李奶奶")  # no phone, no login: her leader checks her in
    t.resident2b = "13800000021"
    return t


def make_task(world, clock, slots=10, points_per=None, rule_code="clean", hours=2):
    body = {"community_code": "hongxing", "rule_code": rule_code, "title": "周六清扫槐树街",
            "starts_at": clock.now().isoformat(), "ends_at": (clock.now() + timedelta(hours=hours)).isoformat(),
            "slots": slots}
    if points_per:
        body["points_per"] = points_per
    r = world.call("POST", "/api/v1/tasks", "committee", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def token_for(world, task_id):
    r = world.call("GET", f"/api/v1/tasks/{task_id}/checkin-code", "grid")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["token"]


def form_team(world, task_id, user, expect=201, **body):
    r = world.call("POST", f"/api/v1/tasks/{task_id}/teams", user, json=body)
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def team_check_in(world, team_id, user, token, **kw):
    return world.call("POST", f"/api/v1/teams/{team_id}/checkin", user, json={"token": token}, **kw)


def test_household_team_is_checked_in_once_by_its_leader_points_per_member(town, world, clock):
    task = make_task(world, clock)
    assert task["points_per"] == "member"
    team = form_team(world, task["id"], town.resident2, kind="household")
    assert team["kind"] == "household" and team["name"] == "李家" and team["household_id"] == town.h2
    assert [m["resident_id"] for m in team["members"]] == [town.r2, town.r2b, town.r2c]
    assert team["members"][0]["leader"] and team["size"] == 3

    token = token_for(world, task["id"])
    r = team_check_in(world, team["id"], town.resident2, token)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["new"] and sorted(body["checked_in"]) == sorted([town.r2, town.r2b, town.r2c])
    assert sorted(c["resident_id"] for c in body["claims"]) == sorted([town.r2, town.r2b, town.r2c])
    assert {c["household_id"] for c in body["claims"]} == {town.h2}
    assert all(m["checked_in"] and m["by_team"] for m in body["team"]["members"])
    assert world.balance(accounts.household_points(town.h2)) == 30
    # Idempotent: again, nothing new.
    again = team_check_in(world, team["id"], town.resident2, token)
    assert again.status_code == 200 and again.get_json()["new"] is False and again.get_json()["claims"] == []
    assert world.balance(accounts.household_points(town.h2)) == 30
    got = world.call("GET", f"/api/v1/tasks/{task['id']}", "committee").get_json()
    assert got["checked_in"] == 3
    # A member who then scans alone gets the claim their leader made for them.
    alone = world.call("POST", "/api/v1/checkins", town.resident2b, json={"token": token})
    assert alone.status_code == 200
    assert alone.get_json()["claim"]["resident_id"] == town.r2b


def test_points_per_team_credit_the_household_once(town, world, clock):
    task = make_task(world, clock, points_per="team")
    assert task["points_per"] == "team"
    team = form_team(world, task["id"], town.resident2, kind="household")
    token = token_for(world, task["id"])
    # A member of a team does not scan alone on a per-team task: the household would earn twice.
    r = world.call("POST", "/api/v1/checkins", town.resident2b, json={"token": token})
    assert r.status_code == 409 and r.get_json()["error"] == "team_member"
    r = team_check_in(world, team["id"], town.resident2, token)
    assert r.status_code == 201
    body = r.get_json()
    assert len(body["claims"]) == 1 and body["claims"][0]["resident_id"] == town.r2
    assert body["team"]["claim_id"] == body["claims"][0]["id"]
    assert {m["claim_id"] for m in body["team"]["members"]} == {body["claims"][0]["id"]}
    assert world.balance(accounts.household_points(town.h2)) == 10
    assert world.call("GET", f"/api/v1/tasks/{task['id']}", "committee").get_json()["checked_in"] == 3


def test_group_team_members_join_and_a_member_checked_in_alone_is_not_counted_twice(town, world, clock):
    task = make_task(world, clock)
    team = form_team(world, task["id"], town.resident1, kind="group", name="槐树街志愿队")
    assert team["name"] == "槐树街志愿队" and [m["resident_id"] for m in team["members"]] == [town.r1]
    for user in (town.resident2, town.resident2b):
        r = world.call("POST", f"/api/v1/teams/{team['id']}/join", user, json={})
        assert r.status_code == 200, r.get_json()
    token = token_for(world, task["id"])
    # 李小红 scans alone first: she is checked in once, with her own claim.
    alone = world.call("POST", "/api/v1/checkins", town.resident2b, json={"token": token})
    assert alone.status_code == 201
    r = team_check_in(world, team["id"], town.resident1, token)
    assert r.status_code == 201
    body = r.get_json()
    assert sorted(body["checked_in"]) == sorted([town.r1, town.r2])
    members = {m["resident_id"]: m for m in body["team"]["members"]}
    assert members[town.r2b]["checked_in"] and not members[town.r2b]["by_team"]
    assert world.balance(accounts.household_points(town.h1)) == 10
    assert world.balance(accounts.household_points(town.h2)) == 20
    assert world.call("GET", f"/api/v1/tasks/{task['id']}", "committee").get_json()["checked_in"] == 3
    # Someone who joins later is checked in by the leader's next check-in; the others are not again.
    r = world.call("POST", f"/api/v1/teams/{team['id']}/join", town.resident1b, json={})
    assert r.status_code == 200
    r = team_check_in(world, team["id"], town.resident1, token)
    assert r.status_code == 201 and r.get_json()["checked_in"] == [town.r1b]
    assert world.balance(accounts.household_points(town.h1)) == 20


def test_a_team_that_does_not_fit_is_refused_whole(town, world, clock):
    task = make_task(world, clock, slots=3)
    team = form_team(world, task["id"], town.resident2, kind="household")
    token = token_for(world, task["id"])
    assert world.call("POST", "/api/v1/checkins", town.resident1, json={"token": token}).status_code == 201
    r = team_check_in(world, team["id"], town.resident2, token)
    assert r.status_code == 409 and r.get_json()["error"] == "team_does_not_fit"
    assert world.balance(accounts.household_points(town.h2)) == 0
    assert world.call("GET", f"/api/v1/tasks/{task['id']}", "committee").get_json()["checked_in"] == 1
    # Take a member out and the team fits the two places left; then the task is full.
    r = world.call("POST", f"/api/v1/teams/{team['id']}/leave", town.resident2, json={"resident_id": town.r2c})
    assert r.status_code == 200 and r.get_json()["team"]["size"] == 2
    assert team_check_in(world, team["id"], town.resident2, token).status_code == 201
    assert world.balance(accounts.household_points(town.h2)) == 20
    other = form_team(world, task["id"], town.resident1b, kind="group")
    r = team_check_in(world, other["id"], town.resident1b, token)
    assert r.status_code == 409 and r.get_json()["error"] == "task_full"


def test_the_cap_refuses_the_whole_team_check_in(town, world, clock):
    rule(world, code="sweep", review="auto", publicity_days=0, points=10, cap={"period": "day", "max_points": 20})
    task = make_task(world, clock, rule_code="sweep")
    team = form_team(world, task["id"], town.resident2, kind="household")
    token = token_for(world, task["id"])
    r = team_check_in(world, team["id"], town.resident2, token)
    assert r.status_code == 409 and r.get_json()["error"] == "cap_exceeded"
    assert world.balance(accounts.household_points(town.h2)) == 0
    assert world.call("GET", f"/api/v1/tasks/{task['id']}", "committee").get_json()["checked_in"] == 0
    # Per team, the household earns once: within its cap.
    task2 = make_task(world, clock, rule_code="sweep", points_per="team")
    team2 = form_team(world, task2["id"], town.resident2, kind="household")
    r = team_check_in(world, team2["id"], town.resident2, token_for(world, task2["id"]))
    assert r.status_code == 201 and world.balance(accounts.household_points(town.h2)) == 10


def test_team_rules_and_who_may_do_what(town, world, clock):
    task = make_task(world, clock)
    team = form_team(world, task["id"], town.resident2, kind="household", member_ids=[town.r2b])
    assert [m["resident_id"] for m in team["members"]] == [town.r2, town.r2b]
    # One household team per task; one team per resident.
    r = world.call("POST", f"/api/v1/tasks/{task['id']}/teams", town.resident2b, json={"kind": "household"})
    assert r.status_code == 409 and r.get_json()["error"] == "team_exists"
    r = world.call("POST", f"/api/v1/tasks/{task['id']}/teams", town.resident2b, json={"kind": "group"})
    assert r.status_code == 409 and r.get_json()["error"] == "already_in_team"
    # A household team is of its household only.
    r = world.call("POST", f"/api/v1/teams/{team['id']}/join", town.resident1, json={})
    assert r.status_code == 409 and r.get_json()["error"] == "other_household"
    # The leader adds kin (李奶奶 has no phone); a member does not add others to a group team.
    r = world.call("POST", f"/api/v1/teams/{team['id']}/join", town.resident2, json={"resident_id": town.r2c})
    assert r.status_code == 200 and r.get_json()["size"] == 3
    group = form_team(world, task["id"], town.resident1, kind="group")
    r = world.call("POST", f"/api/v1/teams/{group['id']}/join", town.resident1, json={"resident_id": town.r1b})
    assert r.status_code == 403
    # Staff form a team for a resident without a phone and add members.
    staff_team = form_team(world, task["id"], "grid", kind="group", name="网格代组", leader_resident_id=town.r1b)
    assert staff_team["leader_resident_id"] == town.r1b and staff_team["size"] == 1
    # Other residents see a team's name and size, not who is in it.
    seen = world.call("GET", f"/api/v1/tasks/{task['id']}/teams", town.resident1).get_json()["items"]
    by_id = {t["id"]: t for t in seen}
    assert by_id[team["id"]]["members"] is None and by_id[team["id"]]["size"] == 3
    assert by_id[group["id"]]["members"][0]["name"] == "张三"
    staff_view = world.call("GET", f"/api/v1/tasks/{task['id']}/teams", "committee").get_json()["items"]
    assert len(staff_view) == 3 and all(t["members"] for t in staff_view)
    # Another community sees nothing.
    assert world.call("GET", f"/api/v1/tasks/{task['id']}/teams", town.resident3).status_code == 404
    assert world.call("POST", f"/api/v1/teams/{team['id']}/join", town.resident3, json={}).status_code == 404
    # Only the leader checks the team in.
    token = token_for(world, task["id"])
    r = team_check_in(world, team["id"], town.resident2b, token)
    assert r.status_code == 403 and r.get_json()["error"] == "not_team_leader"
    # A code of another task is not this team's.
    other_task = make_task(world, clock)
    r = team_check_in(world, team["id"], town.resident2, token_for(world, other_task["id"]))
    assert r.status_code == 422 and r.get_json()["error"] == "token_invalid"
    # The leader leaves last; nobody leaves once checked in.
    r = world.call("POST", f"/api/v1/teams/{team['id']}/leave", town.resident2, json={})
    assert r.status_code == 409 and r.get_json()["error"] == "team_has_members"
    assert team_check_in(world, team["id"], town.resident2, token).status_code == 201
    r = world.call("POST", f"/api/v1/teams/{team['id']}/leave", town.resident2b, json={})
    assert r.status_code == 409 and r.get_json()["error"] == "already_checked_in"
    # A leader alone who leaves ends the team.
    r = world.call("POST", f"/api/v1/teams/{group['id']}/leave", town.resident1, json={})
    assert r.status_code == 200 and r.get_json() == {"team": None, "ended": True}


def test_team_check_in_replays_with_an_idempotency_key(town, world, clock):
    task = make_task(world, clock)
    team = form_team(world, task["id"], town.resident2, kind="household")
    token = token_for(world, task["id"])
    first = team_check_in(world, team["id"], town.resident2, token, headers={"Idempotency-Key": "team-1"})
    second = team_check_in(world, team["id"], town.resident2, token, headers={"Idempotency-Key": "team-1"})
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.get_json() == second.get_json()
    assert world.balance(accounts.household_points(town.h2)) == 30


def test_pages_form_join_and_check_in_a_team(town, world, clock, app):
    task = make_task(world, clock, points_per="team")
    leader = page_login(app, town.resident2)
    page = leader.get("/me/tasks")
    assert page.status_code == 200 and "周六清扫槐树街" in main_text(page)
    r = leader.post("/me/tasks", data={"action": "form", "kind": "household", "task_id": task["id"],
                                       "form_key": "team-page-1"})
    assert r.status_code == 302
    text = main_text(leader.get("/me/tasks"))
    assert "李家" in text and "李奶奶" in text
    # A neighbour forms a group; another joins it on the page.
    neighbour = page_login(app, town.resident1)
    neighbour.post("/me/tasks", data={"action": "form", "kind": "group", "name": "张家小分队",
                                      "task_id": task["id"], "form_key": "team-page-2"})
    teams = world.call("GET", f"/api/v1/tasks/{task['id']}/teams", "committee").get_json()["items"]
    group = next(t for t in teams if t["kind"] == "group")
    kin = page_login(app, town.resident1b)
    kin.post("/me/tasks", data={"action": "join", "team_id": group["id"], "form_key": "team-page-3"})
    teams = world.call("GET", f"/api/v1/tasks/{task['id']}/teams", "committee").get_json()["items"]
    assert next(t for t in teams if t["kind"] == "group")["size"] == 2
    # The committee's page shows the teams.
    committee = page_login(app, "committee")
    text = main_text(committee.get("/committee/tasks"))
    assert "李家" in text and "张家小分队" in text
    # The leader opens the check-in code: the page offers the team's check-in and does it.
    token = token_for(world, task["id"])
    page = leader.get(f"/checkin?token={token}")
    assert page.status_code == 200 and "李家" in main_text(page)
    done = leader.post("/checkin", data={"token": token, "team_id": next(
        t["id"] for t in teams if t["kind"] == "household"), "form_key": "team-page-4"})
    assert done.status_code == 201, main_text(done)
    assert "3" in main_text(done)
    assert world.balance(accounts.household_points(town.h2)) == 10
    # A member of a per-team task's team who scans is told their leader checks them in.
    member = page_login(app, town.resident1b)
    r = member.post("/checkin", data={"token": token, "form_key": "team-page-5"})
    assert r.status_code == 409


def test_two_teams_race_for_the_last_places(town, world, clock, make_app):
    task = make_task(world, clock, slots=4)
    first = form_team(world, task["id"], town.resident2, kind="household")           # three members
    second = form_team(world, task["id"], town.resident1, kind="household")          # 张三, 张小妹, 张主任
    token = token_for(world, task["id"])
    headers = {name: world.headers(name) for name in (town.resident2, town.resident1)}
    apps = [make_app(), make_app()]
    barrier = threading.Barrier(2)
    results = {}

    def go(index, team_id, username):
        client = apps[index].test_client()
        barrier.wait()
        results[team_id] = client.post(f"/api/v1/teams/{team_id}/checkin", json={"token": token},
                                       headers=headers[username])

    threads = [threading.Thread(target=go, args=(0, first["id"], town.resident2)),
               threading.Thread(target=go, args=(1, second["id"], town.resident1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    codes = sorted(r.status_code for r in results.values())
    assert codes == [201, 409], [r.get_json() for r in results.values()]
    loser = next(r for r in results.values() if r.status_code == 409)
    assert loser.get_json()["error"] == "team_does_not_fit"
    assert world.call("GET", f"/api/v1/tasks/{task['id']}", "committee").get_json()["checked_in"] == 3


def test_staff_form_a_team_on_the_committee_page(town, world, clock, app):
    task = make_task(world, clock)
    grid = page_login(app, "grid")
    r = grid.post(f"/committee/tasks/{task['id']}/teams", data={
        "action": "form", "kind": "household", "card": "13800000002", "form_key": "staff-team-1"})
    assert r.status_code == 302
    teams = world.call("GET", f"/api/v1/tasks/{task['id']}/teams", "committee").get_json()["items"]
    assert len(teams) == 1 and teams[0]["size"] == 3 and teams[0]["leader_resident_id"] == town.r2
    group = form_team(world, task["id"], town.resident1, kind="group")
    r = grid.post(f"/committee/tasks/{task['id']}/teams", data={
        "action": "add", "team_id": group["id"], "card": "13800000011", "form_key": "staff-team-2"})
    assert r.status_code == 302
    text = main_text(grid.get("/committee/tasks"))
    assert "李家" in text and "张小妹" in text
    # A supervisor reads and changes nothing.
    supervisor = page_login(app, "super")
    assert supervisor.post(f"/committee/tasks/{task['id']}/teams", data={
        "action": "form", "kind": "group", "card": "13800000001", "form_key": "staff-team-3"}).status_code == 403
