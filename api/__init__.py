"""The JSON API under ``/api/v1`` (flask-smorest: marshmallow schemas and the OpenAPI document)."""

from __future__ import annotations

from flask_smorest import Api

from timebank.core.extensions import csrf
from timebank.core.problems import flatten_messages, problem


class ProblemApi(Api):
    """flask-smorest, with its errors in the project's problem+json form."""

    def handle_http_exception(self, error):
        from flask import request

        from timebank.core.extensions import db

        db.session.rollback()
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        errors = None
        detail = error.description if isinstance(error.description, str) else None
        if status == 422 and "messages" in data:
            errors = flatten_messages(data["messages"])
            detail = "The request has invalid fields."
        if status == 400 and request.mimetype == "application/json" and detail and "JSON" in detail:
            detail = "The body is not valid JSON."
        headers = {}
        if status == 429:
            headers["Retry-After"] = "60"
        return problem(status, None, detail, errors=errors, headers=headers)


api = ProblemApi()


def init_app(app) -> None:
    app.config.setdefault("API_SPEC_OPTIONS", {})
    app.config["API_SPEC_OPTIONS"].setdefault(
        "components",
        {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    )
    app.config["API_SPEC_OPTIONS"].setdefault("security", [{"bearerAuth": []}])
    app.config["API_SPEC_OPTIONS"].setdefault(
        "info",
        {"description": "Community points exchange and volunteer time bank. Errors are "
                        "application/problem+json with a stable `error` code."},
    )
    api.init_app(app)

    from timebank.people import auth_api as auth, api as people
    from timebank.audit import ledger_api
    from timebank.audit import api as audit
    from timebank.shop import api as shop
    from timebank.earning import api as earning, tasks_api as tasks
    from timebank.hours import api as hours
    from timebank.reports import api as reports

    for module in (auth, people, ledger_api, earning, tasks, hours, shop, audit, reports):
        csrf.exempt(module.blp)  # bearer tokens, not cookies: CSRF does not apply
        api.register_blueprint(module.blp)

    for name in app.config.get("TIMEBANK_API_MODULES", ()):
        import importlib

        module = importlib.import_module(name)
        csrf.exempt(module.blp)
        api.register_blueprint(module.blp)
