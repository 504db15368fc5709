"""The OpenAPI document against the app: schemathesis generates requests for every operation.

Checks: no 5xx (``not_a_server_error``), every response matches the schema of its status in the
document (``response_schema_conformance``) and every status is documented for its operation
(``status_code_conformance``). Requests are made with an admin's bearer token on a database that
holds a little of everything (a household with points, a resident, goods, a rule, a claim, a task),
so that generated ids sometimes name something real. Examples are derandomized, so every run
(SQLite and PostgreSQL) tries the same requests.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from timebank.core.clock import now

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
EXAMPLES = 25


def _ok(response, status=201):
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _some_data(world):
    w = world
    hh = w.household(name="张家")
    resident = w.resident(hh, "张三", phone="13800000001", password="secret-pass")
    w.user("boss", "committee")
    w.user("clerk", "clerk")
    w.grant(hh, 500)
    _ok(w.call("POST", "/api/v1/rules", "boss", json={
        "community_code": "hongxing", "code": "clean", "title": "清扫楼道", "category": "volunteer",
        "points": 10, "minutes": 30, "review": "review", "publicity_days": 1}))
    _ok(w.call("POST", "/api/v1/claims", "13800000001", json={
        "community_code": "hongxing", "rule_code": "clean", "resident_id": resident}))
    start = now()
    _ok(w.call("POST", "/api/v1/tasks", "boss", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "大扫除", "slots": 5,
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()}))
    item = _ok(w.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 3}))["id"]
    _ok(w.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 10, "reason": "donation", "donor": "爱心企业"}))
    _ok(w.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": _member_code(w, hh), "lines": [{"item_id": item, "quantity": 1}]}))


def _member_code(world, household_id):
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with world.app.app_context():
        return db.session.get(Household, household_id).member_code


def _fresh_token_headers(world):
    r = world.client.post("/api/v1/auth/token", json={"username": "admin", "password": "secret-pass"})
    return {"Authorization": f"Bearer {r.get_json()['access_token']}"}


def _operation_test(world, operation, headers):
    # Valid requests, and requests that break the schema (those must be refused with a documented 4xx).
    strategy = (operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
                | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        # Revoking would end the admin's token for every later operation: revoke a fresh one.
        own = _fresh_token_headers(world) if operation.path.endswith("/auth/revoke") else headers
        case.call_and_validate(headers=own, checks=CHECKS)

    return run


@pytest.mark.slow
def test_every_operation_answers_within_its_documented_schema(world):
    _some_data(world)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    headers = world.headers("admin")
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _operation_test(world, operation, headers)()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations > 40
    assert not failures, "\n\n".join(failures)


def test_months_outside_the_calendar_give_422_not_500(world):
    """Found by schemathesis: year 0, 1 and 9999 crashed the month arithmetic (UTC conversion, month+1)."""
    world.user("boss", "committee")
    for month in ("0000-01", "0001-01", "9999-12"):
        for url in (f"/api/v1/reports/monthly?community_code=hongxing&month={month}",
                    f"/api/v1/reports/stock?community_code=hongxing&month={month}",
                    f"/api/v1/month-closes/hongxing/{month}"):
            r = world.call("GET", url, "boss")
            assert r.status_code in (404, 422), (url, r.status_code, r.get_data(as_text=True)[:300])
            if r.status_code == 422:
                assert r.get_json()["error"] == "validation_error"
    r = world.call("POST", "/api/v1/month-closes", "boss", json={"community_code": "hongxing", "month": "0001-01"})
    assert r.status_code == 422, r.get_json()
