"""The roster scales and people change (issue 12): household and resident lists paged by keyset with
search and filters, the committee's roster pages and card sheets with no silent cap, and changing,
moving and deactivating people, each written to the audit log with who and why."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select, text

import ledger
from conftest import page_login
from earning_support import PASSWORD, build_town, claim, rule
from timebank.core import accounts
from timebank.core.audit_log import AuditEntry
from timebank.core.extensions import db


def words(response) -> str:
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.split("<main", 1)[-1]))


def form_key(response) -> str:
    return re.search(r'name="form_key" value="([^"]+)"', response.get_data(as_text=True)).group(1)


@pytest.fixture
def town(world):
    return build_town(world)


def many_households(app, count, community_code="hongxing", prefix="户"):
    """``count`` households with a member each, made through the operations in one transaction. Names
    repeat and some have no grid, so the roster order (grid, name, id) has ties to break."""
    from timebank.people.operations import community_by_code, create_household, create_resident

    with app.app_context():
        ids = []
        for n in range(count):
            if n % 50 == 0:  # a small session flushes fast: commit and forget every 50
                db.session.commit()
                db.session.expunge_all()
                community = community_by_code(community_code)
            grid = None if n % 7 == 0 else str(n % 5)
            household = create_household(community, f"{prefix}{n % 40}", f"槐树街{n}号", grid,
                                         ("green", "yellow", "red")[n % 3])
            create_resident(household, f"居民{n}", phone=f"139{n:08d}")
            ids.append(household.id)
        db.session.commit()
        return ids


def all_pages(world, url, user, limit, cursor=None):
    seen, pages = [], 0
    while pages < 1000:
        r = world.call("GET", url + f"&limit={limit}" + (f"&cursor={cursor}" if cursor else ""), user)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
    raise AssertionError("the cursor never ran out")


def audit(app, action):
    with app.app_context():
        return [(e.actor, json.loads(e.details), e.target) for e in db.session.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).scalars()]


# --- rosters that scale ------------------------------------------------------------------------------

def test_household_list_pages_through_every_household_once(app, world, town):
    ids = many_households(app, 330) + [town.h1, town.h2]
    seen, pages = all_pages(world, "/api/v1/households?community_code=hongxing", "committee", 37)
    assert len(seen) == len(set(seen)) == 332 and set(seen) == set(ids)
    assert pages == 9  # 332 / 37, no silent stop at 300
    # A household registered while someone pages is neither repeated nor does it hide another.
    first = world.call("GET", "/api/v1/households?community_code=hongxing&limit=100", "committee").get_json()
    new = world.household(name="户0", grid="0")
    rest, _ = all_pages(world, "/api/v1/households?community_code=hongxing", "committee", 100,
                        cursor=first["next_cursor"])
    together = [item["id"] for item in first["items"]] + rest
    assert len(together) == len(set(together)) and set(together) >= set(ids)  # the new one at most once
    assert set(together) - set(ids) <= {new}
    # The roster order: grid (none first), then name, then id.
    with app.app_context():
        from timebank.people.models import Household
        expected = [h.id for h in db.session.execute(select(Household).where(Household.community_id == 1).order_by(
            db.func.coalesce(Household.grid, ""), Household.name, Household.id)).scalars()]
    assert all_pages(world, "/api/v1/households?community_code=hongxing", "grid", 50)[0] == expected
    # The filters page through too.
    reds, _ = all_pages(world, "/api/v1/households?community_code=hongxing&color=red", "clerk", 29)
    assert len(reds) == len(set(reds)) == 110 + 1  # a third of the 330, and 李家


def test_household_search_and_fields(app, world, town):
    with app.app_context():
        from timebank.people.models import Household, Resident
        h1 = db.session.get(Household, town.h1)
        card, address = h1.member_code, h1.address
        resident_card = db.session.get(Resident, town.r2).member_code
    world.grant(town.h1, 25)

    def found(query, user="committee"):
        r = world.call("GET", f"/api/v1/households?community_code=hongxing&{query}", user)
        assert r.status_code == 200, r.get_json()
        return {item["id"]: item for item in r.get_json()["items"]}

    assert set(found("q=张小妹")) == {town.h1}               # a member's name
    assert set(found("q=00000002")) == {town.h2}             # part of a member's phone
    assert set(found("q=" + card.lower())) == {town.h1}      # the household's card code, as typed
    assert set(found("q=" + resident_card)) == {town.h2}     # a member's card code
    assert set(found("q=李")) == {town.h2}                   # the household's name
    assert set(found("q=%")) == set()                        # LIKE characters are text
    assert town.h1 in found("q=" + address[:3])
    assert set(found("grid=2")) == {town.h2} and set(found("color=red")) == {town.h2}
    item = found("q=张家")[town.h1]
    assert item["balance_points"] == 25 and item["member_code"] == card and item["community_code"] == "hongxing"
    assert {m["name"] for m in item["members"]} == {"张三", "张小妹", "张主任"}
    assert all(m["active"] for m in item["members"])
    assert town.h3 not in found("q=王")                      # another community's household


def test_resident_list(app, world, town):
    many_households(app, 60)
    seen, _ = all_pages(world, "/api/v1/residents?community_code=hongxing", "committee", 17)
    assert len(seen) == len(set(seen)) == 64
    r = world.call("GET", f"/api/v1/residents?community_code=hongxing&household_id={town.h1}", "grid").get_json()
    assert {i["name"] for i in r["items"]} == {"张三", "张小妹", "张主任"} and r["next_cursor"] is None
    row = next(i for i in r["items"] if i["name"] == "张三")
    assert row["phone"] == "13800000001" and row["active"] is True and row["household_name"] == "张家"
    q = world.call("GET", "/api/v1/residents?community_code=hongxing&q=13800000002", "clerk").get_json()
    assert [i["id"] for i in q["items"]] == [town.r2]
    assert world.call("GET", "/api/v1/residents?q=居民5", "committee").get_json()["items"]  # own community by default


def test_who_reads_the_lists(world, town):
    for user in ("committee", "grid", "clerk", "super"):
        assert world.call("GET", "/api/v1/households", user).status_code == 200, user
    assert world.call("GET", "/api/v1/households?community_code=hongxing", "other_committee").status_code == 403
    assert world.call("GET", "/api/v1/residents?community_code=hongxing", town.resident1).status_code == 403
    r = world.call("GET", "/api/v1/households", "admin")
    assert r.status_code == 422 and "community_code" in r.get_json()["errors"]
    assert world.call("GET", "/api/v1/households?community_code=lvye", "admin").status_code == 200
    for cursor in ("nonsense", "WzEsMiwzXQ", "W251bGwsIngiLDFd", "x" * 1200):
        r = world.call("GET", f"/api/v1/households?cursor={cursor}", "committee")
        assert r.status_code == 422 and r.get_json()["errors"].get("cursor"), cursor
    assert world.call("GET", "/api/v1/residents?cursor=WyJhIl0", "committee").status_code == 422
    assert world.call("GET", "/api/v1/households?color=blue", "committee").status_code == 422


def test_roster_page_pages_through_every_household(app, world, town):
    ids = many_households(app, 310) + [town.h1, town.h2]
    committee = page_login(app, "committee")
    seen, url, pages = [], "/committee/households", 0
    while url:
        r = committee.get(url)
        assert r.status_code == 200
        html = r.get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'data-household="(\d+)"', html)]
        assert "312" in words(r)  # the count of matches, on every page
        nxt = re.search(r'id="next-page" href="([^"]+)"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
        pages += 1
    assert pages == 4 and len(seen) == len(set(seen)) == 312 and set(seen) == set(ids)
    # Search and filters on the page are the API's.
    r = committee.get("/committee/households?q=13800000002")
    assert re.findall(r'data-household="(\d+)"', r.get_data(as_text=True)) == [str(town.h2)]
    r = committee.get("/committee/households?color=red&grid=2&q=李")
    assert re.findall(r'data-household="(\d+)"', r.get_data(as_text=True)) == [str(town.h2)]
    assert committee.get("/committee/households?color=blue", follow_redirects=True).status_code == 200
    assert "%(" not in words(committee.get("/committee/households?cursor=bad", follow_redirects=True))


def test_card_sheet_prints_any_selection(app, world, town):
    many_households(app, 420, prefix="卡")
    committee = page_login(app, "committee")
    first = committee.get("/committee/households/cards?q=卡")
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and html.count('class="member-card"') == 400
    assert html.count('class="sheet"') == 50 and "420" in html
    nxt = re.search(r'id="next-part" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    second = committee.get(nxt).get_data(as_text=True)
    assert second.count('class="member-card"') == 20 and 'id="next-part"' not in second
    codes = re.findall(r'data-code="([^"]+)"', html) + re.findall(r'data-code="([^"]+)"', second)
    assert len(codes) == len(set(codes)) == 420
    # Every card in one document, streamed.
    whole = committee.get("/committee/households/cards?q=卡&all=1")
    assert whole.is_streamed
    body = whole.get_data(as_text=True)
    assert sorted(re.findall(r'data-code="([^"]+)"', body)) == sorted(codes)
    assert body.count('class="sheet"') == 53 and body.count("<svg") == 420 and "@page { size: A4" in body
    # A chosen few, and only active members on a card.
    assert world.call("POST", f"/api/v1/residents/{town.r1b}/deactivate", "committee",
                      json={"reason": "迁出"}).status_code == 200
    few = committee.get(f"/committee/households/cards?id={town.h1}&id={town.h2}").get_data(as_text=True)
    assert few.count('class="member-card"') == 2 and "张小妹" not in few and "张三" in few


# --- people change: households -----------------------------------------------------------------------

def test_care_label_change_keeps_its_history(app, world, town):
    r = world.call("PATCH", f"/api/v1/households/{town.h1}", "grid", json={"color": "red", "reason": "独居老人"})
    assert r.status_code == 200 and r.get_json()["color"] == "red"
    r = world.call("PATCH", f"/api/v1/households/{town.h1}", "committee",
                   json={"color": "yellow", "name": "张氏家", "address": "槐树街9号", "grid": "3"})
    assert r.status_code == 200
    body = r.get_json()
    assert (body["name"], body["address"], body["grid"], body["color"]) == ("张氏家", "槐树街9号", "3", "yellow")
    # Nothing changed: nothing written.
    same = world.call("PATCH", f"/api/v1/households/{town.h1}", "committee", json={"color": "yellow"})
    assert same.status_code == 200
    with app.app_context():
        from timebank.people.models import CareLabelChange
        rows = db.session.execute(select(CareLabelChange).order_by(CareLabelChange.id)).scalars().all()
        assert [(c.from_color, c.to_color, c.actor, c.reason) for c in rows] == [
            ("green", "red", "grid", "独居老人"), ("red", "yellow", "committee", "")]
    changes = audit(app, "household.change")
    assert len(changes) == 2 and changes[0][1]["reason"] == "独居老人"
    assert changes[1][1]["changes"]["name"] == ["张家", "张氏家"] and changes[1][0] == "committee"
    # The history is append-only: the database refuses to change or remove it.
    for statement in ("UPDATE care_label_changes SET to_color = 'green'", "DELETE FROM care_label_changes"):
        with app.app_context():
            with pytest.raises(Exception, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
    # Who may not.
    assert world.call("PATCH", f"/api/v1/households/{town.h1}", "super", json={"color": "red"}).status_code == 403
    assert world.call("PATCH", f"/api/v1/households/{town.h1}", "clerk", json={"color": "red"}).status_code == 403
    assert world.call("PATCH", f"/api/v1/households/{town.h1}", "other_committee", json={"color": "red"}).status_code \
        == 404
    assert world.call("PATCH", f"/api/v1/households/{town.h1}", town.resident1, json={"color": "red"}).status_code \
        == 403
    for bad in ({"color": "blue"}, {"name": ""}, {"name": "x" * 201}, {"reason": "x" * 501}):
        r = world.call("PATCH", f"/api/v1/households/{town.h1}", "committee", json=bad)
        assert r.status_code == 422, bad


# --- people change: residents ------------------------------------------------------------------------

def test_resident_change_phone_keeps_the_login(app, world, town):
    assert world.call("PATCH", f"/api/v1/residents/{town.r1}", "grid",
                      json={"phone": "13800000002"}).get_json()["error"] == "phone_taken"
    r = world.call("PATCH", f"/api/v1/residents/{town.r1}", "grid",
                   json={"phone": "13900000001", "name": "张叁", "birth_year": 1950, "reason": "换号"})
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["phone"], r.get_json()["name"], r.get_json()["birth_year"]) == ("13900000001", "张叁", 1950)
    # The login follows the phone: the new number logs in, the old one does not.
    new = world.client.post("/api/v1/auth/token", json={"username": "13900000001", "password": PASSWORD})
    assert new.status_code == 200
    old = world.client.post("/api/v1/auth/token", json={"username": "13800000001", "password": PASSWORD})
    assert old.status_code == 401
    # A login that has the phone as its username is taken care of; another login holding it refuses.
    world.user("13700000000", "clerk")
    r = world.call("PATCH", f"/api/v1/residents/{town.r1}", "committee", json={"phone": "13700000000"})
    assert r.status_code == 409 and r.get_json()["error"] == "username_taken"
    r = world.call("PATCH", f"/api/v1/residents/{town.r1}", "committee", json={"phone": None})
    assert r.status_code == 422 and "phone" in r.get_json()["errors"]
    # A resident without a login may lose the phone.
    assert world.call("PATCH", f"/api/v1/residents/{town.c1_resident}", "committee",
                      json={"phone": "13600000000"}).status_code == 200
    assert world.call("PATCH", f"/api/v1/residents/{town.c1_resident}", "committee",
                      json={"phone": None}).get_json()["phone"] is None
    logged = audit(app, "resident.change")
    assert logged[0][1]["reason"] == "换号" and logged[0][1]["changes"]["phone"] == "changed"
    assert "13900000001" not in json.dumps(logged[0][1])
    for bad in ({"phone": "12ab"}, {"birth_year": 1800}, {"name": ""}):
        assert world.call("PATCH", f"/api/v1/residents/{town.r1}", "committee", json=bad).status_code == 422
    assert world.call("PATCH", f"/api/v1/residents/{town.r1}", "super", json={"name": "x"}).status_code == 403
    assert world.call("PATCH", f"/api/v1/residents/{town.r3}", "committee", json={"name": "x"}).status_code == 404


def test_move_points_stay_minutes_go(app, world, town):
    rule(world, code="serve", title="陪伴就医", category="neighbour_help", review="auto", publicity_days=0,
         points=5, minutes=120)
    claim(world, town.r1, town.resident1, rule_code="serve")        # earned in 张家
    minutes = accounts.resident_minutes(town.r1)
    assert world.balance(accounts.household_points(town.h1)) == 5 and world.balance(minutes) == 120
    r = world.call("POST", f"/api/v1/residents/{town.r1}/move", "grid", json={"household_id": town.h2,
                                                                             "reason": "结婚搬入李家"})
    assert r.status_code == 200 and r.get_json()["household_id"] == town.h2
    assert r.get_json()["hours_balance_minutes"] == 120
    assert world.balance(accounts.household_points(town.h1)) == 5   # the points stay
    assert world.balance(accounts.household_points(town.h2)) == 0
    assert world.balance(minutes) == 120                            # the minutes went with the person
    # From now on the person earns for, and sees, the new household.
    claim(world, town.r1, town.resident1, rule_code="serve")
    assert world.balance(accounts.household_points(town.h2)) == 5
    assert world.call("GET", f"/api/v1/households/{town.h2}", town.resident1).status_code == 200
    assert world.call("GET", f"/api/v1/households/{town.h1}", town.resident1).status_code == 404
    assert audit(app, "resident.move")[0][1] == {"from_household_id": town.h1, "to_household_id": town.h2,
                                                  "reason": "结婚搬入李家"}
    r = world.call("POST", f"/api/v1/residents/{town.r1}/move", "committee", json={"household_id": town.h3})
    assert r.status_code == 409 and r.get_json()["error"] == "other_community"
    r = world.call("POST", f"/api/v1/residents/{town.r1}/move", "committee", json={"household_id": town.h2})
    assert r.status_code == 409 and r.get_json()["error"] == "same_household"
    assert world.call("POST", f"/api/v1/residents/{town.r1}/move", "committee",
                      json={"household_id": 99999}).status_code == 422
    assert world.call("POST", f"/api/v1/residents/{town.r1}/move", "super",
                      json={"household_id": town.h1}).status_code == 403
    assert world.call("POST", f"/api/v1/residents/{town.r1}/move", "clerk",
                      json={"household_id": town.h1}).status_code == 403


def test_deactivate_closes_logins_and_stops_earning(app, world, town):
    rule(world, code="serve", title="陪伴就医", category="neighbour_help", review="review", publicity_days=0,
         points=5, minutes=60)
    pending = claim(world, town.r1, "committee", rule_code="serve")["id"]   # entered before 张三 left
    token = world.headers(town.resident1)
    session = page_login(app, town.resident1)
    assert session.get("/me/").status_code == 200
    r = world.call("POST", f"/api/v1/residents/{town.r1}/deactivate", "grid", json={"reason": "去世"})
    assert r.status_code == 200 and r.get_json()["active"] is False and r.get_json()["left_at"]
    # Their login is closed at once: token, page session, new logins.
    assert world.client.get("/api/v1/me", headers=token).status_code == 401
    assert session.get("/me/").status_code in (302, 401)
    assert world.client.post("/api/v1/auth/token", json={"username": town.resident1,
                                                         "password": PASSWORD}).status_code == 401
    # Not active on the rosters, history kept.
    rows = world.call("GET", "/api/v1/residents?community_code=hongxing&active=false", "committee").get_json()
    assert [i["id"] for i in rows["items"]] == [town.r1]
    item = world.call("GET", "/api/v1/households?q=张家", "committee").get_json()["items"][0]
    assert {m["name"]: m["active"] for m in item["members"]}["张三"] is False
    # Nobody claims, checks in, or moves minutes for them any more.
    r = world.call("POST", "/api/v1/claims", "committee", json={
        "community_code": "hongxing", "rule_code": "serve", "resident_id": town.r1})
    assert r.status_code == 409 and r.get_json()["error"] == "resident_inactive"
    r = world.call("POST", "/api/v1/help-requests", town.resident2, json={"resident_id": town.r2, "title": "修水管",
                                                                        "minutes": 30})
    assert r.status_code == 201
    r = world.call("POST", f"/api/v1/help-requests/{r.get_json()['id']}/accept", "committee",
                   json={"volunteer_id": town.r1})
    assert r.status_code == 409 and r.get_json()["error"] == "resident_inactive"
    r = world.call("POST", "/api/v1/hours/transfers", town.resident1b, json={
        "from_resident_id": town.r1b, "to_resident_id": town.r1, "minutes": 1})
    assert r.status_code == 409 and r.get_json()["error"] == "resident_inactive"
    # A claim entered before they left still brings its points to the household; the minutes go to the pool.
    assert world.call("POST", f"/api/v1/claims/{pending}/approve", "grid").get_json()["status"] == "posted"
    assert world.balance(accounts.household_points(town.h1)) == 5
    assert world.balance(accounts.resident_minutes(town.r1)) == 0
    with app.app_context():
        assert ledger.balance(db.session, accounts.pool_minutes(1)) == 60
    # Once is enough; the record stays as it was.
    r = world.call("POST", f"/api/v1/residents/{town.r1}/deactivate", "committee", json={"reason": "again"})
    assert r.status_code == 409 and r.get_json()["error"] == "resident_inactive"
    r = world.call("POST", f"/api/v1/residents/{town.r1}/move", "committee", json={"household_id": town.h2})
    assert r.status_code == 409 and r.get_json()["error"] == "resident_inactive"
    assert world.call("POST", f"/api/v1/residents/{town.r2}/deactivate", "committee", json={}).status_code == 422
    assert world.call("POST", f"/api/v1/residents/{town.r2}/deactivate", "super",
                      json={"reason": "x"}).status_code == 403
    logged = audit(app, "resident.deactivate")
    assert logged[0][0] == "grid" and logged[0][1]["reason"] == "去世" and len(logged[0][1]["logins_closed"]) == 1


def test_deactivating_a_staff_member_closes_their_staff_login(app, world, town):
    token = world.headers("committee_h1")
    assert world.call("POST", f"/api/v1/residents/{town.c1_resident}/deactivate", "committee",
                      json={"reason": "迁出本社区"}).status_code == 200
    assert world.client.get("/api/v1/me", headers=token).status_code == 401


# --- the household page --------------------------------------------------------------------------------

def test_household_page_shows_and_changes(app, world, town):
    world.grant(town.h1, 42)
    committee = page_login(app, "committee")
    roster = committee.get("/committee/households")
    assert f'/committee/households/{town.h1}"' in roster.get_data(as_text=True)
    page = committee.get(f"/committee/households/{town.h1}")
    assert page.status_code == 200
    assert "张小妹" in words(page) and "42" in words(page) and "household-change" in page.get_data(as_text=True)

    r = committee.post(f"/committee/households/{town.h1}/change", data={
        "form_key": form_key(page), "name": "张家", "address": "幸福路1号", "grid": "1", "color": "red",
        "reason": "老人独居"}, follow_redirects=True)
    assert r.status_code == 200 and "老人独居" in words(r)
    history = r.get_data(as_text=True).split('id="care-history"')[1].split("</table>")[0]
    assert "badge green" in history and "badge red" in history

    # Page forms are bounded as the API: nothing is cut short or taken out of range.
    page = committee.get(f"/committee/households/{town.h1}")
    r = committee.post(f"/committee/residents/{town.r1}/change", data={
        "form_key": form_key(page), "name": "张三", "phone": "13800000001", "birth_year": "3000"},
        follow_redirects=True)
    assert "1900" in words(r) and "2100" in words(r)
    r = committee.post(f"/committee/households/{town.h1}/change", data={
        "form_key": form_key(page) + "x", "name": "张" * 201, "color": "green"}, follow_redirects=True)
    assert "张" * 201 not in r.get_data(as_text=True)
    with app.app_context():
        from timebank.people.models import Household, Resident
        assert db.session.get(Resident, town.r1).birth_year is None
        assert db.session.get(Household, town.h1).name == "张家"

    page = committee.get(f"/committee/households/{town.h1}")
    r = committee.post(f"/committee/residents/{town.r1}/change", data={
        "form_key": form_key(page), "name": "张三", "phone": "13800000002", "birth_year": ""}, follow_redirects=True)
    assert r.status_code == 200 and "手机号" in words(r)
    with app.app_context():
        from timebank.people.models import Household, Resident
        assert db.session.get(Resident, town.r1).phone == "13800000001"   # phone_taken, said in words
        card2 = db.session.get(Household, town.h2).member_code

    page = committee.get(f"/committee/households/{town.h1}")
    r = committee.post(f"/committee/residents/{town.r1b}/move", data={
        "form_key": form_key(page), "household_code": card2.lower(), "reason": "出嫁"}, follow_redirects=True)
    assert r.status_code == 200 and "李家" in words(r)
    page = committee.get(f"/committee/households/{town.h1}")
    assert "张小妹" not in words(page)
    r = committee.post(f"/committee/residents/{town.r1}/deactivate", data={
        "form_key": form_key(page), "reason": ""}, follow_redirects=True)
    with app.app_context():
        from timebank.people.models import Resident
        assert db.session.get(Resident, town.r1).active is True
    r = committee.post(f"/committee/residents/{town.r1}/deactivate", data={
        "form_key": form_key(page) + "y", "reason": "去世"}, follow_redirects=True)
    with app.app_context():
        from timebank.people.models import Resident
        assert db.session.get(Resident, town.r1).active is False
    assert 'class="inactive"' in committee.get(f"/committee/households/{town.h1}").get_data(as_text=True)
    assert [a[1]["reason"] for a in audit(app, "resident.move")] == ["出嫁"]

    # Supervisors see it and change nothing; another community's committee does not see it.
    supervisor = page_login(app, "super")
    seen = supervisor.get(f"/committee/households/{town.h1}")
    assert seen.status_code == 200 and "household-change" not in seen.get_data(as_text=True)
    assert supervisor.post(f"/committee/households/{town.h1}/change",
                           data={"form_key": "k" * 20, "name": "x", "color": "green"}).status_code == 403
    assert page_login(app, "other_committee").get(f"/committee/households/{town.h1}").status_code == 404


def test_committee_adds_a_member_on_the_household_page(app, world, town):
    """Registration on the pages is whole: a household registered with its first member gets the
    others from its page (the committee only, as the API: each member can spend the household's points)."""
    committee = page_login(app, "committee")
    page = committee.get(f"/committee/households/{town.h1}")
    assert 'id="add-member"' in page.get_data(as_text=True)
    key = form_key(page)
    r = committee.post(f"/committee/households/{town.h1}/members", data={
        "form_key": key, "name": "张奶奶", "phone": "", "birth_year": "1941"}, follow_redirects=True)
    assert r.status_code == 200 and "张奶奶" in words(r)
    again = committee.post(f"/committee/households/{town.h1}/members", data={
        "form_key": key, "name": "张奶奶", "phone": "", "birth_year": "1941"}, follow_redirects=True)
    assert again.status_code == 200  # the same form twice: done once
    with app.app_context():
        from timebank.people.models import Resident

        added = db.session.execute(select(Resident).where(Resident.name == "张奶奶")).scalars().all()
        assert len(added) == 1 and added[0].household_id == town.h1 and added[0].birth_year == 1941
        assert added[0].phone is None and added[0].member_code
        assert ledger.balance(db.session, accounts.resident_minutes(added[0].id)) == 0  # the wallet is open
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "resident.create")).scalars().one()
        assert entry.target == f"resident:{added[0].id}"

    page = committee.get(f"/committee/households/{town.h1}")  # a phone another resident has: said in words
    r = committee.post(f"/committee/households/{town.h1}/members", data={
        "form_key": form_key(page), "name": "某人", "phone": "13800000002"}, follow_redirects=True)
    assert "手机号" in words(r)

    grid = page_login(app, "grid")  # a grid worker registers households but adds nobody to one
    page = grid.get(f"/committee/households/{town.h1}")
    assert 'id="add-member"' not in page.get_data(as_text=True)
    grid.post(f"/committee/households/{town.h1}/members", data={"form_key": form_key(page), "name": "假人"})
    with app.app_context():
        from timebank.people.models import Resident

        assert db.session.execute(select(Resident).where(Resident.name.in_(("某人", "假人")))).first() is None
