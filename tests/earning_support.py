"""A small community for the earning tests: staff, three households, a second community."""

from __future__ import annotations

from types import SimpleNamespace

PASSWORD = "secret-pass"


def build_town(world) -> SimpleNamespace:
    t = SimpleNamespace(world=world)
    world.community("lvye", "绿野村")
    t.h1 = world.household(name="张家", color="green", grid="1")
    t.h2 = world.household(name="李家", color="red", grid="2")
    t.h3 = world.household(community_code="lvye", name="王家", color="yellow")
    t.r1 = world.resident(t.h1, "张三", phone="13800000001", password=PASSWORD)
    t.r1b = world.resident(t.h1, "张小妹", phone="13800000011", password=PASSWORD)
    t.r2 = world.resident(t.h2, "李四", phone="13800000002", password=PASSWORD)
    t.r3 = world.resident(t.h3, "王五", phone="13800000003", password=PASSWORD)
    # A committee member who lives in household 1: conflict of interest for its claims.
    t.c1_resident = world.resident(t.h1, "张主任")
    world.user("committee", "committee")
    world.user("committee_h1", "committee", resident_id=t.c1_resident)
    world.user("grid", "grid_worker")
    world.user("clerk", "clerk")
    world.user("super", "supervisor")
    world.user("other_committee", "committee", community_code="lvye")
    t.resident1, t.resident1b, t.resident2, t.resident3 = "13800000001", "13800000011", "13800000002", "13800000003"
    return t


def rule(world, code="clean", user="committee", community_code="hongxing", **terms):
    body = {"community_code": community_code, "code": code, "title": "清扫楼道", "category": "volunteer",
            "points": 10, "review": "review", "publicity_days": 3}
    body.update(terms)
    r = world.call("POST", "/api/v1/rules", user, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def claim(world, resident_id, user, rule_code="clean", community_code="hongxing", expect=201, **extra):
    r = world.call("POST", "/api/v1/claims", user,
                   json={"community_code": community_code, "rule_code": rule_code, "resident_id": resident_id,
                         **extra})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def advance(world, clock, **delta):
    """Move the clock; bearer tokens last 12 hours, so log in again afterwards."""
    clock.advance(**delta)
    world._tokens.clear()
