"""Sessions and the browser: what protects a person whose browser holds a page session.

- The JSON API takes a page session cookie for writes only with the page's CSRF token in the
  ``X-CSRFToken`` header (403 ``csrf_failed``): another site cannot make the browser move points.
  Bearer tokens are never sent by a browser on its own, so they need no token.
- Every response carries ``X-Frame-Options``, ``X-Content-Type-Options``, a Content-Security-Policy
  and a Referrer-Policy: no framing (click-jacking), no script from anywhere but the app, no page
  address (which may hold an id) sent to other sites.
- The session cookie is ``Secure`` whenever the request came over HTTPS (directly, or through a
  proxy trusted by ``TIMEBANK_PROXY_FIX``) or ``TIMEBANK_BASE_URL`` is an https address; plain HTTP
  on 127.0.0.1 keeps working.
"""

from __future__ import annotations

from flask import current_app, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from timebank.core.auth import bearer_token
from timebank.core.errors import Forbidden
from timebank.core.extensions import csrf

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

#: Everything the pages load is served by the app. Inline ``style`` attributes and print styles are
#: allowed; scripts only from the app's own files (none inline).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
#: The API's Swagger UI page starts itself with an inline script (flask-smorest's template); it holds
#: no one's data.
DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("script-src 'self'",
                                                               "script-src 'self' 'unsafe-inline'")

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def over_https() -> bool:
    """True when this request came over HTTPS, or the deployment's public address is https."""
    if not has_request_context():
        return False
    base_url = str(current_app.config.get("TIMEBANK_BASE_URL") or "")
    return request.is_secure or base_url.lower().startswith("https://")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, ``Secure`` over HTTPS as well as when configured so."""

    def get_cookie_secure(self, app) -> bool:
        return bool(super().get_cookie_secure(app)) or over_https()


def cookie_writes_need_csrf(app, blueprint) -> None:
    """An API blueprint: exempt from the page forms' CSRF check (bearer tokens need none), but a
    write authenticated by the page session cookie must carry the page's token."""
    csrf.exempt(blueprint)
    app.extensions["timebank.cookie_csrf_blueprints"].add(blueprint.name)


def _check_cookie_write() -> None:
    if request.method in SAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if request.blueprint not in current_app.extensions["timebank.cookie_csrf_blueprints"]:
        return
    if bearer_token() is not None:
        return
    if not current_user.is_authenticated:  # no page session: the view answers 401 where it must
        return
    header = next((request.headers[name] for name in current_app.config.get(
        "WTF_CSRF_HEADERS", ["X-CSRFToken", "X-CSRF-Token"]) if request.headers.get(name)), None)
    try:
        validate_csrf(header)
    except ValidationError as exc:
        raise Forbidden("A request with the page session cookie needs the page's CSRF token in the "
                        "X-CSRFToken header (or use a bearer token).", code="csrf_failed") from exc


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    docs = current_app.config.get("OPENAPI_URL_PREFIX", "") + (current_app.config.get("OPENAPI_SWAGGER_UI_PATH")
                                                               or "/docs")
    policy = DOCS_CONTENT_SECURITY_POLICY if request.path.rstrip("/") == docs.rstrip("/") else CONTENT_SECURITY_POLICY
    response.headers.setdefault("Content-Security-Policy", policy)
    return response


def init_app(app) -> None:
    app.session_interface = SessionInterface()
    app.extensions["timebank.cookie_csrf_blueprints"] = set()
    app.before_request(_check_cookie_write)
    app.after_request(_security_headers)
    # Flask-Login issues no remember cookie here (logins are not remembered); should one be set, it is
    # Secure on an https deployment.
    if str(app.config.get("TIMEBANK_BASE_URL") or "").lower().startswith("https://"):
        app.config["REMEMBER_COOKIE_SECURE"] = True
