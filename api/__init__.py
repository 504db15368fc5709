"""The JSON API under ``/api/v1`` (flask-smorest: marshmallow schemas and the OpenAPI document)."""

from __future__ import annotations

import http

from flask_smorest import Api

from timebank.core import openapi
from timebank.core.browser import cookie_writes_need_csrf
from timebank.core.problems import flatten_messages, problem


class ProblemApi(Api):
    """flask-smorest, with its errors in the project's problem+json form, in the answers and in the
    OpenAPI document (:mod:`timebank.core.openapi`)."""

    def init_app(self, app, *, spec_kwargs=None):
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs["extra_plugins"] = [*spec_kwargs.get("extra_plugins", ()), openapi.OperationDocs(app)]
        super().init_app(app, spec_kwargs=spec_kwargs)

    def _register_responses(self):
        """flask-smorest's default error responses (``DEFAULT_ERROR``, and one per status such as
        ``UNPROCESSABLE_ENTITY``) describe its own error body; ours is the Problem schema."""
        openapi.register_components(self.spec)
        for status in http.HTTPStatus:
            if status >= 400:
                self.spec.components.response(status.name, openapi.problem_response(status.phrase), lazy=True)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME,
                                      openapi.problem_response("Any other error"), lazy=True)

    def handle_http_exception(self, error):
        """flask-smorest registers this for every HTTPException of the app, pages included: a page
        request gets the site's error page (:func:`timebank.core.problems.page_for_http_error`)."""
        from flask import request

        from timebank.core.extensions import db
        from timebank.core.problems import page_for_http_error

        page = page_for_http_error(error)
        if page is not None:
            return page

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
    _serve_swagger_ui(app)

    from timebank.audit import api as audit
    from timebank.audit import ledger_api
    from timebank.earning import api as earning
    from timebank.earning import deductions_api as deductions
    from timebank.earning import honours_api as honours
    from timebank.earning import tasks_api as tasks
    from timebank.federation import api as federation
    from timebank.hours import api as hours
    from timebank.notices import api as notices
    from timebank.people import api as people
    from timebank.people import auth_api as auth
    from timebank.people import import_api as imports
    from timebank.people import logins_api as logins
    from timebank.people import roster_api as roster
    from timebank.reports import api as reports
    from timebank.shop import api as shop

    for module in (auth, people, roster, logins, imports, ledger_api, earning, tasks, honours, deductions, hours,
                   federation, shop, audit, reports, notices):
        cookie_writes_need_csrf(app, module.blp)  # bearer tokens need no CSRF token; the page cookie does
        api.register_blueprint(module.blp)

    for name in app.config.get("TIMEBANK_API_MODULES", ()):
        import importlib

        module = importlib.import_module(name)
        cookie_writes_need_csrf(app, module.blp)
        api.register_blueprint(module.blp)


def _serve_swagger_ui(app) -> None:
    """``/api/v1/docs`` loads Swagger UI's files from ``OPENAPI_SWAGGER_UI_URL``: served here from the
    ``swagger-ui-bundle`` package (a maintained copy of swagger-ui-dist on PyPI), so the page works
    without internet access and loads nothing from another site (its Content-Security-Policy)."""
    from flask import send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    prefix = app.config.get("OPENAPI_SWAGGER_UI_URL") or "/api/v1/static/swagger-ui/"

    def swagger_ui_file(filename):
        return send_from_directory(swagger_ui_path, filename, max_age=24 * 3600)

    app.add_url_rule(prefix.rstrip("/") + "/<path:filename>", "swagger_ui_file", swagger_ui_file)
