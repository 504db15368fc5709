"""Domain errors with stable codes. The API and the pages turn them into problem+json or a message.

Every refusal a user can meet has a subclass here (or is raised with an explicit ``code``), so a
reader finds each rule by searching its code.
"""

from __future__ import annotations

from collections.abc import Callable

#: Refusals of the insider rules (acting for one's own household, or alone where two people are
#: needed). Each one is handed, as it is made, to the functions of :data:`ON_INSIDER_REFUSAL`:
#: :mod:`timebank.core.refusals` records them, since the refused request's transaction is rolled back.
INSIDER_CODES = frozenset({"self_approval", "self_dealing", "same_signer", "person_required"})
ON_INSIDER_REFUSAL: list[Callable[[DomainError], None]] = []


class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, code: str | None = None, status: int | None = None,
                 errors: dict | None = None, headers: dict | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors
        self.headers = headers or {}
        if self.code in INSIDER_CODES:
            for hook in ON_INSIDER_REFUSAL:
                try:
                    hook(self)
                except Exception:  # noqa: BLE001, S110 - noting it must never change the refusal
                    pass


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unauthenticated(DomainError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class InvalidCredentials(DomainError):
    status, code, title = 401, "invalid_credentials", "Wrong username or password"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Gone(DomainError):
    status, code, title = 410, "gone", "Gone"


class ValidationFailed(DomainError):
    status, code, title = 422, "validation_error", "Validation error"


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused with another request"


class Unavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service temporarily unavailable"


TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 410: "Gone", 413: "Payload too large",
    415: "Unsupported media type", 422: "Unprocessable entity", 429: "Too many requests",
    500: "Internal server error", 503: "Service unavailable",
}

GENERIC_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
    500: "internal_error", 503: "service_unavailable",
}
