"""The OpenAPI document tells the truth: it is valid OpenAPI 3; every error is the one Problem schema,
which the app's real error bodies match (and flask-smorest's default error schema would not); every
idempotent write lists Idempotency-Key; 401, 403, 429 and 503 appear where the app can answer them.

The document is checked against the app, not against lists written here: the operations that need a
login are called without a token, the idempotent views are found by their decorator, the rate-limited
ones through Flask-Limiter, and every operation is called while the database is locked.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema_rs
import pytest
from sqlalchemy import create_engine, text

from conftest import IS_POSTGRES, TEST_DB_URL, base_config
from timebank import create_app
from timebank.core.extensions import db

PROBLEM_TYPE = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch")
PASSWORD = "secret-pass"


# ------------------------------------------------------------------------------------------------
# Reading the document
# ------------------------------------------------------------------------------------------------


def _document(client) -> dict:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _resolve(spec, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = spec
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def _is_public(operation) -> bool:
    security = operation.get("security")
    return security is not None and not any(security)


def _parameters(spec, path, operation):
    return [_resolve(spec, p) for p in spec["paths"][path].get("parameters", []) + operation.get("parameters", [])]


def _response(spec, operation, status):
    """The documented response for ``status``: its own, or ``default``."""
    responses = operation["responses"]
    return _resolve(spec, responses.get(str(status), responses.get("default")))


def _template(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/claims/<int:claim_id>`` -> ``/claims/{claim_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _problem_validator(spec):
    root = {"allOf": [{"$ref": "#/components/schemas/Problem"}], "components": spec["components"]}
    return jsonschema_rs.Draft4Validator(root)


def _old_error_schema() -> dict:
    """The error schema the document had before: flask-smorest's default, as it renders it."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin
    from flask_smorest import Api

    spec = APISpec("before", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Error", schema=Api.ERROR_SCHEMA)
    return spec.to_dict()["components"]["schemas"]["Error"]


# ------------------------------------------------------------------------------------------------
# Requests made from the document
# ------------------------------------------------------------------------------------------------

#: Strings to try, in order, for a field or parameter: the first one its pattern and length accept.
CANDIDATES = ("hongxing", "2026-03", "13800000001", "xxxxxxxx")


def _sample(spec, schema):
    """A small value of ``schema``: required properties only, the first enum value, 1 for numbers."""
    schema = _resolve(spec, schema)
    if "allOf" in schema:
        return _sample(spec, schema["allOf"][0])
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        return [_sample(spec, schema.get("items", {}))] * max(1, schema.get("minItems", 1))
    if kind == "object" or "properties" in schema:
        return {name: _sample(spec, sub) for name, sub in schema.get("properties", {}).items()
                if name in schema.get("required", ())}
    if schema.get("format") == "date-time":
        return "2026-03-02T10:00:00+08:00"
    if schema.get("format") == "date":
        return "2026-03-02"
    return next(c for c in CANDIDATES
                if schema.get("minLength", 0) <= len(c) <= schema.get("maxLength", 10**6)
                and re.search(schema.get("pattern", ""), c))


def _request(spec, method, path, operation) -> dict:
    """Arguments for ``client.open``: a request that gets past the document's own checks where it can."""
    url, query = path, {}
    for parameter in _parameters(spec, path, operation):
        if parameter["in"] == "path":
            url = url.replace(f"{{{parameter['name']}}}", str(_sample(spec, parameter["schema"])))
        elif parameter["in"] == "query" and parameter.get("required"):
            query[parameter["name"]] = _sample(spec, parameter["schema"])
    request = {"path": url, "method": method.upper(), "query_string": query}
    content = operation.get("requestBody", {}).get("content", {})
    body = content.get("application/json")
    if body is not None:
        request["json"] = _sample(spec, body["schema"])
    elif "text/csv" in content:  # a file upload (the roster import): an empty file
        request.update(data=b"", content_type="text/csv")
    return request


def _fresh_bearer(client, username, password=PASSWORD):
    r = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['access_token']}"}


# ------------------------------------------------------------------------------------------------
# (a) A valid OpenAPI 3.0 document
# ------------------------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3(client):
    from schemathesis.specs.openapi.definitions import OPENAPI_30  # the official OpenAPI 3.0 JSON Schema

    official = jsonschema_rs.Draft4Validator(OPENAPI_30)
    spec = _document(client)
    assert spec["openapi"].startswith("3.0.")
    assert [str(e) for e in official.iter_errors(spec)] == []

    # Every reference points at something.
    def walk(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                assert _resolve(spec, node) is not None, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(spec, "#")

    # The validator is not a formality: a response without a description, or a header parameter with
    # neither schema nor content, is refused.
    broken = copy.deepcopy(spec)
    del broken["paths"]["/api/v1/me"]["get"]["responses"]["200"]["description"]
    assert list(official.iter_errors(broken))
    broken = copy.deepcopy(spec)
    broken["components"]["parameters"]["Idempotency-Key"].pop("schema")
    assert list(official.iter_errors(broken))


# ------------------------------------------------------------------------------------------------
# (b) Errors: one Problem schema, which real error bodies match
# ------------------------------------------------------------------------------------------------


def test_every_error_response_is_problem_json(client):
    spec = _document(client)
    problem = spec["components"]["schemas"]["Problem"]
    assert problem.get("additionalProperties", True) is not False
    assert set(problem["required"]) == {"type", "status", "title", "detail", "error"}
    errors = 0
    for method, path, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status == "default" or status[0] in "45":
                errors += 1
                response = _resolve(spec, response)
                assert response["content"] == {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}, \
                    (method, path, status)
                if status in ("429", "503"):
                    assert _resolve(spec, response["headers"]["Retry-After"])["schema"]["type"] == "integer"
    assert errors > 0


def _member_code(app, household_id):
    from timebank.people.models import Household

    with app.app_context():
        return db.session.get(Household, household_id).member_code


def _held_database(app, tmp_path):
    """An app over the same database that gives up at once on a lock, and a context manager that holds
    the database's locks meanwhile (the way tests/test_ops_faults.py makes the database unavailable)."""
    from contextlib import contextmanager

    folder = tmp_path / "impatient"
    folder.mkdir()
    config = base_config(folder, app.config["SQLALCHEMY_DATABASE_URI"])
    if IS_POSTGRES:
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"options": "-c lock_timeout=100"}}
    else:
        config["TIMEBANK_SQLITE_BUSY_TIMEOUT_MS"] = 50
    impatient = create_app(config)
    impatient.extensions["timebank.core.clock"] = app.extensions["timebank.core.clock"]

    @contextmanager
    def held():
        if IS_POSTGRES:
            holder = create_engine(TEST_DB_URL)
            try:
                with holder.connect() as conn:
                    tx = conn.begin()
                    tables = [r[0] for r in conn.execute(text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x7469_6D65})
                    conn.execute(text("LOCK TABLE " + ", ".join(f'"{t}"' for t in tables)
                                      + " IN ACCESS EXCLUSIVE MODE"))
                    yield
                    tx.rollback()
            finally:
                holder.dispose()
        else:
            import sqlite3

            holder = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"),
                                     isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                holder.execute("ROLLBACK")
                holder.close()

    return impatient, held


def _dispose(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def error_bodies(world, app, tmp_path):
    """Real error answers of the app: (method, path template, response), one of each kind."""
    w = world
    poor = w.household(name="张家")
    w.user("clerk", "clerk")
    admin = w.headers("admin")
    answers = []

    def call(method, template, url, **kw):
        r = w.client.open(url, method=method, **kw)
        answers.append((method.lower(), template, r))
        return r

    r = call("GET", "/api/v1/me", "/api/v1/me")
    assert r.status_code == 401 and r.get_json()["error"] == "unauthenticated"
    r = call("GET", "/api/v1/households/{household_id}", "/api/v1/households/999999", headers=admin)
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = call("POST", "/api/v1/households", "/api/v1/households", headers=admin, data="{not json",
             content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_request"

    item = w.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "rice", "name": "大米", "price_points": 100}).get_json()["id"]
    assert w.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": item, "quantity": 5, "reason": "donation", "donor": "爱心企业"}).status_code == 201
    clerk = w.headers("clerk")
    # A nested field: the message is under the line's index.
    r = call("POST", "/api/v1/redemptions", "/api/v1/redemptions", headers=clerk,
             json={"member_code": _member_code(app, poor), "lines": [{"item_id": item, "quantity": "many"}]})
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"
    assert isinstance(r.get_json()["errors"]["lines"], dict)
    sale = {"member_code": _member_code(app, poor), "lines": [{"item_id": item, "quantity": 1}]}
    r = call("POST", "/api/v1/redemptions", "/api/v1/redemptions", headers={**clerk, "Idempotency-Key": "sale-1"},
             json=sale)
    assert r.status_code == 409 and r.get_json()["error"] == "insufficient_points"
    other = {**sale, "lines": [{"item_id": item, "quantity": 2}]}
    r = call("POST", "/api/v1/redemptions", "/api/v1/redemptions", headers={**clerk, "Idempotency-Key": "sale-1"},
             json=other)
    assert r.status_code == 422 and r.get_json()["error"] == "idempotency_key_reused"
    r = call("POST", "/api/v1/redemptions", "/api/v1/redemptions", headers={**clerk, "Idempotency-Key": "x" * 256},
             json=sale)
    assert r.status_code == 422 and "Idempotency-Key" in r.get_json()["errors"]

    impatient, held = _held_database(app, tmp_path)
    with held():
        r = impatient.test_client().post("/api/v1/households", headers=admin,
                                         json={"community_code": "hongxing", "name": "王家", "address": "2号"})
    answers.append(("post", "/api/v1/households", r))
    assert r.status_code == 503 and r.get_json()["error"] == "service_unavailable"
    _dispose(impatient)
    return answers


def test_real_error_bodies_match_the_documented_problem(client, error_bodies):
    spec = _document(client)
    validator = _problem_validator(spec)
    for method, path, r in error_bodies:
        documented = _response(spec, spec["paths"][path][method], r.status_code)
        assert r.mimetype == PROBLEM_TYPE and PROBLEM_TYPE in documented["content"], (method, path, r.status_code)
        body = r.get_json()
        assert validator.is_valid(body), (method, path, [str(e) for e in validator.iter_errors(body)])
        if r.status_code in (429, 503):
            assert "Retry-After" in documented["headers"] and int(r.headers["Retry-After"]) > 0
    assert {r.status_code for _, _, r in error_bodies} >= {400, 401, 404, 409, 422, 503}


def test_the_previous_error_schema_rejects_every_real_error_body(client, error_bodies):
    """Proof that the check above can fail: the schema the document used to give (flask-smorest's
    ``Error``, ``additionalProperties: false`` and ``status`` a string) fits none of the real bodies."""
    old = _old_error_schema()
    assert old["additionalProperties"] is False
    before = jsonschema_rs.Draft4Validator(old)
    for method, path, r in error_bodies:
        assert not before.is_valid(r.get_json()), (method, path, r.get_json())


def test_the_problem_schema_refuses_malformed_errors(client, error_bodies):
    validator = _problem_validator(_document(client))
    body = next(r.get_json() for _, _, r in error_bodies if "errors" in r.get_json())
    assert validator.is_valid(body)
    for broken in ({**body, "status": str(body["status"])}, {k: v for k, v in body.items() if k != "error"},
                   {**body, "error": "Not A Code"}, {**body, "errors": {"field": "one message, not a list"}},
                   {**body, "errors": {"lines": {"0": {"quantity": [1]}}}}):
        assert not validator.is_valid(broken), broken
    assert validator.is_valid({**body, "extra": "more members may be added"})


# ------------------------------------------------------------------------------------------------
# (c) Idempotency-Key on every idempotent write
# ------------------------------------------------------------------------------------------------


def _idempotent_operations(app) -> set[tuple[str, str]]:
    """(method, path) of every view wrapped by ``idempotent``, found by its wrapper's code."""
    from timebank.core.http import idempotent

    code = idempotent(lambda: None).__code__
    found = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            function = getattr(view_class, method.lower(), None) if view_class else view
            while function is not None:
                if getattr(function, "__code__", None) is code:
                    found.add((method.lower(), _template(rule.rule)))
                    break
                function = getattr(function, "__wrapped__", None)
    return found


def test_every_idempotent_write_documents_idempotency_key(app, client):
    spec = _document(client)
    idempotent = _idempotent_operations(app)
    package = Path(__file__).resolve().parent.parent / "timebank"
    decorated = sum(len(re.findall(r"^\s*@idempotent\b", f.read_text(encoding="utf-8"), re.MULTILINE))
                    for f in package.rglob("*.py"))
    assert len(idempotent) == decorated > 0

    for method, path, operation in _operations(spec):
        keys = [p for p in _parameters(spec, path, operation) if p["name"] == "Idempotency-Key"]
        if (method, path) not in idempotent:
            assert keys == [], (method, path, "lists Idempotency-Key but is not idempotent")
            continue
        assert len(keys) == 1, (method, path)
        key = keys[0]
        assert key["in"] == "header" and not key.get("required", False)
        assert (key["schema"]["type"], key["schema"]["minLength"], key["schema"]["maxLength"]) == ("string", 1, 255)
        assert "idempotency_key_reused" in _resolve(spec, operation["responses"]["422"])["description"], (method, path)
    assert idempotent <= {(m, p) for m, p, _ in _operations(spec)}


# ------------------------------------------------------------------------------------------------
# (d) 401, 403, 422, 429 and 503 where the app answers them
# ------------------------------------------------------------------------------------------------


def test_every_operation_but_the_public_ones_documents_401_and_every_one_503(client):
    spec = _document(client)
    public = 0
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        assert "503" in responses, (method, path)
        assert "service_unavailable" in _resolve(spec, responses["503"])["description"]
        if _is_public(operation):
            public += 1
        else:
            assert "401" in responses, (method, path)
    assert 0 < public < len(list(_operations(spec)))


def test_every_operation_with_a_body_or_query_arguments_documents_422(client):
    spec = _document(client)
    for method, path, operation in _operations(spec):
        if "requestBody" in operation or any(p["in"] == "query" for p in _parameters(spec, path, operation)):
            assert "validation_error" in _resolve(spec, operation["responses"]["422"])["description"], (method, path)


@pytest.fixture
def people(world):
    hh = world.household(name="张家")
    world.resident(hh, "张三", phone="13800000001", password=PASSWORD)
    world.user("supervisor", "supervisor")
    world.community("lanhua", "兰花社区")
    world.user("far_clerk", "clerk", community_code="lanhua")
    return world


LOGIN_DEMANDS = ("unauthenticated", "token_expired")


def _error(response):
    return response.get_json().get("error") if response.mimetype == PROBLEM_TYPE else None


def test_public_operations_need_no_token_and_the_others_answer_401_without_one(people, client):
    """Without a token, an operation documented public answers as it does for an admin; any other
    answers 401, unless the request is refused for its input before anyone is asked who is calling
    (then an admin gets the same refusal)."""
    spec = _document(client)
    admin = people.headers("admin")
    refused_first = []
    for method, path, operation in _operations(spec):
        request = _request(spec, method, path, operation)
        anonymous = client.open(**request)
        if _is_public(operation):
            for answer in (anonymous, client.open(**request, headers={"Authorization": "Bearer nope"})):
                assert _error(answer) not in LOGIN_DEMANDS, (method, path)
                assert answer.status_code == client.open(**request, headers=admin).status_code, (method, path)
            continue
        if anonymous.status_code == 401:
            assert _error(anonymous) == "unauthenticated", (method, path)
            assert "401" in operation["responses"], (method, path)
        else:
            assert anonymous.status_code == 422, (method, path, anonymous.status_code)
            assert client.open(**request, headers=admin).status_code == anonymous.status_code, (method, path)
            refused_first.append((method, path))
    assert len(refused_first) < len(list(_operations(spec))) // 10, refused_first


def test_every_403_answer_is_documented(people, client):
    """A resident, a supervisor and a clerk of another community try every operation: where any of them
    gets 403, the document says so."""
    spec = _document(client)
    forbidden = 0
    for method, path, operation in _operations(spec):
        request = _request(spec, method, path, operation)
        for name in ("13800000001", "supervisor", "far_clerk"):
            r = client.open(**request, headers=_fresh_bearer(client, name))  # revoking ends only this one
            if r.status_code == 403:
                forbidden += 1
                assert "403" in operation["responses"], (method, path, name, r.get_json())
    assert forbidden > 0


def test_every_rate_limited_operation_documents_429(app, client):
    from flask_limiter.util import get_qualified_name

    from timebank.core.extensions import limiter

    spec = _document(client)
    manager = limiter.limit_manager
    limited = set()
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            path = _template(rule.rule)
            if path not in spec["paths"]:
                continue
            view = app.view_functions[rule.endpoint]
            limits = (manager.decorated_limits(get_qualified_name(view))
                      + manager.blueprint_limits(app, rule.endpoint.rpartition(".")[0])
                      + manager.default_limits + manager.application_limits)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                if any(not limit.methods or method.lower() in limit.methods for limit in limits):
                    limited.add((method.lower(), path))
    assert limited
    for method, path in limited:
        response = _resolve(spec, spec["paths"][path][method]["responses"].get("429"))
        assert response and "Retry-After" in response["headers"], (method, path)


def test_every_operation_answers_503_while_the_database_is_locked(people, app, client, tmp_path):
    """Every operation touches the database, so every one can answer 503 (as documented): with the
    database locked, each answers 503, unless its input is refused first (then it is refused the same
    way once the lock is gone). On SQLite the lock is the write lock, which readers never wait for: a
    GET answers as it would without the lock."""
    spec = _document(client)
    admin = people.headers("admin")
    impatient, held = _held_database(app, tmp_path)
    locked = impatient.test_client()
    operations = list(_operations(spec))
    answers = []
    with held():
        for method, path, operation in operations:
            request = _request(spec, method, path, operation)
            r = locked.open(**request, headers=admin)
            r.get_data()  # a streamed export (a read, answered while the lock is held) ends here
            r.close()
            answers.append((method, path, request, r.status_code))
            if r.status_code == 503:
                assert r.get_json()["error"] == "service_unavailable" and int(r.headers["Retry-After"]) > 0
                assert "Retry-After" in _resolve(spec, operation["responses"]["503"])["headers"], (method, path)
    _dispose(impatient)
    reads = [] if IS_POSTGRES else [a for a in answers if a[0].upper() in ("GET", "HEAD")]
    writes = [a for a in answers if a not in reads]
    for method, path, request, status in reads:
        assert status < 500 and status == client.open(**request, headers=admin).status_code, (method, path, status)
    for method, path, request, status in writes:
        if status != 503:
            assert status == 422 and client.open(**request, headers=admin).status_code == 422, (method, path, status)
    assert sum(status == 503 for *_, status in writes) > len(writes) * 0.9
