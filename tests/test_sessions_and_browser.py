"""Sessions and the browser: the page cookie on the JSON API needs the CSRF token, login attempts are
limited per account, weak passwords are refused, logging out ends the session on the server, pages
carry security headers, and cookies are Secure over HTTPS."""

from __future__ import annotations

import re

import pytest

from conftest import World

PASSWORD = "secret-pass"


def _world(app) -> World:
    world = World(app, app.test_client())
    world.community()
    world.user("admin", "admin", community_code=None)
    return world


def _token_on(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _page_login(client, username="admin", password=PASSWORD, **extra):
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": _token_on(client)}, **extra)


# --- 6. the page cookie on the JSON API ------------------------------------------------------------


def test_api_write_with_the_page_cookie_needs_the_csrf_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    world = _world(app)
    client = app.test_client()
    assert _page_login(client).status_code == 302

    # Reading with the cookie alone is fine.
    assert client.get("/api/v1/communities/hongxing").status_code == 200
    # A write with the cookie alone is refused, as a forged cross-site request would be.
    r = client.post("/api/v1/communities", json={"code": "forged", "name": "伪造社区"})
    assert r.status_code == 403, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json" and r.get_json()["error"] == "csrf_failed"
    r = client.post("/api/v1/communities", json={"code": "forged", "name": "伪造社区"},
                    headers={"X-CSRFToken": "not-the-token"})
    assert r.status_code == 403 and r.get_json()["error"] == "csrf_failed"
    # Nothing was made.
    assert client.get("/api/v1/communities/forged").status_code == 404

    # The page's own token (every page carries it for its scripts) lets the write through.
    html = client.get("/").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
    r = client.post("/api/v1/communities", json={"code": "real", "name": "真社区"}, headers={"X-CSRFToken": token})
    assert r.status_code == 201, r.get_json()

    # Bearer tokens are unaffected: no CSRF token needed, even with the cookie in the jar.
    r = client.post("/api/v1/communities", json={"code": "viatoken", "name": "令牌社区"},
                    headers=world.headers("admin"))
    assert r.status_code == 201, r.get_json()


# --- 7a. login attempts ---------------------------------------------------------------------------


def test_failed_logins_are_limited_per_account_across_addresses_and_both_doors(make_app):
    app = make_app(RATELIMIT_ENABLED=True, TIMEBANK_LOGIN_RATE_LIMIT="100 per minute",
                   TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT="4 per hour")
    world = _world(app)
    world.user("clerk", "clerk")
    client = app.test_client()
    # Four addresses, one guess each, at the same account; the API and the login page count together.
    for n in range(3):
        r = client.post("/api/v1/auth/token", json={"username": "admin", "password": f"guess-{n}"},
                        environ_base={"REMOTE_ADDR": f"198.51.100.{n + 1}"})
        assert r.status_code == 401
    r = _page_login(client, password="guess-page", environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert r.status_code == 401
    # A fifth address, even with the right password: the account waits.
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD},
                    environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert r.status_code == 429 and r.get_json()["error"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    r = _page_login(client, environ_base={"REMOTE_ADDR": "203.0.113.6"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # Spelling the account differently (case, spaces) is the same account.
    r = client.post("/api/v1/auth/token", json={"username": " ADMIN ", "password": PASSWORD},
                    environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert r.status_code == 429
    # Other accounts are not affected.
    r = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD},
                    environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert r.status_code == 200


def test_successful_logins_do_not_count_against_the_address(make_app):
    app = make_app(RATELIMIT_ENABLED=True, TIMEBANK_LOGIN_RATE_LIMIT="3 per minute")
    _world(app)
    client = app.test_client()
    # A community centre: many people log in from one address.
    for _ in range(12):
        assert client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}).status_code == 200
    for _ in range(5):
        assert _page_login(app.test_client()).status_code == 302
    # Failures from that address are still limited.
    for n in range(3):
        r = client.post("/api/v1/auth/token", json={"username": "admin", "password": f"guess-{n}"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "guess-x"})
    assert r.status_code == 429 and r.headers.get("Retry-After")


# --- 7b. weak passwords ---------------------------------------------------------------------------

WEAK = ["12345678", "87654321", "11111111", "password", "Password1", "qwertyuiop", "1qaz2wsx", "woaini1314",
        "abcabcabc", "12341234"]


@pytest.mark.parametrize("password", WEAK)
def test_weak_passwords_are_refused_when_a_login_is_made(world, password):
    r = world.call("POST", "/api/v1/users", "admin",
                   json={"username": "newclerk", "password": password, "role": "clerk", "community_code": "hongxing"})
    assert r.status_code == 422, (password, r.get_json())
    assert r.get_json()["error"] == "weak_password" and "password" in r.get_json()["errors"]


def test_the_username_is_not_a_password(world):
    r = world.call("POST", "/api/v1/users", "admin",
                   json={"username": "zhangclerk", "password": "zhangclerk", "role": "clerk",
                         "community_code": "hongxing"})
    assert r.status_code == 422 and r.get_json()["error"] == "weak_password"


def test_a_resident_registered_with_a_weak_password_is_refused(world):
    household = world.household()
    r = world.call("POST", "/api/v1/residents", "admin",
                   json={"household_id": household, "name": "李四", "phone": "13900001234", "password": "12345678"})
    assert r.status_code == 422 and r.get_json()["error"] == "weak_password"
    # Their phone number is their username: not a password either.
    r = world.call("POST", "/api/v1/residents", "admin",
                   json={"household_id": household, "name": "李四", "phone": "13900001234",
                         "password": "13900001234"})
    assert r.status_code == 422 and r.get_json()["error"] == "weak_password"
    r = world.call("POST", "/api/v1/residents", "admin",
                   json={"household_id": household, "name": "李四", "phone": "13900001234",
                         "password": "demo-pass-2026"})
    assert r.status_code == 201, r.get_json()


def test_create_user_command_refuses_a_weak_password_in_chinese(world, runner):
    result = runner.invoke(args=["create-user", "weakadmin", "--role", "admin", "--password-stdin"],
                           input="12345678\n")
    assert result.exit_code != 0
    assert "密码" in result.output
    result = runner.invoke(args=["create-user", "goodadmin", "--role", "admin", "--password-stdin"],
                           input="secret-pass\n")
    assert result.exit_code == 0, result.output


# --- 7c. logging out ends the session -------------------------------------------------------------


def test_a_copied_session_cookie_stops_working_at_logout(app, world):
    client = app.test_client()
    assert _page_login(client).status_code == 302
    copied = client.get_cookie("session").value
    assert client.get("/api/v1/me").status_code == 200

    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/api/v1/me").status_code == 200  # the copy works while the session lasts

    assert client.post("/logout").status_code == 302
    assert thief.get("/api/v1/me").status_code == 401
    r = thief.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 302 and "/login" in r.headers["Location"]

    # Logging in again works, and the old copy stays dead.
    assert _page_login(client).status_code == 302
    assert client.get("/api/v1/me").status_code == 200
    assert thief.get("/api/v1/me").status_code == 401


# --- 7d. security headers -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/", "/public/hongxing", "/api/v1/communities/hongxing",
                                  "/api/v1/docs"])
def test_pages_carry_security_headers(app, world, path):
    client = app.test_client()
    _page_login(client)
    r = client.get(path)
    assert r.status_code < 500
    frame_denied = r.headers.get("X-Frame-Options") == "DENY"
    csp = r.headers.get("Content-Security-Policy", "")
    assert frame_denied or "frame-ancestors 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert "default-src 'self'" in csp and "object-src 'none'" in csp
    assert r.headers.get("Referrer-Policy") in ("same-origin", "strict-origin-when-cross-origin", "no-referrer")


def test_page_scripts_are_from_the_app_only(app, world):
    client = app.test_client()
    _page_login(client)
    csp = client.get("/").headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src


# --- 9b. Secure cookies behind HTTPS --------------------------------------------------------------


def _session_cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))


def test_session_cookie_is_secure_over_https_by_a_proxy(make_app):
    app = make_app(TIMEBANK_PROXY_FIX=1)
    _world(app)
    client = app.test_client()
    r = _page_login(client, headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 302
    assert "Secure" in _session_cookie(r).split("; ")


def test_session_cookie_is_secure_when_the_base_url_is_https(make_app):
    app = make_app(TIMEBANK_BASE_URL="https://jifen.example.cn")
    _world(app)
    r = _page_login(app.test_client())
    assert "Secure" in _session_cookie(r).split("; ")


def test_session_cookie_is_not_secure_on_plain_local_http(make_app):
    app = make_app()
    _world(app)
    r = _page_login(app.test_client())
    assert r.status_code == 302
    assert "Secure" not in _session_cookie(r).split("; ")
