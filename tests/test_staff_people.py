"""Staff are people: the two-person rules count people, not logins.

The finding: "One committee member created a second staff login for itself, approved its own
household's claim with it, and signed both sign-offs of a month close." Each way of doing that is
refused now: only an admin makes committee logins; one person holds one active staff login per
community (409 ``person_has_login``, in the database too); a staff login without a person approves,
signs and voids nothing (403 ``person_required``); and two logins of one person are one signer
(409 ``same_signer``) and one approver (403 ``self_approval``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from earning_support import PASSWORD, claim, rule
from timebank.core.extensions import db

APRIL = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 1 April 00:00 in Shanghai: March has ended
CHAIR_PHONE = "13700000001"


@pytest.fixture
def town(world):
    """红星: 张家 (the chair's household, the chair is 张主任 with a phone), 李家; the chair and a
    second committee member; a grid worker and a clerk."""
    t = world
    t.h1 = world.household(name="张家")
    t.h2 = world.household(name="李家", grid="2")
    t.chair_person = world.resident(t.h1, "张主任", phone=CHAIR_PHONE)
    t.r1 = world.resident(t.h1, "张三", phone="13800000001", password=PASSWORD)
    t.r2 = world.resident(t.h2, "李四", phone="13800000002", password=PASSWORD)
    world.user("chair", "committee", phone=CHAIR_PHONE)
    world.user("vice", "committee")
    world.user("grid", "grid_worker")
    world.user("clerk", "clerk")
    rule(world, user="chair")
    return t


def _problem(r, status, code):
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"] == code, r.get_json()


def _new_login(world, actor, username, role, expect=201, **extra):
    r = world.call("POST", "/api/v1/users", actor,
                   json={"username": username, "password": PASSWORD, "role": role,
                         "community_code": "hongxing", **extra})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def _sign(world, who, month="2026-03"):
    return world.call("POST", "/api/v1/month-closes", who, json={"community_code": "hongxing", "month": month})


# --- the finding ------------------------------------------------------------------------------------

def test_a_phone_that_is_a_residents_links_the_staff_login_to_that_resident(world, town):
    with world.app.app_context():
        from timebank.core.users import User

        chair = db.session.execute(db.select(User).where(User.username == "chair")).scalar_one()
        assert chair.resident_id == town.chair_person and chair.phone == CHAIR_PHONE
        assert chair.person_key == f"phone:{CHAIR_PHONE}"
    # So its own household's claim is its own: self_approval.
    mine = claim(world, town.r1, "13800000001")
    _problem(world.call("POST", f"/api/v1/claims/{mine['id']}/approve", "chair"), 403, "self_approval")


def test_a_committee_member_cannot_make_itself_a_second_login(world, town):
    """The finding, step 1: the second login. A committee login is an admin's to make; a grid worker
    or clerk login with the chair's own phone is the same person: 409 person_has_login."""
    _problem(world.call("POST", "/api/v1/users", "chair",
                        json={"username": "chair2", "password": "long-enough-9", "role": "committee",
                              "community_code": "hongxing", "phone": CHAIR_PHONE}), 403, "forbidden")
    _problem(world.call("POST", "/api/v1/users", "chair",
                        json={"username": "watch", "password": "long-enough-9", "role": "supervisor",
                              "community_code": "hongxing", "phone": "13700000099"}), 403, "forbidden")
    for role in ("grid_worker", "clerk"):
        _problem(world.call("POST", "/api/v1/users", "chair",
                            json={"username": f"chair_{role}", "password": "long-enough-9", "role": role,
                                  "community_code": "hongxing", "phone": CHAIR_PHONE}), 409, "person_has_login")
        # The same person named by the resident record, or with the number typed with spaces.
        _problem(world.call("POST", "/api/v1/users", "chair",
                            json={"username": f"chair_{role}", "password": "long-enough-9", "role": role,
                                  "community_code": "hongxing", "resident_id": town.chair_person}),
                 409, "person_has_login")
        _problem(world.call("POST", "/api/v1/users", "chair",
                            json={"username": f"chair_{role}", "password": "long-enough-9", "role": role,
                                  "community_code": "hongxing", "phone": "137 0000 0001"}), 409, "person_has_login")
    # An admin is refused too: one person, one staff login per community.
    _problem(world.call("POST", "/api/v1/users", "admin",
                        json={"username": "chair2", "password": "long-enough-9", "role": "committee",
                              "community_code": "hongxing", "phone": CHAIR_PHONE}), 409, "person_has_login")


def test_a_login_without_a_person_approves_signs_and_voids_nothing(world, town, clock):
    """The finding, step 2: a login without a phone (the old way to make one) reads, but does not
    approve its owner's household's claim, nor any other, nor sign a month close."""
    made = _new_login(world, "chair", "helper", "grid_worker")  # no phone: allowed, but no person
    mine = claim(world, town.r1, "13800000001")
    theirs = claim(world, town.r2, "13800000002")
    assert world.call("GET", f"/api/v1/claims/{mine['id']}", "helper").status_code == 200  # it reads
    _problem(world.call("POST", f"/api/v1/claims/{mine['id']}/approve", "helper"), 403, "person_required")
    _problem(world.call("POST", f"/api/v1/claims/{theirs['id']}/reject", "helper", json={"reason": "x"}),
             403, "person_required")
    assert world.call("GET", f"/api/v1/claims/{mine['id']}", "chair").get_json()["status"] == "pending"
    # An admin makes a committee login without a person: it signs nothing.
    world.user("nobody_committee", "committee", person=False)
    clock.set(APRIL)
    world._tokens.clear()
    _problem(_sign(world, "nobody_committee"), 403, "person_required")
    # Linked to a person, the grid worker's login approves what is not its own.
    r = world.call("PATCH", f"/api/v1/users/{made['id']}", "chair", json={"phone": "13700000055"})
    assert r.status_code == 200 and r.get_json()["has_person"] is True, r.get_json()
    assert world.call("POST", f"/api/v1/claims/{theirs['id']}/approve", "helper").status_code == 200


def test_two_logins_of_one_person_are_one_signer(world, town, clock):
    """The finding, step 3: both sign-offs of a month close by one person. The chair signs, its login
    is deactivated and the person gets a new one (the only way to hold two): still the same signer."""
    clock.set(APRIL)
    world._tokens.clear()  # tokens last 12 hours
    assert _sign(world, "chair").status_code == 201
    _problem(_sign(world, "chair"), 409, "same_signer")
    with world.app.app_context():
        from timebank.core.users import User

        chair_id = db.session.execute(db.select(User.id).where(User.username == "chair")).scalar_one()
    assert world.call("POST", f"/api/v1/users/{chair_id}/deactivate", "admin").status_code == 200
    made = _new_login(world, "admin", "chair_again", "committee", phone=CHAIR_PHONE)
    assert made["resident_id"] == town.chair_person
    _problem(_sign(world, "chair_again"), 409, "same_signer")
    r = _sign(world, "vice")
    assert r.status_code == 201 and r.get_json()["status"] == "closed", r.get_json()


def test_a_second_login_of_the_person_who_entered_a_claim_does_not_approve_it(world, town):
    """代录 by person: the grid worker entered 李四's claim; a new login of the same phone may not approve it."""
    entered = claim(world, town.r2, "grid")
    with world.app.app_context():
        from timebank.core.users import User

        grid = db.session.execute(db.select(User).where(User.username == "grid")).scalar_one()
        grid_id, grid_phone = grid.id, grid.phone
    assert world.call("POST", f"/api/v1/users/{grid_id}/deactivate", "chair").status_code == 200
    _new_login(world, "chair", "grid_again", "grid_worker", phone=grid_phone)
    _problem(world.call("POST", f"/api/v1/claims/{entered['id']}/approve", "grid_again"), 403, "self_approval")
    assert world.call("POST", f"/api/v1/claims/{entered['id']}/approve", "vice").status_code == 200


def test_a_clerk_linked_by_phone_does_not_void_its_households_receipt(world, town):
    """A clerk whose phone is 张三's: 张家's receipts are its own household's (self_approval); a
    clerk without a person voids nothing (person_required)."""
    _new_login(world, "chair", "clerk_zhang", "clerk", phone="13800000001")
    world.user("clerk_nobody", "clerk", person=False)
    world.grant(town.h1, 100)
    item = world.call("POST", "/api/v1/items", "clerk", json={"community_code": "hongxing", "sku": "oil",
                                                              "name": "食用油", "price_points": 20}).get_json()["id"]
    assert world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 5, "reason": "donation", "donor": "爱心企业"}).status_code == 201
    with world.app.app_context():
        from timebank.people.models import Household

        card = db.session.get(Household, town.h1).member_code
    sale = world.call("POST", "/api/v1/redemptions", "clerk",
                      json={"member_code": card, "lines": [{"item_id": item, "quantity": 1}]})
    receipt = sale.get_json()["id"]
    _problem(world.call("POST", f"/api/v1/redemptions/{receipt}/void", "clerk_zhang", json={"reason": "x"}),
             403, "self_approval")
    _problem(world.call("POST", f"/api/v1/redemptions/{receipt}/void", "clerk_nobody", json={"reason": "x"}),
             403, "person_required")
    _problem(world.call("POST", f"/api/v1/redemptions/{receipt}/returns", "clerk_nobody",
                        json={"lines": [{"item_id": item, "quantity": 1}], "reason": "x"}), 403, "person_required")
    assert world.call("POST", f"/api/v1/redemptions/{receipt}/void", "clerk", json={"reason": "x"}).status_code == 200


def test_a_resident_registered_later_with_a_staff_phone_links_that_login(world, town):
    """The grid worker's phone was nobody's; later the committee registers the grid worker as a
    resident of 李家: the login now sees its household, and 李家's claims are its own."""
    with world.app.app_context():
        from timebank.core.users import User

        grid_phone = db.session.execute(db.select(User.phone).where(User.username == "grid")).scalar_one()
    r = world.call("POST", "/api/v1/residents", "chair", json={"household_id": town.h2, "name": "李网格",
                                                               "phone": grid_phone})
    assert r.status_code == 201, r.get_json()
    theirs = claim(world, town.r2, "13800000002")
    _problem(world.call("POST", f"/api/v1/claims/{theirs['id']}/approve", "grid"), 403, "self_approval")


def test_admin_logins_are_exempt(world, town):
    """Admin logins are deployment-level: no person, and the person rules do not stop them."""
    theirs = claim(world, town.r2, "13800000002")
    assert world.call("POST", f"/api/v1/claims/{theirs['id']}/approve", "admin").status_code == 200
    r = world.call("POST", "/api/v1/users", "admin", json={"username": "root2", "password": "long-enough-9",
                                                          "role": "admin", "phone": "13700000077"})
    assert r.status_code == 422, r.get_json()


# --- the database keeps the rule too ------------------------------------------------------------------

def test_the_database_refuses_a_second_active_staff_login_of_one_person(world, town):
    from timebank.core.users import User
    from timebank.people.operations import community_by_code

    world.community("lvye", "绿野村")
    with world.app.app_context():
        chair = db.session.execute(db.select(User).where(User.username == "chair")).scalar_one()
        values = {"password_hash": "x", "community_id": chair.community_id, "person_key": chair.person_key,
                  "phone": chair.phone}
        db.session.add(User(username="sneaky", role="clerk", **values))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
        # Not covered: a deactivated login, a resident's own login, another community.
        db.session.add(User(username="old", role="clerk", active=False, **values))
        db.session.add(User(username=CHAIR_PHONE, role="resident", **values))
        other = community_by_code("lvye").id
        db.session.add(User(username="elsewhere", role="clerk", **{**values, "community_id": other}))
        db.session.flush()
        db.session.rollback()


# --- who makes whom, linking later -------------------------------------------------------------------

def test_the_committee_makes_grid_workers_clerks_and_residents_logins_of_its_community(world, town):
    made = _new_login(world, "chair", "grid2", "grid_worker", phone="13700000021")
    assert made["role"] == "grid_worker"
    _new_login(world, "chair", "clerk2", "clerk", phone="13700000022")
    _new_login(world, "chair", "nobody_resident", "resident", expect=422)  # a resident login names its resident
    world.resident(town.h2, "李小", phone="13800000033")
    with world.app.app_context():
        from timebank.people.models import Resident

        r3 = db.session.execute(db.select(Resident.id).where(Resident.phone == "13800000033")).scalar_one()
    made = _new_login(world, "chair", "13800000033", "resident", resident_id=r3)
    assert made["resident_id"] == r3
    world.community("lvye", "绿野村")
    _problem(world.call("POST", "/api/v1/users", "chair",
                        json={"username": "far", "password": "long-enough-9", "role": "clerk",
                              "community_code": "lvye", "phone": "13700000023"}), 403, "forbidden")
    _new_login(world, "admin", "sup", "supervisor", phone="13700000024")


def test_linking_a_login_to_a_person(world, town):
    made = _new_login(world, "chair", "later", "clerk")
    assert made["resident_id"] is None
    # The committee does not link a committee login (an admin's); an admin does.
    world.user("bare_committee", "committee", person=False)
    with world.app.app_context():
        from timebank.core.users import User

        bare = db.session.execute(db.select(User.id).where(User.username == "bare_committee")).scalar_one()
    _problem(world.call("PATCH", f"/api/v1/users/{bare}", "chair", json={"phone": "13700000031"}), 403, "forbidden")
    assert world.call("PATCH", f"/api/v1/users/{bare}", "admin", json={"phone": "13700000031"}).status_code == 200
    # Another person's phone that already holds a staff login here: 409.
    _problem(world.call("PATCH", f"/api/v1/users/{made['id']}", "chair", json={"phone": CHAIR_PHONE}),
             409, "person_has_login")
    # By resident: 张三 becomes the person; then it cannot be switched to somebody else.
    r = world.call("PATCH", f"/api/v1/users/{made['id']}", "chair", json={"resident_id": town.r1})
    assert r.status_code == 200 and r.get_json()["resident_id"] == town.r1, r.get_json()
    _problem(world.call("PATCH", f"/api/v1/users/{made['id']}", "chair", json={"phone": "13700000032"}),
             409, "person_already_set")
    # The same person again is fine.
    assert world.call("PATCH", f"/api/v1/users/{made['id']}", "chair",
                      json={"phone": "13800000001"}).status_code == 200
    log = world.call("GET", "/api/v1/audit-log?action=user.update", "admin").get_json()["items"]
    assert {e["target"] for e in log} == {f"user:{made['id']}", f"user:{bare}"}
    change = next(e for e in log if e["target"] == f"user:{made['id']}" and e["details"]["before"]["phone"] is None)
    assert change["details"]["after"]["resident_id"] == town.r1 and change["actor"] == "chair"


def test_a_grid_worker_adds_no_one_to_an_existing_household_but_registers_new_ones(app, world, town):
    _problem(world.call("POST", "/api/v1/residents", "grid",
                        json={"household_id": town.h2, "name": "冒名", "phone": "13900000099"}), 403, "forbidden")
    page = app.test_client()
    assert page.post("/login", data={"username": "grid", "password": PASSWORD}).status_code == 302
    r = page.post("/committee/households", data={"name": "新户", "address": "9号", "grid": "1", "color": "green",
                                                   "resident": "新居民", "phone": "13900000100",
                                                   "form_key": "h" * 20})
    assert r.status_code in (302, 303)
    with app.app_context():
        from timebank.people.models import Household, Resident

        household = db.session.execute(db.select(Household).where(Household.name == "新户")).scalar_one()
        assert [m.name for m in household.members] == ["新居民"]
        assert db.session.execute(db.select(Resident.id).where(Resident.phone == "13900000099")).first() is None


def test_create_user_command_takes_a_phone(world, town, runner):
    result = runner.invoke(args=["create-user", "clerk9", "--role", "clerk", "--community", "hongxing",
                                 "--phone", "13800000002", "--password-stdin"], input="long-enough-9\n")
    assert result.exit_code == 0, result.output
    with world.app.app_context():
        from timebank.core.users import User

        made = db.session.execute(db.select(User).where(User.username == "clerk9")).scalar_one()
        assert made.resident_id == town.r2 and made.person_key == "phone:13800000002"
    result = runner.invoke(args=["create-user", "clerk10", "--role", "clerk", "--community", "hongxing",
                                 "--phone", "13800000002", "--password-stdin"], input="long-enough-9\n")
    assert result.exit_code != 0 and "staff login" in result.output
    result = runner.invoke(args=["create-user", "clerk11", "--role", "clerk", "--community", "hongxing",
                                 "--password-stdin"], input="long-enough-9\n")
    assert result.exit_code == 0 and "no person" in result.output
    log = world.call("GET", "/api/v1/audit-log?action=user.create", "admin").get_json()["items"]
    assert {e["details"]["username"] for e in log if e["actor"] == "cli"} == {"clerk9", "clerk11"}


def test_the_migration_keeps_one_person_per_login_and_leaves_the_second_without_one(tmp_path):
    """Logins made before migration 0017: linked ones get their resident's phone and person; of two
    active staff logins of one person in one community, the older keeps the person and the other is
    left without one (person_required), so the unique index can be built. (A file of its own, so this
    runs on SQLite whichever database the suite uses.)"""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from conftest import base_config
    from timebank import create_app

    app = create_app(base_config(tmp_path, f"sqlite:///{tmp_path / 'old.sqlite'}"))
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision="0016")
        now = "2026-03-01 00:00:00"
        for sql in (
            "INSERT INTO communities (id, code, name, hours_cap_minutes, expiry_policy, created_at)"
            f" VALUES (1, 'hongxing', '红星', 90000, 'none', '{now}')",
            "INSERT INTO households (id, community_id, name, address, color, member_code, created_at)"
            f" VALUES (1, 1, '张家', '', 'green', 'H1', '{now}')",
            "INSERT INTO residents (id, household_id, name, phone, member_code, created_at)"
            f" VALUES (1, 1, '张主任', '13700000001', 'R1', '{now}'),"
            f" (2, 1, '张奶奶', NULL, 'R2', '{now}')",
            "INSERT INTO users (id, username, password_hash, role, community_id, resident_id, active, created_at)"
            f" VALUES (1, 'chair', 'x', 'committee', 1, 1, 1, '{now}'),"
            f" (2, 'chair_grid', 'x', 'grid_worker', 1, 1, 1, '{now}'),"
            f" (3, 'old_clerk', 'x', 'clerk', 1, 1, 0, '{now}'),"
            f" (4, '13700000001', 'x', 'resident', 1, 1, 1, '{now}'),"
            f" (5, 'grandma_clerk', 'x', 'clerk', 1, 2, 1, '{now}'),"
            f" (6, 'bare', 'x', 'clerk', 1, NULL, 1, '{now}')",
        ):
            db.session.execute(text(sql))
        db.session.commit()
        upgrade(directory=directory, revision="heads")
        rows = {r[0]: r[1:] for r in db.session.execute(text(
            "SELECT username, phone, person_key, password_change_required FROM users"))}
        db.session.remove()
        db.engine.dispose()
    assert rows["chair"] == ("13700000001", "phone:13700000001", 0)
    assert rows["chair_grid"][1] is None  # the second login of the same person: no person
    assert rows["old_clerk"][1] == "phone:13700000001"  # deactivated: not counted
    assert rows["13700000001"][1] == "phone:13700000001"  # a resident's own login
    assert rows["grandma_clerk"][1] == "resident:2"  # no phone: the resident record
    assert rows["bare"][1] is None


def test_a_new_phone_for_the_person_does_not_make_a_second_person(world, town):
    """The chair's resident record gets a new phone (PATCH /residents/{id}); the chair's staff login
    follows it, so a grid worker login made with the new number is still the chair: 409."""
    new_phone = "13700000555"
    r = world.call("PATCH", f"/api/v1/residents/{town.chair_person}", "admin",
                   json={"phone": new_phone, "reason": "换了手机号"})
    assert r.status_code == 200, r.get_json()
    with world.app.app_context():
        from timebank.core.users import User

        chair = db.session.execute(db.select(User).where(User.username == "chair")).scalar_one()
        assert chair.phone == new_phone and chair.person_key == f"phone:{new_phone}"
    _problem(world.call("POST", "/api/v1/users", "chair",
                        json={"username": "chair_grid2", "password": "long-enough-9", "role": "grid_worker",
                              "community_code": "hongxing", "phone": new_phone}), 409, "person_has_login")


def test_two_logins_linked_to_one_resident_are_one_person_whatever_their_keys(world, town):
    from timebank.core.users import User, same_person

    a = User(id=1, resident_id=7, person_key="phone:1")
    b = User(id=2, resident_id=7, person_key="phone:2")
    c = User(id=3, resident_id=8, person_key="phone:3")
    assert same_person(a, b) and not same_person(a, c)
