"""Deeply nested JSON ([[[[...]]]] or {"a":{"a":...}}) is refused with 422 problem+json
``too_deeply_nested`` on every endpoint, before any parser recurses into it: never a 500."""

from __future__ import annotations

import json

import pytest

DEEP = 10_000


def _lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def _objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


BODIES = {
    "lists": _lists(DEEP),
    "objects": _objects(DEEP),
    "in_a_field": '{"username": "admin", "password": ' + _lists(DEEP) + "}",
    "just_past_the_limit": '{"lines": ' + _lists(65) + "}",
    "what_python_parses": _objects(600),  # json.loads takes it; walking it naively still recurses deep
}


@pytest.fixture
def staff(world):
    world.user("clerk", "clerk")
    return world


@pytest.mark.parametrize("name", list(BODIES))
@pytest.mark.parametrize("method, url, user", [
    ("POST", "/api/v1/auth/token", None),
    ("POST", "/api/v1/redemptions", "clerk"),
    ("POST", "/api/v1/communities", "admin"),
    ("POST", "/api/v1/stock-movements", "clerk"),
    ("PATCH", "/api/v1/items/1", "clerk"),
    ("POST", "/api/v1/help-requests", "clerk"),
])
def test_deep_nesting_is_refused_not_a_500(staff, name, method, url, user):
    headers = {"Idempotency-Key": f"deep-{name}"} if url.endswith("redemptions") else {}
    r = staff.call(method, url, user, data=BODIES[name], content_type="application/json", headers=headers)
    assert r.status_code == 422, (r.status_code, r.get_data(as_text=True)[:300])
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["error"] == "too_deeply_nested" and body["status"] == 422 and body["detail"]


def test_nesting_inside_strings_does_not_count(staff):
    """Brackets inside text are text: a title full of them is taken (or refused for other reasons)."""
    text = "[" * 5000 + '\\"{' * 100
    body = json.dumps({"username": text[:60], "password": "x" * 10})
    r = staff.client.post("/api/v1/auth/token", data=body, content_type="application/json")
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_credentials"


def test_ordinary_nesting_is_taken(staff):
    r = staff.call("POST", "/api/v1/communities", "admin", json={"code": "qing", "name": "青山村"})
    assert r.status_code == 201
    r = staff.call("POST", "/api/v1/communities", "admin", data=_objects(64), content_type="application/json")
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"  # not a community, but not too deep


def test_a_page_form_with_a_json_type_is_guarded_too(staff):
    r = staff.client.post("/login", data=_lists(DEEP), content_type="application/json")
    assert r.status_code == 422 and r.status_code != 500
