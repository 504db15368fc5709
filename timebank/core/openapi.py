"""What the OpenAPI document says about every operation without each view repeating it.

flask-smorest documents what the decorators say (arguments, responses); what holds for every operation
alike is added here, as the document is built: every error response is ``application/problem+json``
with the one :data:`PROBLEM` schema (what :func:`timebank.core.problems.problem` sends).
"""

from __future__ import annotations

from apispec import BasePlugin

PROBLEM_MEDIA_TYPE = "application/problem+json"

FIELD_ERRORS = {
    "type": "object",
    "description": "Messages by field; a nested field has its own object of messages, keyed by field "
                   "name or by list index. `_schema` holds messages about the whole body.",
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
        "errors": {"$ref": "#/components/schemas/FieldErrors"},
    },
    "additionalProperties": True,
}


def problem_response(description: str) -> dict:
    return {"description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def register_components(spec) -> None:
    spec.components.schema("FieldErrors", FIELD_ERRORS)
    spec.components.schema("Problem", PROBLEM)


class OperationDocs(BasePlugin):
    """An apispec plugin: completes each operation as flask-smorest registers it."""

    def __init__(self, app=None):
        self.app = app

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            if method.startswith("x-") or not isinstance(operation, dict):
                continue
            describe(operation)


def describe(operation: dict) -> None:
    """Every error the view declared (with a description only): the Problem, as problem+json."""
    responses = {str(code): response for code, response in operation.get("responses", {}).items()}
    for code, response in responses.items():
        if code[0] in "45" and isinstance(response, dict):
            response["content"] = problem_response("")["content"]
    operation["responses"] = responses
