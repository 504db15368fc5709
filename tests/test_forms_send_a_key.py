"""Every page form that creates or moves something sends a one-time key, and a form sent again is done
once, also when the answer to the first sending was lost.

A failure at COMMIT (a full disk, an I/O error, the database gone) answers 503 although the write may
have reached the database ("acknowledgement lost"). Whoever sends the same form again must then not
be charged twice: every such form carries a hidden ``form_key`` made when the page is rendered, and
its view takes the key (:func:`timebank.core.pages.take_form_key`) before it does anything. A key
already taken is said plainly (这个表单已经提交过了) together with what the first sending did.

* the static check: every POST form of every page, rendered for every role, is either keyed or on
  the short list of forms that only change a session (log in, log out); every POST page view is
  classified; a keyed form sent without its key is refused and writes nothing;
* the behaviour: the same form twice is done once (a sale at the till, a claim approval, a help
  request, a check-in, goods in);
* the fault: the first sending's commit fails after (or before) the write; the page answers 503 in
  words, and the same form sent again is done exactly once and says what happened.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from earning_support import PASSWORD, build_town, claim, rule
from timebank.core import accounts

ALREADY_SENT = "这个表单已经提交过了，没有重复办理。"
BUSY = "系统忙，请稍候重试"

#: Page views that write: their forms must carry a form_key and the view must take it first.
KEYED = {
    "web_clerk.sell",               # a sale at the till: points and stock
    "web_clerk.void",               # a void: points and stock back
    "web_clerk.stock",              # goods in (donations, purchases), corrections, spoilage
    "web_clerk.goods",              # new goods
    "web_clerk.change_goods",       # goods changed (name, barcode, limit, on sale)
    "web_clerk.change_price",       # a new price (its history grows)
    "web_clerk.goods_photo",        # a photo of goods uploaded or removed
    "web_clerk.return_goods",       # goods taken back: points and stock back
    "web_services.services",        # a service (a haircut, a meal) with places a day
    "web_partners.partners",        # a partner shop (爱心商家) with its points account
    "web_partners.link_clerk",      # a clerk login made a partner shop's
    "web_committee.enter_claim",    # a claim entered for a resident (代录)
    "web_serve.claim",              # a claim entered from the desk for a resident without a phone
    "web_serve.help_request",       # help asked, taken on or confirmed for them (minutes move)
    "web_serve.gift",               # their minutes given to kin or the pool
    "web_committee.claim_action",   # approve, reject, object
    "web_committee.tasks",          # a task with its check-in code
    "web_committee.task_teams",     # a team formed for a resident, a member added
    "web_committee.rules",          # an item of the points list
    "web_committee.change_rule",    # a new version of an item
    "web_people.households",        # a household and its card
    "web_import.upload",            # a roster file checked (kept), then imported
    "web_people.change_household",  # a household's details and care label (its history grows)
    "web_people.add_member",        # a resident added to a household that exists (committee)
    "web_people.change_resident",   # a resident's details (a login's username may follow the phone)
    "web_people.move_resident",     # a resident to another household
    "web_people.deactivate_resident",  # a resident who left: logins closed
    "web_people.guests",            # a guest taken in (a guest wallet opened)
    "web_books.month_close",        # a month-close signature
    "web_books.export_start",       # a background export of the ledger (a process reading it all)
    "web_resident.claims",          # a resident's claim
    "web_resident.tasks",           # a team formed, joined or left
    "web_resident.help_requests",   # post, accept, complete (minutes move)
    "web_resident.gift",            # minutes given
    "checkin.checkin",              # a check-in (a claim)
    "web_public.object_form",       # an objection (the claim goes back to review)
    "web_public.object_honour",     # an objection to an honour award on the notice board
    "web_public.object_deduction",  # an objection to a deduction on the notice board
    "web_honours.honours",          # a nomination for an honour
    "web_honours.new_honour",       # an honour of the list
    "web_honours.award_action",     # approve (points), reject, object, keep, withdraw an award
    "web_honours.deductions",       # a deduction entered against a household
    "web_honours.new_deduction_item",  # a deduction item of the points list
    "web_honours.deduction_action",  # approve (points taken), reject, object to a deduction
    "web_honours.ranking_settings",  # whether the public board shows the black list
    "web_logins.logins_page",       # a staff login (and its one-time password)
    "web_logins.deactivate",        # a login deactivated
    "web_logins.reset_login",       # a one-time password for a login
    "web_logins.reset_resident",    # a one-time password (and maybe a login) for a resident
    "web_logins.my_password",       # one's own new password
    "web_notices.read",             # a notice marked read
    "web_notices.read_all",         # every notice marked read
    "web_notices.dead_letter_action",  # a dead letter sent again, or moved to the printed list
    "web_notices.delivered",        # printed notices handed over
    "web_vouchers.issue",           # an hour voucher: minutes leave the resident
    "web_vouchers.redeem",          # an hour voucher of another time bank: minutes to the resident
}
#: Forms that only change the browser's session: nothing to do twice.
SESSION_ONLY = {
    "web_auth.login": "starts a session",
    "web_auth.logout": "ends a session",
}
#: POST views that no form sends: a page's script asks them (with the CSRF token), and they move
#: nothing, so a repeat only gives another answer.
SCRIPT_ONLY = {
    "web_resident.pay_code_json": "a fresh pay code and its short number for the phone's screen",
}


# --- the pages' forms ------------------------------------------------------------------------------

class FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = {"method": a.get("method", "get").lower(), "action": a.get("action", ""),
                          "id": a.get("id", ""), "fields": []}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form["fields"].append({"name": a["name"], "type": kind, "value": a.get("value", "")})
        elif tag == "textarea" and a.get("name"):
            self._form["fields"].append({"name": a["name"], "type": "textarea", "value": ""})
        elif tag == "select" and a.get("name"):
            self._select = {"name": a["name"], "type": "select", "value": None}
            self._form["fields"].append(self._select)
        elif tag == "option" and self._select is not None:
            if self._select["value"] is None or "selected" in a:
                self._select["value"] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def forms_of(response, path: str) -> list[dict]:
    parser = FormParser()
    parser.feed(response.get_data(as_text=True))
    for form in parser.forms:
        form["page"] = path
        form["action"] = form["action"] or urlsplit(path).path
    return parser.forms


def post_forms(response, path):
    return [f for f in forms_of(response, path) if f["method"] == "post"]


def key_of(form) -> str | None:
    keys = [f["value"] for f in form["fields"] if f["name"] == "form_key" and f["type"] == "hidden"]
    return keys[0] if keys else None


def filled(form, **values) -> dict:
    """What a person would send: hidden fields as rendered, a plausible value in the others."""
    data: dict[str, list[str]] = {}
    for field in form["fields"]:
        value = field["value"]
        if field["type"] != "hidden" and not value:
            value = {"number": "1", "datetime-local": "2026-03-02T12:00", "date": "2026-03-02"}.get(
                field["type"], "测试")
        data.setdefault(field["name"], []).append(value or "")
    for name, value in values.items():
        data[name] = value if isinstance(value, list) else [str(value)]
    return data


def endpoint(app, form) -> str:
    adapter = app.url_map.bind("localhost")
    name, _args = adapter.match(urlsplit(form["action"]).path, method="POST")
    return name


def text(response) -> str:
    html = response.get_data(as_text=True)
    main = html.split("<main", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def login(app, username):
    client = app.test_client()
    r = client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


def counts(app) -> dict[str, int]:
    """Rows in every table: what a refused form must leave as it was."""
    from timebank.core.extensions import db

    with app.app_context():
        return {t.name: db.session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in db.metadata.sorted_tables}


# --- a community with something on every page ------------------------------------------------------

@pytest.fixture
def town(world, clock):
    t = build_town(world)
    rule(world)                                                     # 清扫楼道, reviewed, 3 days on the board
    rule(world, code="serve", title="陪伴就医", category="neighbour_help", review="auto", publicity_days=0,
         points=1, minutes=240)
    t.pending = claim(world, t.r2, t.resident2)["id"]
    t.publicized = claim(world, t.r2, t.resident2, note="第二次")["id"]
    assert world.call("POST", f"/api/v1/claims/{t.publicized}/approve", "committee").status_code == 200
    claim(world, t.r1, t.resident1, rule_code="serve")               # 张三 earns 240 minutes
    claim(world, t.r2, t.resident2, rule_code="serve")
    for sku, name, price, barcode in (("soap", "香皂", 3, "6901111000011"), ("oil", "食用油", 45, "6901111000028")):
        r = world.call("POST", "/api/v1/items", "clerk", json={
            "community_code": "hongxing", "sku": sku, "name": name, "price_points": price, "barcode": barcode})
        assert r.status_code == 201, r.get_json()
        setattr(t, sku, r.get_json()["id"])
        r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
            "item_id": getattr(t, sku), "quantity": 10, "reason": "donation", "donor": "爱心超市之友"})
        assert r.status_code == 201, r.get_json()
    world.grant(t.h1, 100)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        t.card1 = db.session.get(Household, t.h1).member_code
    r = world.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": t.card1, "lines": [{"item_id": t.soap, "quantity": 1}]})
    assert r.status_code == 201, r.get_json()
    t.receipt = r.get_json()["id"]
    # Help: 张三 asks twice; 李四 takes the first one on.
    for title in ("陪我去卫生院", "帮忙修水管"):
        r = world.call("POST", "/api/v1/help-requests", t.resident1,
                       json={"resident_id": t.r1, "title": title, "minutes": 60})
        assert r.status_code == 201, r.get_json()
    asked = world.call("GET", "/api/v1/help-requests?community_code=hongxing", "committee").get_json()["items"]
    t.help_taken = min(h["id"] for h in asked)
    r = world.call("POST", f"/api/v1/help-requests/{t.help_taken}/accept", t.resident2,
                   json={"volunteer_id": t.r2})
    assert r.status_code == 200, r.get_json()
    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "周六清扫槐树街",
        "starts_at": clock.now().isoformat(), "ends_at": (clock.now() + timedelta(hours=2)).isoformat(),
        "slots": 5})
    assert r.status_code == 201, r.get_json()
    t.task = r.get_json()["id"]
    t.token = world.call("GET", f"/api/v1/tasks/{t.task}/checkin-code", "grid").get_json()["token"]
    # Notices: 李四 was told of the approval; a household without a phone gets a printed one; a
    # text message that failed every try is a dead letter.
    quiet = world.household(name="赵家", grid="3")
    world.resident(quiet, "赵奶奶")
    world.grant(quiet, 10)
    r = world.call("POST", "/api/v1/redemptions", "clerk", json={
        "member_code": _card(world.app, quiet), "lines": [{"item_id": t.soap, "quantity": 1}]})
    assert r.status_code == 201, r.get_json()
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.notices.models import Notification

        dead = db.session.execute(select(Notification).where(Notification.resident_id == t.r2)).scalars().first()
        dead.channel, dead.status, dead.attempts, dead.last_error = "sms", "dead", 5, "gateway answered 503"
        db.session.commit()
    # Another time bank this one trusts, so the hour-voucher page offers both of its forms.
    r = world.call("POST", "/api/v1/federation/issuers", "admin",
                   json={"origin": "qilin.example.org/timebank",
                         "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="})
    assert r.status_code == 201, r.get_json()
    # Honours and deductions: one waiting for the committee, one on the notice board, of each.
    r = world.call("POST", "/api/v1/honours", "committee", json={
        "community_code": "hongxing", "code": "civilized", "title": "文明家庭", "points": 20})
    assert r.status_code == 201, r.get_json()
    r = world.call("POST", "/api/v1/deduction-items", "committee", json={
        "community_code": "hongxing", "code": "litter", "title": "乱倒垃圾", "points": -5})
    assert r.status_code == 201, r.get_json()
    for kind, body in (("honour-awards", {"honour_code": "civilized"}), ("deductions", {"item_code": "litter"})):
        made = [world.call("POST", f"/api/v1/{kind}", "grid", json={
            "community_code": "hongxing", "household_id": household, **body}).get_json()["id"]
            for household in (t.h2, t.h1)]
        assert world.call("POST", f"/api/v1/{kind}/{made[1]}/approve", "committee").status_code == 200
        setattr(t, kind.replace("-", "_"), made[1])
    # A partner shop, and a clerk login the committee can make its own.
    r = world.call("POST", "/api/v1/partners", "committee", json={"community_code": "hongxing", "name": "幸福理发店"})
    assert r.status_code == 201, r.get_json()
    world.user("barber", "clerk")
    return t


def _card(app, household_id):
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        return db.session.get(Household, household_id).member_code


def pages_by_role(t) -> dict[str, list[str]]:
    staff = ["/committee/claims", "/committee/tasks", "/committee/rules", "/committee/households",
             "/committee/honours", "/committee/deductions",
             "/committee/month-close", "/committee/ledger", "/committee/reports", "/committee/anomalies",
             "/committee/logins", f"/committee/households/{t.h1}/logins", "/me/password", "/committee/notices",
             "/grid/notices", "/me/notices", "/committee/vouchers", "/committee/partners"]
    clerk = [f"/clerk/pos?member={t.card1}&item={t.soap}&item={t.oil}", "/clerk/receipts", "/clerk/stock",
             "/clerk/goods", f"/clerk/goods/{t.soap}", f"/clerk/receipts/{t.receipt}", "/clerk/services"]
    return {
        None: ["/login", "/public/hongxing"],
        t.resident1: ["/me/", "/me/claims", "/me/tasks", "/me/help", "/me/gift", "/me/shop",
                      f"/checkin?token={t.token}",
                      f"/public/hongxing/claims/{t.publicized}/object",
                      f"/public/hongxing/honours/{t.honour_awards}/object",
                      f"/public/hongxing/deductions/{t.deductions}/object"],
        t.resident2: ["/me/help", "/me/notices"],
        "clerk": clerk,
        "committee": staff + ["/committee/import", f"/committee/households/{t.h1}"],
        "grid": ["/committee/claims", f"/committee/serve?card={t.card1}&resident={t.r1}", "/committee/tasks",
                 "/committee/households", "/grid/notices", "/committee/honours", "/committee/deductions",
                 f"/committee/households/{t.h1}/logins", f"/committee/households/{t.h1}"],
        "super": staff + clerk,
        "admin": [p + ("&" if "?" in p else "?") + "community=hongxing" for p in staff + clerk
                  if p != "/committee/anomalies"],
    }


def rendered_forms(app, t) -> list[dict]:
    found = []
    for user, paths in pages_by_role(t).items():
        client = login(app, user) if user else app.test_client()
        for path in paths:
            r = client.get(path)
            assert r.status_code == 200, (user, path, r.status_code)
            for form in post_forms(r, path):
                form["user"] = user
                found.append(form)
    return found


# --- (a) the static check -----------------------------------------------------------------------------

def test_every_post_form_of_every_page_is_keyed_or_only_changes_a_session(app, town):
    forms = rendered_forms(app, town)
    unclassified, unkeyed, seen = [], [], set()
    keys = []
    for form in forms:
        name = endpoint(app, form)
        seen.add(name)
        if name in SESSION_ONLY:
            continue
        if name not in KEYED:
            unclassified.append((name, form["user"], form["page"]))
            continue
        key = key_of(form)
        if not key or not 8 <= len(key) <= 64:
            unkeyed.append((name, form["user"], form["page"], form["id"]))
        else:
            keys.append(key)
    assert not unclassified, f"POST forms neither keyed nor session-only: {unclassified}"
    assert not unkeyed, f"forms that write without a form_key: {unkeyed}"
    # Keys are made when the page is rendered: one per form, never shared.
    assert len(keys) == len(set(keys))
    # Every keyed view was reached through a rendered form (this check covers them all).
    assert KEYED - seen == set(), f"no page rendered a form for {KEYED - seen}"


def test_every_post_page_view_is_classified(app):
    views = {rule.endpoint for rule in app.url_map.iter_rules()
             if "POST" in (rule.methods or ()) and not rule.rule.startswith("/api/")}
    assert views - KEYED - set(SESSION_ONLY) - set(SCRIPT_ONLY) == set(), \
        "a POST page view that is neither keyed nor exempt"
    assert KEYED | set(SESSION_ONLY) | set(SCRIPT_ONLY) <= views


def test_a_keyed_form_without_its_key_is_refused_and_writes_nothing(app, town):
    forms = [f for f in rendered_forms(app, town) if endpoint(app, f) in KEYED and f["user"] != "super"]
    clients = {}
    tried = set()
    for form in forms:
        name = endpoint(app, form)
        if (name, form["user"]) in tried:
            continue
        tried.add((name, form["user"]))
        if form["user"] not in clients:
            clients[form["user"]] = login(app, form["user"])
        client = clients[form["user"]]
        data = filled(form)
        data.pop("form_key")
        before = counts(app)
        r = client.post(form["action"], data=data)
        assert r.status_code == 400, (name, form["user"], r.status_code, text(r)[:300])
        assert counts(app) == before, (name, form["user"])
    assert {name for name, _user in tried} == KEYED


# --- (b) and (c): the main forms, sent twice --------------------------------------------------------

def _count(app, query) -> int:
    from timebank.core.extensions import db

    with app.app_context():
        return db.session.execute(query).scalar_one()


class Sale:
    """A sale at the till: 2 soaps and a bottle of oil for 张家."""
    user = "clerk"
    outcome = "兑换成功：小票"

    def form(self, app, t, client):
        path = f"/clerk/pos?member={t.card1}&item={t.soap}&item={t.soap}&item={t.oil}"
        return next(f for f in post_forms(client.get(path), path) if f["id"] == "confirm-form")

    def done(self, app, t, world):
        from timebank.shop.models import Redemption

        sales = _count(app, select(func.count()).select_from(Redemption).where(
            Redemption.household_id == t.h1, Redemption.total_points == 51))
        # 100 granted, 1 earned, 3 spent in the set-up; 51 a sale here.
        assert world.balance(accounts.household_points(t.h1)) == 98 - 51 * sales
        return sales


class Approval:
    """The committee approves a claim: it goes on the notice board."""
    user = "committee"
    outcome = "已通过，公示到"

    def form(self, app, t, client):
        action = f"/committee/claims/{t.pending}/approve"
        return next(f for f in post_forms(client.get("/committee/claims"), "/committee/claims")
                    if f["action"] == action)

    def done(self, app, t, world):
        events = world.call("GET", f"/api/v1/claims/{t.pending}", "committee").get_json()["events"]
        return [e["action"] for e in events].count("approve")


class HelpRequest:
    """张三 asks for help."""
    user = "13800000001"
    outcome = "求助已发布，邻居们可以来帮忙了。"

    def form(self, app, t, client):
        form = next(f for f in post_forms(client.get("/me/help"), "/me/help") if f["id"] == "ask-help")
        return form, {"title": "帮我取药", "minutes": "30"}

    def done(self, app, t, world):
        from timebank.hours.models import HelpRequest as Model

        return _count(app, select(func.count()).select_from(Model).where(Model.title == "帮我取药"))


class CheckIn:
    """张三 opens the venue's check-in code."""
    user = "13800000001"
    outcome = "签到成功！"

    def form(self, app, t, client):
        path = f"/checkin?token={t.token}"
        return next(f for f in post_forms(client.get(path), path) if f["id"] == "checkin-form")

    def done(self, app, t, world):
        from timebank.earning.tasks import CheckIn as Model

        return _count(app, select(func.count()).select_from(Model).where(Model.task_id == t.task))


class GoodsIn:
    """The clerk records a donation of 4 bottles of oil."""
    user = "clerk"
    outcome = "已记录：食用油"

    def form(self, app, t, client):
        form = next(f for f in post_forms(client.get("/clerk/stock"), "/clerk/stock") if f["id"] == "stock-form")
        return form, {"item_id": str(t.oil), "reason": "donation", "quantity": "4", "donor": "王大妈",
                      "donor_kind": "person"}

    def done(self, app, t, world):
        from timebank.core.extensions import db
        from timebank.shop.models import Item, StockMovement

        received = _count(app, select(func.count()).select_from(StockMovement).where(
            StockMovement.donor == "王大妈"))
        with app.app_context():
            assert db.session.get(Item, t.oil).on_hand == 10 + 4 * received
        return received


CASES = [Sale(), Approval(), HelpRequest(), CheckIn(), GoodsIn()]
IDS = ["sale", "approval", "help_request", "check_in", "goods_in"]


def _prepare(app, town, case):
    client = login(app, case.user)
    got = case.form(app, town, client)
    form, values = got if isinstance(got, tuple) else (got, {})
    assert key_of(form), f"{form['id'] or form['action']} has no form_key"
    return client, form, filled(form, **values)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_same_form_twice_is_done_once(app, town, world, case):
    client, form, data = _prepare(app, town, case)
    assert case.done(app, town, world) == 0
    first = client.post(form["action"], data=data, follow_redirects=True)
    assert first.status_code in (200, 201), text(first)[:300]
    assert case.outcome in text(first) and ALREADY_SENT not in text(first)
    assert case.done(app, town, world) == 1

    again = client.post(form["action"], data=data, follow_redirects=True)
    assert again.status_code == 200, text(again)[:300]
    assert case.done(app, town, world) == 1
    # Said plainly, with what the first sending did.
    assert ALREADY_SENT in text(again), text(again)[:400]
    assert case.outcome in text(again), text(again)[:400]


@contextmanager
def commit_fails(monkeypatch, *, after_the_write: bool):
    """The next request's commit fails: after the write reached the database (the answer is lost) or
    before (nothing was written). Later requests commit as usual."""
    from timebank.core import boundary

    real = boundary.finish_request
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 1:
            if after_the_write:
                real()
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
        real()

    monkeypatch.setattr(boundary, "finish_request", failing)
    try:
        yield calls
    finally:
        monkeypatch.setattr(boundary, "finish_request", real)


@pytest.mark.parametrize("after_the_write", [True, False], ids=["answer_lost", "nothing_written"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_failed_commit_answers_503_and_the_form_sent_again_is_done_once(app, town, world, monkeypatch, case,
                                                                          after_the_write):
    client, form, data = _prepare(app, town, case)
    with commit_fails(monkeypatch, after_the_write=after_the_write) as calls:
        first = client.post(form["action"], data=data)
    assert calls, "the request did not reach its commit"
    assert first.status_code == 503, (first.status_code, text(first)[:300])
    page = first.get_data(as_text=True)
    assert BUSY in page and "Retry-After" in first.headers
    assert case.done(app, town, world) == (1 if after_the_write else 0)

    # The person sends the same form again (reload, or the till's retry): same key.
    again = client.post(form["action"], data=data, follow_redirects=True)
    assert again.status_code in (200, 201), text(again)[:300]
    assert case.done(app, town, world) == 1
    assert case.outcome in text(again), text(again)[:400]
    if after_the_write:
        assert ALREADY_SENT in text(again), text(again)[:400]
    else:
        # Nothing had been done: this time it is done, and not called a repeat; the failed sending
        # left no word of success behind.
        assert ALREADY_SENT not in text(again)
        assert text(again).count(case.outcome) == 1
