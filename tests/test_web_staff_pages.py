"""The clerk's and the committee's pages through the test client: the till, receipts and stock; claims,
tasks and the venue QR, the points list, households and cards, the ledger, reports, month close.

Access is checked per page and role; supervisors read and never write; CSRF is on for the pages.
"""

from __future__ import annotations

import re

import pytest

from earning_support import PASSWORD, build_town, claim, rule
from timebank.core import accounts


def page_login(client, username, password=PASSWORD):
    r = client.post("/login", data={"username": username, "password": password})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


def text(response) -> str:
    html = response.get_data(as_text=True)
    main = html.split("<main", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def form_key(response) -> str:
    return re.search(r'name="form_key" value="([^"]+)"', response.get_data(as_text=True)).group(1)


@pytest.fixture
def town(world):
    t = build_town(world)
    world.user("supervisor", "supervisor")
    for sku, name, price, barcode, limit in (("soap", "香皂", 3, "6901111000011", None),
                                             ("oil", "食用油", 45, "6901111000028", 1),
                                             ("tissue", "纸巾", 8, "6901111000035", None)):
        r = world.call("POST", "/api/v1/items", "clerk", json={
            "community_code": "hongxing", "sku": sku, "name": name, "price_points": price, "barcode": barcode,
            **({"monthly_limit_per_household": limit} if limit else {})})
        assert r.status_code == 201, r.get_json()
        setattr(t, sku, r.get_json()["id"])
        r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
            "item_id": r.get_json()["id"], "quantity": 5, "reason": "donation", "donor": "爱心超市之友"})
        assert r.status_code == 201, r.get_json()
    world.grant(t.h1, 100)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        t.card1 = db.session.get(Household, t.h1).member_code
        t.card3 = db.session.get(Household, t.h3).member_code
    return t


def client_for(app, username):
    return page_login(app.test_client(), username)


def on_hand(app, item_id):
    from timebank.core.extensions import db
    from timebank.shop.models import Item

    with app.app_context():
        return db.session.get(Item, item_id).on_hand


# --- the till ---------------------------------------------------------------------------------------

def test_till_sells_by_card_and_barcodes_once_per_form(app, town, world):
    clerk = client_for(app, "clerk")
    first = clerk.get("/clerk/pos")
    assert first.status_code == 200 and 'id="member"' in first.get_data(as_text=True)

    shown = clerk.get(f"/clerk/pos?member={town.card1}")
    assert "张家" in text(shown) and "100" in text(shown)
    # Each scan adds one unit and redirects, so a reload adds nothing.
    r = clerk.get(f"/clerk/pos?member={town.card1}&q=6901111000011")
    assert r.status_code == 302
    r = clerk.get(r.headers["Location"] + "&q=6901111000035")
    assert r.status_code == 302
    url = r.headers["Location"]
    basket = clerk.get(url)
    assert "香皂" in text(basket) and "纸巾" in text(basket) and "11" in text(basket)
    # Typed words search by name.
    found = clerk.get(url + "&q=香")
    assert found.status_code == 200 and "search-results" in found.get_data(as_text=True)

    items = re.findall(r"item=(\d+)", url)
    data = {"member": town.card1, "item": items, "form_key": form_key(basket)}
    sold = clerk.post("/clerk/pos", data=data)
    assert sold.status_code == 302 and "done=" in sold.headers["Location"]
    done = clerk.get(sold.headers["Location"])
    assert "89" in text(done) and "/receipts/" in done.get_data(as_text=True)
    assert world.balance(accounts.household_points(town.h1)) == 89
    assert on_hand(app, town.soap) == 4 and on_hand(app, town.tissue) == 4

    # The same form again (a double click): nothing is charged twice; the till shows the first receipt.
    again = clerk.post("/clerk/pos", data=data)
    assert again.status_code == 302 and again.headers["Location"] == sold.headers["Location"] + "&again=1"
    assert world.balance(accounts.household_points(town.h1)) == 89
    assert on_hand(app, town.soap) == 4


def test_till_removes_one_unit(app, town):
    clerk = client_for(app, "clerk")
    r = clerk.get(f"/clerk/pos?member={town.card1}&item={town.soap}&item={town.soap}&remove={town.soap}")
    assert r.status_code == 302 and r.headers["Location"].count("item=") == 1


@pytest.mark.parametrize("case, words, status", [
    ("points", "积分不够", 409),
    ("stock", "库存不够", 409),
    ("limit", "本月兑换上限", 409),
])
def test_till_refusals_are_said_in_chinese_and_keep_the_basket(app, town, world, case, words, status):
    clerk = client_for(app, "clerk")
    if case == "points":
        world.grant(town.h2, 10)  # 李家 holds 10; two packs of tissues cost 16
        member = _card(app, town.h2)
        items = [town.tissue, town.tissue]
    elif case == "stock":
        member, items = town.card1, [town.soap] * 6
    else:
        member, items = town.card1, [town.oil, town.oil]
    page = clerk.get(f"/clerk/pos?member={member}")
    r = clerk.post("/clerk/pos", data={"member": member, "item": items, "form_key": form_key(page)})
    assert r.status_code == status
    assert words in text(r), text(r)[:400]
    assert 'id="pos-lines"' in r.get_data(as_text=True)


def _card(app, household_id):
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        return db.session.get(Household, household_id).member_code


def test_till_unknown_card_other_community_and_expired_pay_code(app, town, world, clock):
    clerk = client_for(app, "clerk")
    r = clerk.get("/clerk/pos?member=HNOSUCHCARD1")
    assert r.status_code == 404 and "没有找到这张卡" in text(r)
    r = clerk.get(f"/clerk/pos?member={town.card3}")  # 王家 lives in 绿野村
    assert r.status_code == 404 and "没有找到这张卡" in text(r)

    code = world.call("GET", "/api/v1/me/pay-code", town.resident1).get_json()["pay_code"]
    shown = clerk.get("/clerk/pos", query_string={"member": code})
    assert shown.status_code == 200 and "张家" in text(shown) and "手机付款码" in text(shown)
    clock.advance(minutes=5)
    r = clerk.post("/clerk/pos", data={"member": code, "item": [town.soap], "form_key": "k" * 20})
    assert r.status_code == 410 and "付款码已过期" in text(r)
    assert world.balance(accounts.household_points(town.h1)) == 100


def test_till_sells_by_pay_code_once(app, town, world):
    clerk = client_for(app, "clerk")
    code = world.call("GET", "/api/v1/me/pay-code", town.resident1).get_json()["pay_code"]
    r = clerk.post("/clerk/pos", data={"member": code, "item": [town.soap], "form_key": "a" * 20})
    assert r.status_code == 302 and "done=" in r.headers["Location"]
    r = clerk.post("/clerk/pos", data={"member": code, "item": [town.soap], "form_key": "b" * 20})
    assert r.status_code == 409 and "付款码已经用过" in text(r)
    assert world.balance(accounts.household_points(town.h1)) == 97


def test_void_from_the_receipts_page_gives_points_and_goods_back(app, town, world):
    clerk = client_for(app, "clerk")
    r = clerk.post("/clerk/pos", data={"member": town.card1, "item": [town.tissue], "form_key": "c" * 20})
    receipt_id = int(r.headers["Location"].split("done=")[1])
    assert world.balance(accounts.household_points(town.h1)) == 92
    listing = clerk.get("/clerk/receipts")
    assert "作废" in text(listing)
    no_reason = clerk.post(f"/clerk/receipts/{receipt_id}/void", data={"form_key": "d" * 20}, follow_redirects=True)
    assert "说明作废原因" in text(no_reason)
    r = clerk.post(f"/clerk/receipts/{receipt_id}/void", data={"reason": "扫错了", "form_key": "d" * 20},
                   follow_redirects=True)
    assert "积分和商品都已退回" in text(r)
    assert world.balance(accounts.household_points(town.h1)) == 100 and on_hand(app, town.tissue) == 5
    again = clerk.post(f"/clerk/receipts/{receipt_id}/void", data={"reason": "再来", "form_key": "e" * 20},
                       follow_redirects=True)
    assert "已经作废" in text(again)
    assert world.balance(accounts.household_points(town.h1)) == 100
    receipt = clerk.get(f"/receipts/{receipt_id}")
    assert receipt.status_code == 200 and "size: 80mm auto" in receipt.get_data(as_text=True)
    assert "size: A4" in clerk.get(f"/receipts/{receipt_id}?paper=a4").get_data(as_text=True)


def test_stock_page_records_a_donation_with_its_donor_and_shows_low_stock(app, town, world):
    clerk = client_for(app, "clerk")
    page = clerk.get("/clerk/stock")
    assert page.status_code == 200 and "食用油" in text(page)
    missing = clerk.post("/clerk/stock", data={"item_id": town.oil, "quantity": 3, "reason": "donation",
                                                "form_key": form_key(page)}, follow_redirects=True)
    assert "没有办成" in text(missing) and on_hand(app, town.oil) == 5
    r = clerk.post("/clerk/stock", data={"item_id": town.oil, "quantity": 3, "reason": "donation",
                                          "donor": "红星粮油店", "donor_kind": "enterprise", "form_key": "f" * 20},
                   follow_redirects=True)
    assert "已记录" in text(r) and on_hand(app, town.oil) == 8 and "红星粮油店" in text(r)
    r = clerk.post("/clerk/stock", data={"item_id": town.oil, "quantity": 8, "reason": "spoilage",
                                          "form_key": "g" * 20}, follow_redirects=True)
    assert on_hand(app, town.oil) == 0
    low = r.get_data(as_text=True).split('id="low-stock"')[1].split("</ul>")[0]
    assert "食用油" in low


# --- access, CSRF, supervisors ----------------------------------------------------------------------

CLERK_PAGES = ["/clerk/pos", "/clerk/receipts", "/clerk/stock"]
COMMITTEE_PAGES = ["/committee/claims", "/committee/tasks", "/committee/rules", "/committee/households",
                   "/committee/households/cards", "/committee/ledger", "/committee/ledger/verify",
                   "/committee/reports", "/committee/month-close", "/committee/anomaly-flags"]
BOOKS = {"/committee/ledger", "/committee/ledger/verify", "/committee/reports", "/committee/month-close",
         "/committee/anomaly-flags"}


def test_pages_need_a_login(app, town):
    anonymous = app.test_client()
    for path in CLERK_PAGES + COMMITTEE_PAGES:
        r = anonymous.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path


@pytest.mark.parametrize("username, allowed", [
    ("13800000001", set()),
    ("clerk", set(CLERK_PAGES)),
    ("grid", set(COMMITTEE_PAGES) - BOOKS),
    ("committee", set(CLERK_PAGES) | set(COMMITTEE_PAGES)),
    ("supervisor", set(CLERK_PAGES) | set(COMMITTEE_PAGES)),
])
def test_pages_admit_the_roles_the_api_admits(app, town, username, allowed):
    client = client_for(app, username)
    for path in CLERK_PAGES + COMMITTEE_PAGES:
        r = client.get(path, follow_redirects=path.endswith("anomaly-flags"))
        assert r.status_code == (200 if path in allowed else 403), (username, path, r.status_code)


def test_supervisors_see_no_buttons_and_every_post_is_refused(app, town, world):
    rule(world)
    claim(world, town.r2, town.resident2)
    supervisor = client_for(app, "supervisor")
    queue = supervisor.get("/committee/claims")
    assert queue.status_code == 200 and "李四" in text(queue)
    html = queue.get_data(as_text=True)
    assert "approve" not in html and 'method="post" action="/committee' not in html
    for path in ("/clerk/pos", "/clerk/stock", "/committee/rules", "/committee/households", "/committee/tasks"):
        assert 'name="form_key"' not in supervisor.get(path).get_data(as_text=True), path
    posts = ["/clerk/pos", "/clerk/receipts/1/void", "/clerk/stock", "/committee/claims/1/approve",
             "/committee/claims/1/reject", "/committee/tasks", "/committee/rules", "/committee/rules/1",
             "/committee/households", "/committee/month-close"]
    for path in posts:
        r = supervisor.post(path, data={"form_key": "h" * 20, "reason": "x", "member": town.card1,
                                        "item": [town.soap], "name": "x", "month": "2026-02"})
        assert r.status_code == 403, path
    assert world.balance(accounts.household_points(town.h1)) == 100


def test_clerks_cannot_review_and_grid_workers_cannot_sell(app, town, world):
    rule(world)
    c = claim(world, town.r2, town.resident2)
    clerk = client_for(app, "clerk")
    assert clerk.post(f"/committee/claims/{c['id']}/approve", data={"form_key": "i" * 20}).status_code == 403
    grid = client_for(app, "grid")
    assert grid.post("/clerk/pos", data={"member": town.card1, "item": [town.soap],
                                         "form_key": "j" * 20}).status_code == 403
    assert world.balance(accounts.household_points(town.h1)) == 100


def test_csrf_is_required_on_staff_forms(app, town):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        clerk = app.test_client()
        page = clerk.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        clerk.post("/login", data={"username": "clerk", "password": PASSWORD, "csrf_token": token})
        r = clerk.post("/clerk/pos", data={"member": town.card1, "item": [town.soap], "form_key": "k" * 20})
        assert r.status_code == 400
        page = clerk.get(f"/clerk/pos?member={town.card1}&item={town.soap}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        r = clerk.post("/clerk/pos", data={"member": town.card1, "item": [town.soap], "form_key": "k" * 20,
                                           "csrf_token": token})
        assert r.status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


# --- claims and publicity -----------------------------------------------------------------------------

def test_committee_approves_rejects_and_objects(app, town, world):
    rule(world)
    first = claim(world, town.r2, town.resident2)
    second = claim(world, town.r2, town.resident2, note="第二次")
    committee = client_for(app, "committee")
    queue = committee.get("/committee/claims")
    assert "李四" in text(queue) and "清扫楼道" in text(queue)
    r = committee.post(f"/committee/claims/{first['id']}/approve", data={"form_key": form_key(queue)},
                       follow_redirects=True)
    assert "已通过" in text(r) and "公示到" in text(r)
    again = committee.post(f"/committee/claims/{first['id']}/approve", data={"form_key": "l" * 20},
                           follow_redirects=True)
    assert "已经审核过了" in text(again)
    r = committee.post(f"/committee/claims/{second['id']}/reject", data={"form_key": "m" * 20},
                       follow_redirects=True)
    assert "请填写理由" in text(r)
    r = committee.post(f"/committee/claims/{second['id']}/reject", data={"form_key": "n" * 20, "reason": "重复申报"},
                       follow_redirects=True)
    assert "未通过" in text(r) and "重复申报" in text(r)
    r = committee.post(f"/committee/claims/{first['id']}/object", data={"form_key": "o" * 20, "reason": "没有参加"},
                       follow_redirects=True)
    assert "重新审核" in text(r)
    assert world.call("GET", f"/api/v1/claims/{first['id']}", "committee").get_json()["status"] == "pending"


def test_nobody_approves_their_own_household(app, town, world):
    rule(world)
    own = claim(world, town.r1, town.resident1)
    member = client_for(app, "committee_h1")
    queue = member.get("/committee/claims")
    assert "另一位审核人" in text(queue)
    r = member.post(f"/committee/claims/{own['id']}/approve", data={"form_key": "p" * 20}, follow_redirects=True)
    assert "不能审核自己家" in text(r)
    assert world.call("GET", f"/api/v1/claims/{own['id']}", "committee").get_json()["status"] == "pending"


def test_another_communitys_claim_is_not_found(app, town, world):
    rule(world, code="lv", user="other_committee", community_code="lvye")
    other = claim(world, town.r3, town.resident3, rule_code="lv", community_code="lvye")
    committee = client_for(app, "committee")
    r = committee.post(f"/committee/claims/{other['id']}/approve", data={"form_key": "q" * 20},
                       follow_redirects=True)
    assert "没有找到" in text(r)
    assert world.call("GET", f"/api/v1/claims/{other['id']}", "other_committee").get_json()["status"] == "pending"


# --- tasks and the venue QR ---------------------------------------------------------------------------

def test_tasks_create_and_full_screen_qr_rotates(app, town, world, clock):
    rule(world, review="auto", publicity_days=0)
    grid = client_for(app, "grid")
    page = grid.get("/committee/tasks")
    assert 'id="task-form"' in page.get_data(as_text=True)
    r = grid.post("/committee/tasks", data={"form_key": form_key(page), "rule_code": "clean", "title": "清扫槐树街",
                                             "starts_at": "2026-03-02T09:00", "ends_at": "2026-03-02T12:00",
                                             "slots": "10"}, follow_redirects=True)
    assert "清扫槐树街" in text(r) and "开放中" in text(r)
    task_id = int(re.search(r'data-task="(\d+)"', r.get_data(as_text=True)).group(1))
    qr = grid.get(f"/committee/tasks/{task_id}/qr")
    html = qr.get_data(as_text=True)
    assert qr.status_code == 200 and "<svg" in html and "venue.js" in html and 'http-equiv="refresh"' in html
    first = grid.get(f"/committee/tasks/{task_id}/qr.json").get_json()
    assert first["url"].startswith("http") and "/checkin?token=" in first["url"]
    assert 1 <= first["seconds_to_rotation"] <= 60
    assert first["checked_in"] == 0 and first["slots"] == 10
    clock.advance(seconds=61)
    assert grid.get(f"/committee/tasks/{task_id}/qr.json").get_json()["url"] != first["url"]
    bad = grid.post("/committee/tasks", data={"form_key": "r" * 20, "rule_code": "clean", "title": "x",
                                              "starts_at": "", "ends_at": "", "slots": "1"}, follow_redirects=True)
    assert "没有办成" in text(bad)


# --- the points list ----------------------------------------------------------------------------------

def test_rules_create_and_change_make_versions(app, town, world):
    committee = client_for(app, "committee")
    page = committee.get("/committee/rules")
    r = committee.post("/committee/rules", data={
        "form_key": form_key(page), "code": "visit", "title": "探访空巢老人", "category": "neighbour_help",
        "points": "5", "minutes": "60", "review": "review", "publicity_days": "3", "cap_period": "month",
        "cap_max_points": "20"}, follow_redirects=True)
    assert "探访空巢老人" in text(r) and "第 1 版" in text(r)
    duplicate = committee.post("/committee/rules", data={
        "form_key": "s" * 20, "code": "visit", "title": "x", "category": "volunteer", "points": "1",
        "review": "auto"}, follow_redirects=True)
    assert "已经被" in text(duplicate)
    rule_id = int(re.search(r'action="/committee/rules/(\d+)"', r.get_data(as_text=True)).group(1))
    r = committee.post(f"/committee/rules/{rule_id}", data={
        "form_key": "t" * 20, "title": "探访空巢老人", "points": "8", "minutes": "60", "review": "review",
        "publicity_days": "3", "active": "1", "cap_period": "", "cap_max_points": ""}, follow_redirects=True)
    assert "第 2 版" in text(r) and "+8" in text(r)
    grid = client_for(app, "grid")
    assert grid.post(f"/committee/rules/{rule_id}", data={"form_key": "u" * 20, "points": "99"}).status_code == 403


# --- households and cards -----------------------------------------------------------------------------

def test_households_filter_register_and_print_cards(app, town, world):
    committee = client_for(app, "committee")
    red = committee.get("/committee/households?color=red")
    assert "李家" in text(red) and "张家" not in text(red)
    grid1 = committee.get("/committee/households?grid=1")
    assert "张家" in text(grid1) and "李家" not in text(grid1)
    r = committee.post("/committee/households", data={
        "form_key": form_key(red), "name": "赵家", "address": "槐树街3号", "grid": "3", "color": "yellow",
        "resident": "赵六", "phone": "13800000099"}, follow_redirects=True)
    assert "赵家" in text(r) and "已登记" in text(r)
    sheet = committee.get("/committee/households/cards?grid=3")
    html = sheet.get_data(as_text=True)
    assert sheet.status_code == 200 and html.count('class="member-card"') == 1 and "赵家" in html
    assert "@page { size: A4" in html and "<svg" in html
    everyone = committee.get("/committee/households/cards").get_data(as_text=True)
    assert everyone.count('class="member-card"') == 3 and everyone.count('class="sheet"') == 1
    assert town.card1 in everyone and town.card3 not in everyone


# --- the books ----------------------------------------------------------------------------------------

def test_ledger_browser_filters_and_verifies(app, town, world):
    world.grant(town.h2, 7, category="red")
    committee = client_for(app, "committee")
    everything = committee.get("/committee/ledger")
    # Accounts in words (the code stays in the markup for auditors): 李家 的积分, 发放：红色积分.
    assert everything.status_code == 200 and "李家 的积分" in text(everything) and "household:" not in text(everything)
    assert "发放：红色积分" in text(everything) and 'data-account="household:' in everything.get_data(as_text=True)
    red = committee.get("/committee/ledger?category=red")
    assert "+7" in text(red) and "+100" not in text(red)
    by_card = committee.get(f"/committee/ledger?household={town.card1}")
    assert "+100" in text(by_card) and "+7" not in text(by_card)
    other = committee.get(f"/committee/ledger?household={town.card3}")
    assert "没有这个户" in text(other)
    verified = client_for(app, "supervisor").get("/committee/ledger/verify")
    assert verified.status_code == 200 and "全部相符" in text(verified)
    export = committee.get("/committee/ledger/export.csv?category=red")
    body = export.get_data(as_text=True)
    assert export.status_code == 200 and body.startswith("\ufeff") and "household:" in body


def test_reports_draw_charts_and_offer_exports(app, town, world):
    rule(world, review="auto", publicity_days=0)
    claim(world, town.r1, town.resident1)  # 10 points issued this month (volunteer)
    clerk = client_for(app, "clerk")
    clerk.post("/clerk/pos", data={"member": town.card1, "item": [town.oil], "form_key": "v" * 20})
    committee = client_for(app, "committee")
    r = committee.get("/committee/reports")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and '<svg class="chart"' in html
    assert 'id="fig-issued">10<' in html and 'id="fig-redeemed">45<' in html
    csv = committee.get("/committee/reports/2026-03.csv")
    assert csv.status_code == 200 and "points.redeemed_net,45" in csv.get_data(as_text=True)
    assert "points.issued.volunteer,10" in csv.get_data(as_text=True)
    xlsx = committee.get("/committee/reports/2026-03.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    assert committee.get("/committee/reports?month=2026-13").status_code == 404


def test_month_close_needs_two_committee_members(app, town, world, clock):
    world.user("committee2", "committee")
    clock.advance(days=31)
    first = client_for(app, "committee")
    page = first.get("/committee/month-close")
    assert "2026-03" in text(page) and "/committee/month-close/hongxing/2026-03" in page.get_data(as_text=True)
    r = first.post("/committee/month-close", data={"form_key": form_key(page), "month": "2026-03"},
                   follow_redirects=True)
    assert "第二位" in text(r)
    r = first.post("/committee/month-close", data={"form_key": "w" * 20, "month": "2026-03"}, follow_redirects=True)
    assert "已经签过" in text(r)
    second = client_for(app, "committee2")
    r = second.post("/committee/month-close", data={"form_key": "x" * 20, "month": "2026-03"}, follow_redirects=True)
    assert "已月结" in text(r)


def test_staff_menu_lists_the_pages(app, town):
    home = client_for(app, "committee").get("/")
    for path in ("/committee/claims", "/committee/ledger", "/committee/reports", "/clerk/pos"):
        assert f'href="{path}"' in home.get_data(as_text=True), path
    clerk_home = client_for(app, "clerk").get("/").get_data(as_text=True)
    assert 'href="/clerk/pos"' in clerk_home and 'href="/committee/claims"' not in clerk_home


def test_grid_worker_enters_a_claim_for_a_resident_by_card(app, town, world):
    """代录: an elderly resident hands over a printed card; the grid worker scans it and enters the claim."""
    rule(world)
    with app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household, Resident

        card = db.session.get(Resident, town.r2).member_code
        several = db.session.get(Household, town.h1).member_code
        far_card = db.session.get(Resident, town.r3).member_code
    grid = client_for(app, "grid")
    queue = grid.get("/committee/claims")
    assert "代录申报" in text(queue)
    r = grid.post("/committee/claims/enter", data={"form_key": form_key(queue), "card": card.lower(),
                                                   "rule_code": "clean", "note": "代老人申报"}, follow_redirects=True)
    assert "已为李四代录申报" in text(r)
    claims = world.call("GET", "/api/v1/claims?community_code=hongxing&status=pending", "committee").get_json()["items"]
    entered = [c for c in claims if c["resident_id"] == town.r2]
    assert len(entered) == 1 and entered[0]["points"] == 10
    # The record keeps who entered it, and the queue says so.
    assert "grid" in text(grid.get("/committee/claims"))
    # A household card with several members asks which member (tests/test_paper_path.py goes on from
    # there); another community's card, or no card, are refused in words.
    r = grid.post("/committee/claims/enter", data={"form_key": "q" * 20, "card": several, "rule_code": "clean"},
                  follow_redirects=True)
    assert "是哪一位成员" in text(r) and "张三" in text(r)
    r = grid.post("/committee/claims/enter", data={"form_key": "r" * 20, "card": far_card, "rule_code": "clean"},
                  follow_redirects=True)
    assert "本社区没有" in text(r)
    # By phone number works too; a clerk and a supervisor may not enter claims.
    r = grid.post("/committee/claims/enter", data={"form_key": "s" * 20, "card": town.resident2, "rule_code": "clean"},
                  follow_redirects=True)
    assert "已为李四代录申报" in text(r)
    assert client_for(app, "clerk").post("/committee/claims/enter", data={"card": card, "rule_code": "clean"}
                                          ).status_code == 403
    assert client_for(app, "supervisor").post("/committee/claims/enter", data={"card": card, "rule_code": "clean"}
                                               ).status_code == 403
