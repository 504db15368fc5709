"""The page frame and the resident's pages, through the test client (the browser tests are separate)."""

from __future__ import annotations

import re

import pytest

from conftest import base_config
from earning_support import PASSWORD, build_town, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    return build_town(world)


def page_login(client, username, password=PASSWORD, **extra):
    return client.post("/login", data={"username": username, "password": password, **extra})


def text(response) -> str:
    """The visible words of a page's main part, whitespace squeezed."""
    html = response.get_data(as_text=True)
    main = html.split("<main>", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def form_key(response) -> str:
    return re.search(r'name="form_key" value="([^"]+)"', response.get_data(as_text=True)).group(1)


@pytest.fixture
def resident(app, town):
    client = app.test_client()
    assert page_login(client, town.resident1).status_code == 302
    return client


# --- login, logout, roles -----------------------------------------------------------------------

def test_resident_logs_in_by_phone_and_lands_on_home(app, town):
    client = app.test_client()
    r = page_login(client, "138-0000-0001")
    assert r.status_code == 302 and r.headers["Location"] == "/me/"
    home = client.get("/me/")
    assert home.status_code == 200 and "张三，您好" in text(home)
    assert client.get("/").headers["Location"] == "/me/"


def test_staff_log_in_by_username_and_see_their_menu(app, town):
    client = app.test_client()
    r = page_login(client, "clerk")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and "红星社区" in text(home)
    # Staff have no resident pages; the page refuses as the API would.
    assert client.get("/me/").status_code == 403


def test_wrong_password_is_refused_plainly(app, town):
    client = app.test_client()
    r = page_login(client, town.resident1, "wrong-password")
    assert r.status_code == 401 and "密码不对" in text(r)
    assert client.get("/me/").status_code == 302
    assert page_login(client, "nobody", "wrong-password").status_code == 401


def test_pages_send_anonymous_visitors_to_login_and_back(app, town):
    client = app.test_client()
    for path in ("/me/", "/me/history", "/me/card", "/me/pay-code", "/me/pay-code/status.json?id=1", "/me/claims",
                 "/me/help", "/me/gift", "/me/shop", "/"):
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path
    r = client.post("/me/pay-code.json")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = client.get("/me/history")
    assert "next=/me/history" in r.headers["Location"]
    back = page_login(client, town.resident1, next="/me/history")
    assert back.headers["Location"] == "/me/history"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_to_another_site(app, town, target):
    client = app.test_client()
    r = page_login(client, town.resident1, next=target)
    assert r.status_code == 302 and r.headers["Location"] == "/me/"


def test_logout_is_a_post_and_ends_the_session(resident):
    assert resident.get("/logout").status_code == 405
    r = resident.post("/logout")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert resident.get("/me/").status_code == 302


def test_language_switch_is_remembered(resident):
    assert "家庭积分" in text(resident.get("/me/"))
    r = resident.get("/lang/en?next=/me/")
    assert r.headers["Location"] == "/me/"
    page = resident.get("/me/")
    assert "Household points" in text(page) and 'lang="en"' in page.get_data(as_text=True)
    resident.get("/lang/zh_CN")
    assert "家庭积分" in text(resident.get("/me/"))
    assert resident.get("/lang/en?next=https://evil.example/").headers["Location"] == "/"


# --- CSRF, cookies and the login rate limit --------------------------------------------------------

@pytest.fixture
def strict_app(db_uri, tmp_path, clock):
    """The app as in production: CSRF checked, login attempts limited."""
    from timebank import create_app

    config = base_config(tmp_path, db_uri) | {"WTF_CSRF_ENABLED": True, "RATELIMIT_ENABLED": True,
                                              "TIMEBANK_LOGIN_RATE_LIMIT": "3 per minute"}
    app = create_app(config)
    app.extensions["timebank.core.clock"] = clock
    yield app
    from timebank.core.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def csrf_token(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_forms_need_the_csrf_token(strict_app, town):
    client = strict_app.test_client()
    refused = client.post("/login", data={"username": town.resident1, "password": PASSWORD})
    assert refused.status_code == 400
    ok = client.post("/login", data={"username": town.resident1, "password": PASSWORD,
                                     "csrf_token": csrf_token(client)})
    assert ok.status_code == 302
    # A logged-in form without its token changes nothing either.
    assert client.post("/logout").status_code == 400
    assert client.get("/me/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/me/")}).status_code == 302
    assert client.get("/me/").status_code == 302


def test_login_attempts_are_rate_limited(strict_app):
    from conftest import World

    # Built on this app alone: the limiter is shared, and the last app set up decides whether it is on.
    world = World(strict_app, strict_app.test_client())
    world.community()
    town = build_town(world)
    client = strict_app.test_client()
    token = csrf_token(client)
    for _ in range(3):
        r = client.post("/login", data={"username": town.resident1, "password": "wrong-password",
                                        "csrf_token": token})
        assert r.status_code == 401
    r = client.post("/login", data={"username": town.resident1, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and r.headers.get("Retry-After")
    # Opening the page is not limited; only attempts are.
    assert client.get("/login").status_code == 200


def test_session_cookie_is_http_only_and_secure_when_configured(db_uri, tmp_path, clock, town, monkeypatch):
    from timebank import create_app

    monkeypatch.setenv("TIMEBANK_SESSION_COOKIE_SECURE", "1")
    app = create_app(base_config(tmp_path, db_uri))
    app.extensions["timebank.core.clock"] = clock
    assert app.config["SESSION_COOKIE_SECURE"] is True
    client = app.test_client()
    r = page_login(client, town.resident1)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie


# --- resident pages ----------------------------------------------------------------------------------

def test_home_shows_household_points_and_own_hours(resident, world, town):
    world.grant(town.h1, 42)
    page = text(resident.get("/me/"))
    assert "42 积分" in page and "0 分钟" in page


def test_history_lists_postings_with_reasons_in_chinese(resident, world, town):
    rule(world, code="clean", review="auto", publicity_days=0, points=10, minutes=90)
    world.call("POST", "/api/v1/claims", town.resident1,
               json={"community_code": "hongxing", "rule_code": "clean", "resident_id": town.r1})
    world.grant(town.h2, 5)  # another household's points are not shown
    page = text(resident.get("/me/history"))
    assert "获得积分" in page and "+10 积分" in page and "清扫楼道" in page and "志愿服务" in page
    assert "+1 小时 30 分钟" in page
    assert page.count("编号") == 1
    assert "1 小时 30 分钟" in text(resident.get("/me/"))


def test_card_shows_the_printed_card_code_as_qr(app, resident, town):
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        code = db.session.get(Household, town.h1).member_code
    page = resident.get("/me/card").get_data(as_text=True)
    assert code in page and "<svg" in page and "<path" in page


def test_pay_code_json_gives_a_code_the_supermarket_accepts(resident, world, town):
    r = resident.post("/me/pay-code.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["seconds_left"] == 120 and body["svg"].startswith("<svg") and len(body["short_code"]) == 8
    world.grant(town.h1, 10)
    item = world.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "tissue", "name": "纸巾", "price_points": 8}).get_json()
    world.call("POST", "/api/v1/stock-movements", "clerk",
               json={"item_id": item["id"], "quantity": 3, "reason": "donation", "donor": "爱心企业"})
    sale = world.call("POST", "/api/v1/redemptions", "clerk",
                      json={"pay_code": body["pay_code"], "lines": [{"item_id": item["id"], "quantity": 1}]})
    assert sale.status_code == 201 and sale.get_json()["balance_after"] == 2
    page = resident.get("/me/pay-code")
    assert "2 积分" in text(page) and 'data-text-left="还有 {s} 秒有效' in page.get_data(as_text=True)


def test_claim_from_the_points_list_and_see_its_status(resident, world, town, clock):
    rule(world, code="clean", points=10, review="review", publicity_days=3)
    rule(world, code="visit", title="探访空巢老人", category="neighbour_help", points=5, review="auto",
         publicity_days=0)
    listed = text(resident.get("/me/claims"))
    assert "清扫楼道" in listed and "探访空巢老人" in listed and "邻里互助" in listed

    r = resident.post("/me/claims", data={"rule_code": "clean", "note": "三楼", "form_key": "claim-key-1"})
    assert r.status_code == 302
    page = text(resident.get("/me/claims"))
    assert "申报已提交，等待审核" in page and "待审核" in page

    claim_id = world.call("GET", "/api/v1/claims?community_code=hongxing&status=pending",
                          "committee").get_json()["items"][0]["id"]
    assert world.call("POST", f"/api/v1/claims/{claim_id}/approve", "committee").status_code == 200
    page = text(resident.get("/me/claims"))
    assert "公示中" in page and "公示到 2026-03-05 10:00" in page

    resident.post("/me/claims", data={"rule_code": "visit", "form_key": "claim-key-2"})
    page = text(resident.get("/me/claims"))
    assert "申报成功，已入账 5 积分" in page and "已入账" in page
    assert world.balance(accounts.household_points(town.h1)) == 5


def test_claim_refusal_is_said_in_plain_words(resident, world, town):
    rule(world, code="once", points=10, review="auto", publicity_days=0,
         cap={"period": "day", "max_points": 10})
    resident.post("/me/claims", data={"rule_code": "once", "form_key": "claim-key-1"})
    r = resident.post("/me/claims", data={"rule_code": "once", "form_key": "claim-key-2"}, follow_redirects=True)
    assert "没有办成：您家这个项目本期已达到上限" in text(r)
    assert world.balance(accounts.household_points(town.h1)) == 10


def test_neighbour_help_post_accept_confirm(app, resident, world, town):
    helper = app.test_client()
    page_login(helper, town.resident2)
    # The requester needs minutes to pay with: a gift from the pool is not possible, so earn them.
    rule(world, code="serve", review="auto", publicity_days=0, points=1, minutes=120)
    world.call("POST", "/api/v1/claims", town.resident1,
               json={"community_code": "hongxing", "rule_code": "serve", "resident_id": town.r1})

    form = resident.get("/me/help")
    r = resident.post("/me/help", data={"action": "post", "title": "陪我去卫生院", "minutes": 60,
                                         "form_key": form_key(form)}, follow_redirects=True)
    assert "求助已发布" in text(r) and "等待有人帮忙" in text(r)

    offer = helper.get("/me/help")
    assert "陪我去卫生院" in text(offer)
    request_id = int(re.search(r'data-request="(\d+)"', offer.get_data(as_text=True)).group(1))
    r = helper.post("/me/help", data={"action": "accept", "request_id": request_id, "form_key": form_key(offer)},
                    follow_redirects=True)
    assert "谢谢您！您已接下：陪我去卫生院" in text(r)

    mine = resident.get("/me/help")
    assert "已有人接单" in text(mine) and "帮忙的人 李四" in text(mine)
    key = re.findall(r'name="form_key" value="([^"]+)"', mine.get_data(as_text=True))[-1]
    done = resident.post("/me/help", data={"action": "complete", "request_id": request_id, "form_key": key},
                         follow_redirects=True)
    assert "已确认，1 小时 已转给 李四" in text(done)
    assert world.balance(accounts.resident_minutes(town.r2)) == 60
    assert world.balance(accounts.resident_minutes(town.r1)) == 60
    # The same form sent again (a double tap) pays nothing twice.
    again = resident.post("/me/help", data={"action": "complete", "request_id": request_id, "form_key": key},
                          follow_redirects=True)
    assert "已经提交过了" in text(again)
    assert world.balance(accounts.resident_minutes(town.r2)) == 60


def test_gift_minutes_to_kin_once_and_refusal_without_minutes(resident, world, town):
    rule(world, code="serve", review="auto", publicity_days=0, points=1, minutes=90)
    world.call("POST", "/api/v1/claims", town.resident1,
               json={"community_code": "hongxing", "rule_code": "serve", "resident_id": town.r1})
    form = resident.get("/me/gift")
    assert "张小妹" in text(form) and "李四" not in text(form)
    key = form_key(form)
    r = resident.post("/me/gift", data={"to": str(town.r1b), "minutes": 30, "form_key": key}, follow_redirects=True)
    assert "您已把 30 分钟 转赠给 张小妹" in text(r)
    r = resident.post("/me/gift", data={"to": str(town.r1b), "minutes": 30, "form_key": key}, follow_redirects=True)
    assert "已经提交过了" in text(r)
    assert world.balance(accounts.resident_minutes(town.r1b)) == 30
    r = resident.post("/me/gift", data={"to": "pool", "minutes": 600, "form_key": form_key(r)},
                      follow_redirects=True)
    assert "时间银行里的时间不够" in text(r)
    # Minutes go to kin only: another household's resident is refused.
    r = resident.post("/me/gift", data={"to": str(town.r2), "minutes": 10, "form_key": form_key(r)},
                      follow_redirects=True)
    assert "没有办成" in text(r)
    assert world.balance(accounts.resident_minutes(town.r2)) == 0
    assert world.balance(accounts.resident_minutes(town.r1)) == 60


def test_goods_list_shows_prices_and_stock(resident, world, town):
    for sku, name, price in (("soap", "肥皂", 3), ("oil", "食用油", 45)):
        item = world.call("POST", "/api/v1/items", "clerk", json={
            "community_code": "hongxing", "sku": sku, "name": name, "price_points": price,
            "monthly_limit_per_household": 2 if sku == "oil" else None}).get_json()
        if sku == "soap":
            world.call("POST", "/api/v1/stock-movements", "clerk",
                       json={"item_id": item["id"], "quantity": 7, "reason": "donation", "donor": "爱心企业"})
    page = text(resident.get("/me/shop"))
    assert "肥皂 3 积分 剩 7 件" in page
    assert "食用油 每户每月限 2 件 45 积分 缺货" in page


def test_resident_pages_show_only_the_own_household(app, world, town):
    world.grant(town.h2, 77)
    client = app.test_client()
    page_login(client, town.resident1)
    assert "77" not in text(client.get("/me/"))
    assert "77" not in text(client.get("/me/history"))
