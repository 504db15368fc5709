"""Bad input and abuse: other people's data, oversized and malformed bodies, hostile text, huge numbers,
stale tokens, password guessing, replays. The answer is always a clear 4xx as problem+json, never a 500,
and nothing moves."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from conftest import base_config
from timebank import create_app
from timebank.core.extensions import db, limiter
from timebank.people.models import Household, Resident

PASSWORD = "resident-pass-1"


@pytest.fixture
def town(world):
    """Two households in hongxing, one in lijia; a resident with a login in each; staff on both sides."""
    world.community("lijia", "李家村")
    t = type("Town", (), {})()
    t.mine = world.household(name="张家")
    t.theirs = world.household(name="李家")
    t.far = world.household("lijia", name="远方")
    t.me = world.resident(t.mine, "张三", "13900000001", PASSWORD)
    t.neighbour = world.resident(t.theirs, "李四", "13900000002", PASSWORD)
    t.stranger = world.resident(t.far, "王五", "13900000003", PASSWORD)
    world.user("committee", "committee")
    world.user("far_committee", "committee", community_code="lijia")
    world.user("far_clerk", "clerk", community_code="lijia")
    world.grant(t.mine, 50)
    world.grant(t.theirs, 70)
    return t


def _as(world, phone):
    return {"Authorization": f"Bearer {world.token(phone, PASSWORD)}"}


def _problem(r, status, code):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:500])
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == status and body["error"] == code and body["title"] and body["detail"]
    return body


def _count(app, model):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


# ------------------------------------------------------------------------------------------------
# Other people's data
# ------------------------------------------------------------------------------------------------


def test_a_household_cannot_read_another_households_points(world, town):
    me = _as(world, "13900000001")
    assert world.client.get(f"/api/v1/households/{town.mine}", headers=me).get_json()["balance_points"] == 50
    for url in (f"/api/v1/households/{town.theirs}", f"/api/v1/households/{town.far}",
                f"/api/v1/residents/{town.neighbour}", f"/api/v1/residents/{town.stranger}"):
        body = _problem(world.client.get(url, headers=me), 404, "not_found")
        assert "70" not in json.dumps(body)  # not even a hint of the balance
    # Guessing ids that do not exist looks exactly like ids that belong to others.
    assert world.client.get("/api/v1/households/999999", headers=me).get_json()["error"] == "not_found"
    # The ledger is for committees: a resident cannot browse it, not even filtered to a neighbour.
    r = world.client.get(f"/api/v1/ledger/transactions?household_id={town.theirs}", headers=me)
    assert r.status_code in (403, 404) and r.mimetype == "application/problem+json"
    assert r.get_json()["error"] in ("forbidden", "not_found")


def test_staff_of_another_community_see_and_change_nothing_here(world, town):
    for username in ("far_committee", "far_clerk"):
        for url in (f"/api/v1/households/{town.mine}", f"/api/v1/residents/{town.me}"):
            _problem(world.call("GET", url, username), 404, "not_found")
        r = world.call("GET", "/api/v1/communities/hongxing", username)
        assert r.status_code in (403, 404) and r.get_json()["error"] in ("forbidden", "not_found")
        r = world.call("GET", f"/api/v1/ledger/transactions?household_id={town.mine}", username)
        # Refused, or scoped to their own community (so: nothing of this household).
        assert r.status_code in (200, 403, 404), r.get_json()
        if r.status_code == 200:
            assert r.get_json()["items"] == []
    households, residents = _count(world.app, Household), _count(world.app, Resident)
    _problem(world.call("POST", "/api/v1/households", "far_committee",
                        json={"community_code": "hongxing", "name": "冒名", "address": "x"}), 403, "forbidden")
    _problem(world.call("POST", "/api/v1/residents", "far_committee",
                        json={"household_id": town.mine, "name": "冒名", "phone": "13900000099"}), 403, "forbidden")
    _problem(world.call("POST", "/api/v1/users", "far_committee",
                        json={"username": "mole", "password": "mole-pass-1", "role": "clerk",
                              "community_code": "hongxing"}), 403, "forbidden")
    assert (_count(world.app, Household), _count(world.app, Resident)) == (households, residents)
    # Their own community still works for them.
    assert world.call("GET", f"/api/v1/households/{town.far}", "far_committee").status_code == 200


# ------------------------------------------------------------------------------------------------
# Bodies: size, syntax, shape, types
# ------------------------------------------------------------------------------------------------


def test_oversized_body_is_413_before_it_is_read(world):
    headers = world.headers("admin")
    big = json.dumps({"code": "big", "name": "x" * (1024 * 1024 + 10)})
    r = world.client.post("/api/v1/communities", data=big, content_type="application/json", headers=headers)
    _problem(r, 413, "payload_too_large")
    r = world.client.post("/api/v1/auth/token", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                          content_type="application/json")
    _problem(r, 413, "payload_too_large")


@pytest.mark.parametrize("body", ["{not json", '{"username": "admin",}', "\xff\xfe", '{"a": tru}', "["])
def test_malformed_json_is_400_bad_request(world, body):
    r = world.client.post("/api/v1/auth/token", data=body, content_type="application/json")
    _problem(r, 400, "bad_request")


@pytest.mark.parametrize("body", ["[]", '["admin", "secret-pass"]', '"admin"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_refused(world, body):
    headers = world.headers("admin")
    for url in ("/api/v1/auth/token", "/api/v1/communities", "/api/v1/households"):
        r = world.client.post(url, data=body, content_type="application/json", headers=headers)
        assert r.status_code in (400, 422), (url, body, r.status_code, r.get_data(as_text=True))
        assert r.mimetype == "application/problem+json"
        assert r.get_json()["error"] in ("bad_request", "validation_error")


@pytest.mark.parametrize("field, value", [
    ("household_id", "one"), ("household_id", True), ("household_id", [1]), ("household_id", {"id": 1}),
    ("household_id", 1.5), ("household_id", float("nan")), ("household_id", 10**30), ("household_id", -10**30),
    ("birth_year", "1950年"), ("birth_year", 1e300), ("name", 12345), ("name", ["张三"]), ("name", None),
    ("phone", 13900000005),
])
def test_wrong_types_are_422_with_the_field_named(world, town, field, value):
    body = {"household_id": town.mine, "name": "张小三", "phone": "13900000005", "birth_year": 1950}
    body[field] = value
    before = _count(world.app, Resident)
    r = world.call("POST", "/api/v1/residents", "committee", data=json.dumps(body), content_type="application/json")
    body = _problem(r, 422, "validation_error")
    assert field in body["errors"], body
    assert _count(world.app, Resident) == before


def test_fractions_never_become_whole_points(world):
    """marshmallow's Integer would read 1.5 as 1; points are integers, so fractions are refused."""
    r = world.call("POST", "/api/v1/communities", "admin",
                   json={"code": "frac", "name": "分数村", "hours_cap_minutes": 90.5})
    assert _problem(r, 422, "validation_error")["errors"] == {"hours_cap_minutes": ["Whole numbers only."]}
    r = world.call("POST", "/api/v1/communities", "admin",
                   json={"code": "whole", "name": "整数村", "hours_cap_minutes": 90.0})
    assert r.status_code == 201 and r.get_json()["hours_cap_minutes"] == 90


def test_ids_out_of_range_in_paths_and_queries(world, town):
    me = _as(world, "13900000001")
    _problem(world.client.get("/api/v1/households/99999999999999999999999", headers=me), 404, "not_found")
    _problem(world.call("GET", f"/api/v1/ledger/transactions/{2**64}", "admin"), 404, "not_found")
    r = world.call("GET", f"/api/v1/ledger/transactions?household_id={10**25}", "admin")
    assert r.status_code in (404, 422) and r.mimetype == "application/problem+json"
    r = world.call("GET", "/api/v1/ledger/transactions?limit=100000", "admin")
    _problem(r, 422, "validation_error")


# ------------------------------------------------------------------------------------------------
# Text: every script, NUL, length
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "张三丰", "👵🏻奶奶🧓", "مرحبا بالعالم", "שלום \u202eevil\u202c", "Zoë Ünïcødé", "ཀུན་དགའ་", "𠀀𪚥𰻞",
    "'; DROP TABLE households; --", "<script>alert(1)</script>", "a\tb\nc",
])
def test_any_script_is_stored_and_returned_exactly(world, town, name):
    r = world.call("POST", "/api/v1/households", "committee",
                   json={"community_code": "hongxing", "name": name, "address": name})
    assert r.status_code == 201, r.get_json()
    got = world.call("GET", f"/api/v1/households/{r.get_json()['id']}", "committee").get_json()
    assert got["name"] == name and got["address"] == name
    with world.app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM households")) == 4


@pytest.mark.parametrize("where", ["name", "address", "key", "nested"])
def test_nul_characters_are_refused_everywhere(world, town, where):
    body = {"community_code": "hongxing", "name": "张\u0000三", "address": "1号"}
    if where == "address":
        body = {"community_code": "hongxing", "name": "张三", "address": "\u0000"}
    elif where == "key":
        body = {"community_code": "hongxing", "name": "张三", "addr\u0000ess": "1号"}
    elif where == "nested":
        body = {"community_code": "hongxing", "name": "张三", "extra": [{"x": "a\u0000"}]}
    before = _count(world.app, Household)
    r = world.call("POST", "/api/v1/households", "committee", json=body)
    body = _problem(r, 422, "validation_error")
    assert any("NUL" in " ".join(m) for m in body["errors"].values())
    assert _count(world.app, Household) == before


def test_nul_in_query_string_login_and_forms(world):
    _problem(world.call("GET", "/api/v1/ledger/transactions?category=vol%00unteer", "admin"), 422,
             "validation_error")
    _problem(world.client.post("/api/v1/auth/token", json={"username": "admin\u0000", "password": "secret-pass"}),
             422, "validation_error")
    r = world.client.post("/login", data={"username": "admin\x00", "password": "x"},
                          headers={"Accept": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize("url, body, field", [
    ("/api/v1/communities", {"code": "c" * 65, "name": "n"}, "code"),
    ("/api/v1/communities", {"code": "longname", "name": "长" * 201}, "name"),
    ("/api/v1/households", {"community_code": "hongxing", "name": "名" * 201}, "name"),
    ("/api/v1/households", {"community_code": "hongxing", "name": "n", "address": "址" * 301}, "address"),
    ("/api/v1/households", {"community_code": "hongxing", "name": "n", "grid": "g" * 65}, "grid"),
    ("/api/v1/residents", {"household_id": 1, "name": "人" * 101}, "name"),
    ("/api/v1/residents", {"household_id": 1, "name": "n", "phone": "1" * 21}, "phone"),
    ("/api/v1/residents", {"household_id": 1, "name": "n", "password": "p" * 257}, "password"),
    ("/api/v1/users", {"username": "u" * 65, "password": "long-enough", "role": "admin"}, "username"),
    ("/api/v1/auth/token", {"username": "u" * 65, "password": "x"}, "username"),
    ("/api/v1/auth/token", {"username": "admin", "password": "x" * 100_000}, "password"),
])
def test_strings_longer_than_their_columns_are_422(world, town, url, body, field):
    r = world.call("POST", url, "admin", json=body)
    assert field in _problem(r, 422, "validation_error")["errors"]


def _openapi(world):
    spec = world.client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]

    def resolve(schema):
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    writes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch") and isinstance(operation, dict):
                content = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if content:
                    writes.append((method, path, resolve(content["schema"])))
    return writes, resolve


#: Request fields that only look a row up (never stored): a huge value finds nothing.
LOOKUPS = ("community_code", "parent_code", "rule_code")


def test_every_stored_request_string_has_a_length_limit(world):
    """Length limits belong in the schemas (and so in the OpenAPI document): without one, SQLite stores
    any length and PostgreSQL refuses it, so the two databases would answer differently."""
    writes, resolve = _openapi(world)
    unbounded = []

    def walk(schema, where):
        schema = resolve(schema)
        if schema.get("type") == "string" and not {"maxLength", "enum", "pattern", "format"} & set(schema):
            unbounded.append(where)
        if schema.get("type") == "array":
            walk(schema.get("items", {}), where + "[]")
        for name, sub in schema.get("properties", {}).items():
            if not sub.get("readOnly") and name not in LOOKUPS:
                walk(sub, f"{where}.{name}")

    for method, path, schema in writes:
        walk(schema, f"{method.upper()} {path}")
    assert len(writes) >= 10
    assert unbounded == []


def test_long_strings_never_cause_a_500_on_any_write(world, town):
    """Every write in the OpenAPI document with every string 5,000 characters long: refused, never a 500."""
    world.client.application.config["PROPAGATE_EXCEPTIONS"] = False
    writes, resolve = _openapi(world)

    def sample(schema, name=""):
        schema = resolve(schema)
        kind = schema.get("type")
        if name.endswith("community_code"):
            return "hongxing"  # get past the look-up, so the long strings reach the checks that matter
        if "enum" in schema:
            return schema["enum"][0]
        if kind == "integer":
            return 1
        if kind == "boolean":
            return False
        if kind == "array":
            return [sample(schema.get("items", {}))]
        if kind == "object" or "properties" in schema:
            return {k: sample(v, k) for k, v in schema.get("properties", {}).items() if not v.get("readOnly")}
        return "长" * 5000

    for number, (method, path, schema) in enumerate(writes):
        url = "/".join("1" if part.startswith("{") else part for part in path.split("/"))
        r = world.call(method.upper(), url, "admin", json=sample(schema), headers={"Idempotency-Key": f"k{number}"})
        assert r.status_code < 500, (method, url, r.status_code, r.get_data(as_text=True)[:300])
        assert r.mimetype == "application/problem+json", (method, url, r.status_code)
    # Look-up fields: a huge code finds nothing.
    for body in ({"community_code": "长" * 5000, "name": "n"}, {"community_code": "x" * 100_000, "name": "n"}):
        r = world.call("POST", "/api/v1/households", "admin", json=body)
        assert r.status_code in (404, 422) and r.mimetype == "application/problem+json"


# ------------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------------


def test_expired_token(world, clock):
    token = world.token("admin")
    clock.advance(hours=12, seconds=1)
    r = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    _problem(r, 401, "token_expired")


def test_revoked_token_stops_working_at_once(world):
    first = world.client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"})
    second = world.client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"})
    one = {"Authorization": f"Bearer {first.get_json()['access_token']}"}
    two = {"Authorization": f"Bearer {second.get_json()['access_token']}"}
    assert world.client.get("/api/v1/me", headers=one).status_code == 200
    r = world.client.post("/api/v1/auth/revoke", headers=one)
    assert r.status_code == 204 and r.get_data() == b""
    _problem(world.client.get("/api/v1/me", headers=one), 401, "unauthenticated")
    _problem(world.client.post("/api/v1/auth/revoke", headers=one), 401, "unauthenticated")
    # The same user's other token (another phone) is untouched.
    assert world.client.get("/api/v1/me", headers=two).status_code == 200
    _problem(world.client.post("/api/v1/auth/revoke"), 401, "unauthenticated")
    _problem(world.client.post("/api/v1/auth/revoke", headers={"Authorization": "Bearer forged"}), 401,
             "unauthenticated")
    with world.app.app_context():
        actions = [r[0] for r in db.session.execute(text("SELECT action FROM audit_log ORDER BY id"))]
    assert "auth.logout" in actions


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic YWRtaW46c2VjcmV0", "bearer  x y z",
                                    "Bearer " + "a" * 10_000, "Bearer \u00e9\u00e9"])
def test_garbage_authorization_headers_are_401(world, header):
    r = world.client.get("/api/v1/me", headers={"Authorization": header})
    _problem(r, 401, "unauthenticated")


# ------------------------------------------------------------------------------------------------
# Password guessing
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def limited_app(db_uri, tmp_path, clock):
    def make(**config):
        made = create_app({**base_config(tmp_path / f"limited{len(config)}", db_uri),
                           "RATELIMIT_ENABLED": True, **config})
        made.extensions["timebank.core.clock"] = clock
        with made.app_context():
            limiter.reset()
        return made

    return make


def test_password_guessing_is_rate_limited(world, limited_app):
    client = limited_app().test_client()
    for attempt in range(10):
        r = client.post("/api/v1/auth/token", json={"username": "admin", "password": f"guess-{attempt}"})
        _problem(r, 401, "invalid_credentials")
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "guess-10"})
    _problem(r, 429, "rate_limited")
    assert 0 < int(r.headers["Retry-After"]) <= 60
    # Even the right password waits: the limit is on the address, not on wrong answers.
    _problem(client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"}), 429,
             "rate_limited")
    # A forged X-Forwarded-For does not buy a fresh allowance when no proxy is configured ...
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"},
                    headers={"X-Forwarded-For": "203.0.113.9"})
    _problem(r, 429, "rate_limited")
    # ... while another real address has its own.
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"},
                    environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert r.status_code == 200


def test_behind_a_configured_proxy_the_client_address_counts(world, limited_app):
    client = limited_app(TIMEBANK_PROXY_FIX=1).test_client()
    for _attempt in range(10):
        r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong"},
                        headers={"X-Forwarded-For": "203.0.113.1"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong"},
                    headers={"X-Forwarded-For": "203.0.113.1"})
    _problem(r, 429, "rate_limited")
    # Another household's phone behind the same proxy is not locked out by its neighbour's typos.
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"},
                    headers={"X-Forwarded-For": "203.0.113.2"})
    assert r.status_code == 200


# ------------------------------------------------------------------------------------------------
# Earning and the supermarket: replays and other households' records
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def shop(world, town):
    world.user("clerk", "clerk")
    r = world.call("POST", "/api/v1/items", "clerk",
                   json={"community_code": "hongxing", "sku": "rice", "name": "大米", "price_points": 7})
    assert r.status_code == 201, r.get_json()
    item = r.get_json()["id"]
    r = world.call("POST", "/api/v1/stock-movements", "clerk",
                   json={"item_id": item, "quantity": 20, "reason": "donation", "donor": "爱心企业"})
    assert r.status_code == 201, r.get_json()
    return item


def test_a_pay_code_is_spent_once_whatever_the_replay(world, town, shop):
    from timebank.core import accounts

    code = world.client.get("/api/v1/me/pay-code", headers=_as(world, "13900000001")).get_json()["pay_code"]
    sale = {"pay_code": code, "lines": [{"item_id": shop, "quantity": 1}]}
    first = world.call("POST", "/api/v1/redemptions", "clerk", json=sale, headers={"Idempotency-Key": "a"})
    assert first.status_code == 201, first.get_json()
    # The same request under a new key is a second sale attempt with a spent code.
    again = world.call("POST", "/api/v1/redemptions", "clerk", json=sale, headers={"Idempotency-Key": "b"})
    assert again.status_code in (409, 410) and again.mimetype == "application/problem+json"
    without_key = world.call("POST", "/api/v1/redemptions", "clerk", json=sale)
    assert without_key.status_code in (409, 410)
    assert world.balance(accounts.household_points(town.mine)) == 50 - 7
    # A clerk of another community cannot take a sale with this household's code.
    fresh = world.client.get("/api/v1/me/pay-code", headers=_as(world, "13900000001")).get_json()["pay_code"]
    r = world.call("POST", "/api/v1/redemptions", "far_clerk",
                   json={"pay_code": fresh, "lines": [{"item_id": shop, "quantity": 1}]})
    assert 400 <= r.status_code < 500 and r.mimetype == "application/problem+json"
    assert world.balance(accounts.household_points(town.mine)) == 50 - 7
    # The receipt is the household's own business.
    sale_id = first.get_json()["id"]
    assert world.client.get(f"/api/v1/redemptions/{sale_id}", headers=_as(world, "13900000001")).status_code == 200
    r = world.client.get(f"/api/v1/redemptions/{sale_id}", headers=_as(world, "13900000002"))
    assert r.status_code in (403, 404) and "balance_after" not in r.get_data(as_text=True)
    r = world.call("GET", f"/api/v1/redemptions/{sale_id}", "far_clerk")
    assert r.status_code in (403, 404)


def test_a_check_in_code_counts_once_and_only_here(world, town, clock):
    from datetime import timedelta

    from timebank.core import accounts

    r = world.call("POST", "/api/v1/rules", "committee", json={
        "community_code": "hongxing", "code": "clean", "title": "清扫楼道", "category": "volunteer",
        "points": 10, "review": "auto", "publicity_days": 0})
    assert r.status_code == 201, r.get_json()
    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "周六清扫",
        "starts_at": clock.now().isoformat(), "ends_at": (clock.now() + timedelta(hours=2)).isoformat(), "slots": 5})
    assert r.status_code == 201, r.get_json()
    task = r.get_json()["id"]
    token = world.call("GET", f"/api/v1/tasks/{task}/checkin-code", "committee").get_json()["token"]
    me = _as(world, "13900000001")
    first = world.client.post("/api/v1/checkins", json={"token": token}, headers=me)
    assert first.status_code == 201, first.get_json()
    for _ in range(3):
        again = world.client.post("/api/v1/checkins", json={"token": token}, headers=me)
        assert again.status_code == 200 and again.get_json()["claim"]["id"] == first.get_json()["claim"]["id"]
    assert world.balance(accounts.household_points(town.mine)) == 50 + 10
    # A resident of another community cannot use a photo of this community's code.
    stranger = world.client.post("/api/v1/checkins", json={"token": token}, headers=_as(world, "13900000003"))
    assert 400 <= stranger.status_code < 500 and stranger.mimetype == "application/problem+json"
    assert world.balance(accounts.household_points(town.far)) == 0
    # A tampered code is refused.
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = world.client.post("/api/v1/checkins", json={"token": tampered}, headers=_as(world, "13900000002"))
    _problem(r, 422, "token_invalid")
    # And the claim itself is not another household's to read.
    claim = first.get_json()["claim"]["id"]
    r = world.client.get(f"/api/v1/claims/{claim}", headers=_as(world, "13900000002"))
    assert r.status_code in (403, 404)
