"""What the OpenAPI document says about every operation without each view repeating it.

flask-smorest documents what the decorators say (arguments, responses); the rest holds for every
operation alike and is added here, as the document is built:

* every error response is ``application/problem+json`` with the one :data:`PROBLEM` schema (what
  :func:`timebank.core.problems.problem` sends);
* 401 on every operation that needs a login, that is every operation whose ``security`` is not
  :data:`PUBLIC`;
* 403 on those too, unless the view is marked :func:`for_any_login` (no role or community applies);
  403 ``password_change_required`` on every one of them but ``/api/v1/auth/*`` and
  ``/api/v1/me/password`` (a login opened with a one-time password chooses a new one first);
* 403 ``csrf_failed`` on every write: a browser's page session cookie is taken only with the page's
  CSRF token (:mod:`timebank.core.browser`);
* 422 ``validation_error`` where the operation takes a body or query arguments, 400 where it takes a
  JSON body;
* ``Idempotency-Key`` and 422 ``idempotency_key_reused`` on the views wrapped by
  :func:`timebank.core.http.idempotent` (it marks them with :data:`IDEMPOTENT_MARK`);
* 429 (documented by the view where a rate limit applies) and 503 ``service_unavailable`` on every
  operation, with ``Retry-After``.
"""

from __future__ import annotations

from apispec import BasePlugin

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: ``security`` of an operation that needs no login.
PUBLIC: list[dict[str, list[str]]] = [{}]

#: The attribute :func:`timebank.core.http.idempotent` sets on the views it wraps.
IDEMPOTENT_MARK = "idempotent_by_key"
#: The attribute :func:`for_any_login` sets.
ANY_LOGIN_MARK = "for_any_login"

WRITE_METHODS = ("post", "put", "patch", "delete")

FIELD_ERRORS = {
    "type": "object",
    "description": "Messages by field (or by header, such as `Idempotency-Key`); a nested field has its "
                   "own object of messages, keyed by field name or by list index. `_schema` holds "
                   "messages about the whole body.",
    "additionalProperties": {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}},
            {"$ref": "#/components/schemas/FieldErrors"},
        ],
    },
}

PROBLEM = {
    "type": "object",
    "description": "An error (RFC 9457 problem details). `error` is the stable code to act on; more "
                   "members may be added.",
    "required": ["type", "status", "title", "detail", "error"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status"},
        "title": {"type": "string", "description": "the kind of error, in words"},
        "detail": {"type": "string", "description": "this occurrence, in words"},
        "error": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "example": "not_found",
                  "description": "a stable snake_case code"},
        "errors": {"oneOf": [{"$ref": "#/components/schemas/FieldErrors"},
                             {"$ref": "#/components/schemas/RowErrors"}]},
    },
    "additionalProperties": True,
}

#: The ``errors`` of a refused file (a roster import's 422 ``import_invalid``): one per row and column.
ROW_ERRORS = {
    "type": "array",
    "description": "What is wrong with a file, by row (as the spreadsheet numbers it: the header is row "
                   "1; null for the file as a whole) and column (its header; null for the whole row).",
    "items": {
        "type": "object",
        "required": ["row", "column", "message"],
        "properties": {
            "row": {"type": "integer", "minimum": 1, "nullable": True},
            "column": {"type": "string", "nullable": True},
            "message": {"type": "string"},
        },
    },
}

RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

IDEMPOTENCY_KEY = {
    "description": "Makes the request safe to retry (1 to 255 characters, scoped to the caller). A retry "
                   "with the same key and the same body gets the first response again (its status and "
                   "body, refusals included, with `Idempotent-Replayed: true`) and changes nothing; the "
                   "same key with another body is refused with 422 `idempotency_key_reused`.",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}

IDEMPOTENT_REPLAYED = {
    "description": "`true` when this is the stored response to an earlier request with the same "
                   "Idempotency-Key.",
    "schema": {"type": "string", "enum": ["true"]},
}

UNAUTHENTICATED = ("unauthenticated: no bearer token, or one that is not valid (revoked, or the account "
                   "is disabled); token_expired")
FORBIDDEN = "forbidden: the caller's role or community does not allow this"
READ_ONLY_ROLE = "read_only_role: supervisors change nothing"
PASSWORD_CHANGE_REQUIRED = ("password_change_required: the login was opened with a one-time password and must "
                            "choose a new one first (POST /api/v1/me/password)")
#: The operations a login that must change its password may still call.
PASSWORD_CHANGE_PATHS = ("/api/v1/auth/", "/api/v1/me/password")
CSRF_FAILED = ("csrf_failed: the request was authenticated by a page session cookie (no bearer token) "
               "without the page's CSRF token in the X-CSRFToken header")
VALIDATION_ERROR = "validation_error: invalid fields, listed in `errors`"
IDEMPOTENCY_KEY_REUSED = ("idempotency_key_reused: the Idempotency-Key was used with another request; "
                          "validation_error also when the key is not 1 to 255 characters")
BAD_JSON = "bad_request: the body is not valid JSON"
SERVICE_UNAVAILABLE = ("service_unavailable: the database is busy, read-only, full or unreachable just now; "
                       "nothing was changed. Try again after Retry-After seconds (a write with the same "
                       "Idempotency-Key). When the commit itself failed, the detail says so: the write may "
                       "or may not have been saved, and the retry with the same Idempotency-Key tells which.")


def for_any_login(view):
    """Document a view as open to every logged-in user: no role or community is required, so it never
    answers 403 (what the caller may not see is 404). Without this mark, an operation that needs a
    login is documented with 403."""
    setattr(view, ANY_LOGIN_MARK, True)
    return view


def problem_response(description: str, *, retry_after: bool = False) -> dict:
    response = {"description": description,
                "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if retry_after:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return response


def register_components(spec) -> None:
    spec.components.schema("FieldErrors", FIELD_ERRORS)
    spec.components.schema("RowErrors", ROW_ERRORS)
    spec.components.schema("Problem", PROBLEM)
    spec.components.header("Retry-After", RETRY_AFTER)
    spec.components.header("Idempotent-Replayed", IDEMPOTENT_REPLAYED)
    spec.components.parameter("Idempotency-Key", "header", IDEMPOTENCY_KEY)


def is_public(operation: dict) -> bool:
    security = operation.get("security")
    return security is not None and not any(security)


def _view_function(app, rule, method: str):
    """The function that answers ``method`` on ``rule``: the MethodView's method, or the view itself."""
    if app is None or rule is None:
        return None
    view = app.view_functions.get(rule.endpoint)
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, method, None) if view_class is not None else view


def _with_code(description: str | None, code: str, text: str) -> str:
    """``description``, with ``text`` added when it does not name ``code`` yet."""
    if not description:
        return text
    return description if code in description else f"{description}; {text}"


class OperationDocs(BasePlugin):
    """An apispec plugin: completes each operation as flask-smorest registers it."""

    def __init__(self, app=None):
        self.app = app

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            if method.startswith("x-") or not isinstance(operation, dict):
                continue
            describe(operation, method, _view_function(self.app, kwargs.get("rule"), method), path)


def describe(operation: dict, method: str, function=None, path: str | None = None) -> None:
    """Add the errors, headers and parameters every operation of its kind has."""
    responses = {str(code): response for code, response in operation.get("responses", {}).items()}
    idempotent = bool(getattr(function, IDEMPOTENT_MARK, False))
    any_login = bool(getattr(function, ANY_LOGIN_MARK, False))
    has_body = "requestBody" in operation
    takes_input = has_body or any(p.get("in") == "query" for p in operation.get("parameters", [])
                                  if isinstance(p, dict))

    def error(code: str, text: str, word: str | None = None, *, retry_after: bool = False):
        """Document ``code``, keeping what the view said about it (``text`` is added unless that
        already names ``word``, by default the code that starts ``text``)."""
        existing = responses.get(code)
        response = dict(existing) if isinstance(existing, dict) else {}  # not flask-smorest's bare reference
        response["description"] = _with_code(response.get("description"), word or text.split(":")[0], text)
        if retry_after:
            response["headers"] = {**response.get("headers", {}), **problem_response("", retry_after=True)["headers"]}
        responses[code] = response

    if has_body:
        error("400", BAD_JSON)
    if not is_public(operation):
        error("401", UNAUTHENTICATED, "unauthenticated")
        if not (path or "").startswith(PASSWORD_CHANGE_PATHS):
            error("403", PASSWORD_CHANGE_REQUIRED)
        if not any_login:
            error("403", FORBIDDEN, "forbidden")
            if method in WRITE_METHODS:
                error("403", READ_ONLY_ROLE)
    if method in WRITE_METHODS:
        error("403", CSRF_FAILED)
    if takes_input or "422" in responses:
        error("422", VALIDATION_ERROR)
    if idempotent:
        error("422", IDEMPOTENCY_KEY_REUSED)
        operation.setdefault("parameters", []).append("Idempotency-Key")  # a reference, resolved by apispec
        for code, response in responses.items():
            if code.startswith("2") and isinstance(response, dict):
                response.setdefault("headers", {})["Idempotent-Replayed"] = {
                    "$ref": "#/components/headers/Idempotent-Replayed"}
    if "429" in responses:
        error("429", "rate_limited: too many requests; try again after Retry-After seconds", retry_after=True)
    error("503", SERVICE_UNAVAILABLE, retry_after=True)
    # Every error, those above and those the view declared (with a description only): the Problem.
    for code, response in responses.items():
        if code[0] in "45" and isinstance(response, dict):
            response["content"] = problem_response("")["content"]
    operation["responses"] = dict(sorted(responses.items(), key=lambda item: (item[0] == "default", item[0])))
