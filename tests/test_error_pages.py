"""Page errors are pages: in the site's frame (its top bar, menu and language), in Chinese by
default, with a way back; API requests keep problem+json.

Before, a wrong link, a form left open past its CSRF token, a page a role cannot open or too many
login tries answered raw English JSON (flask-smorest's handler took every HTTP error of the app).
"""

from __future__ import annotations

import re

import pytest

PASSWORD = "secret-pass"


def _heading(response) -> str:
    found = re.findall(r"<h1>(.*?)</h1>", response.get_data(as_text=True), re.S)
    return found[0].strip() if found else ""


def _framed(response) -> bool:
    body = response.get_data(as_text=True)
    return 'class="topbar"' in body and 'href="/"' in body


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_a_wrong_link_is_a_chinese_page_in_the_frame(client):
    r = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert _heading(r) == "找不到页面"
    assert _framed(r)


def test_a_wrong_method_on_a_page_is_a_page(client):
    r = client.put("/login", headers={"Accept": "text/html"})
    assert r.status_code == 405 and r.mimetype == "text/html"
    assert _heading(r) == "此操作不可用" and _framed(r)
    assert "POST" in r.headers["Allow"]


def test_the_api_keeps_problem_json(client):
    for response in (client.get("/api/v1/no-such", headers={"Accept": "text/html"}),
                     client.put("/api/v1/auth/token", headers={"Accept": "text/html"})):
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["status"] in (404, 405)


def test_a_program_asking_for_json_gets_problem_json_from_a_page_address(client):
    r = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_a_form_sent_after_its_token_expired_says_so(make_app, world):
    app = make_app(WTF_CSRF_ENABLED=True)
    r = app.test_client().post("/login", data={"username": "x", "password": "y"},
                               headers={"Accept": "text/html"})
    assert r.status_code == 400 and r.mimetype == "text/html"
    assert _heading(r) == "表单已过期" and _framed(r)
    assert "刷新页面" in r.get_data(as_text=True)


def test_a_page_the_role_cannot_open_is_a_page_with_a_way_back(app, world):
    world.user("clerk1", "clerk")
    client = app.test_client()
    assert client.post("/login", data={"username": "clerk1", "password": PASSWORD}).status_code == 302
    r = client.get("/committee/month-close", headers={"Accept": "text/html", "Referer": "http://localhost/clerk/pos"})
    assert r.status_code == 403 and r.mimetype == "text/html"
    assert _heading(r) == "没有权限" and _framed(r)
    body = r.get_data(as_text=True)
    assert 'href="http://localhost/clerk/pos"' in body and "返回上一页" in body
    assert "clerk1" in body  # the frame knows who is signed in


def test_a_way_back_never_points_off_the_site(client):
    r = client.get("/no/such/page", headers={"Accept": "text/html", "Referer": "https://evil.example/x"})
    assert "evil.example" not in r.get_data(as_text=True)


def test_too_many_login_tries_is_a_page_with_the_wait(make_app, world):
    app = make_app(RATELIMIT_ENABLED=True, TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT="2 per minute")
    world.user("clerk1", "clerk")
    client = app.test_client()
    answers = [client.post("/login", data={"username": "clerk1", "password": "wrong-pass"},
                           headers={"Accept": "text/html"}) for _ in range(4)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    r = limited[0]
    assert r.mimetype == "text/html" and _heading(r) == "操作太频繁" and _framed(r)
    assert re.search(r"请 \d+ 秒后再试", r.get_data(as_text=True))
    assert r.headers["Retry-After"].isdigit()


def test_too_large_a_body_is_a_page(client):
    r = client.post("/login", data={"username": "x" * (2 * 1024 * 1024)}, headers={"Accept": "text/html"})
    assert r.status_code == 413 and r.mimetype == "text/html"
    assert _heading(r) == "内容太大" and _framed(r)


def test_an_unexpected_error_is_a_page_in_the_frame(make_app):
    app = make_app()

    def boom():
        raise RuntimeError("a bug")

    app.add_url_rule("/boom-for-test", "boom_for_test", boom)
    r = app.test_client().get("/boom-for-test", headers={"Accept": "text/html"})
    assert r.status_code == 500 and r.mimetype == "text/html"
    assert _heading(r) == "系统出错了" and _framed(r)
    assert "a bug" not in r.get_data(as_text=True)


def test_english_when_chosen(client):
    client.get("/lang/en")
    r = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert _heading(r) == "Page not found"


def test_every_page_error_status_has_words_in_both_languages(app):
    from flask_babel import force_locale

    from timebank.core.problems import PAGE_TEXTS

    with app.test_request_context():
        for status in (400, 403, 404, 405, 413, 422, 429, 500):
            title, detail = PAGE_TEXTS[status]
            with force_locale("zh_CN"):
                assert _chinese(str(title)) and _chinese(str(detail)), status
            with force_locale("en"):
                assert not _chinese(str(title)), status
