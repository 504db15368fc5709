"""The paper path (issue 16 part 3): a grid worker serves a resident without a phone from the printed
card -- a household card of several members asks which member, claims, help requests and gifts of
minutes are entered for the resident, and member cards print per person as well as per household."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from conftest import main_text, page_login
from earning_support import build_town, rule
from timebank.core import accounts


@pytest.fixture
def town(world):
    t = build_town(world)
    rule(world)  # 清扫楼道: reviewed, 3 days on the board
    rule(world, code="serve", title="陪伴就医", category="neighbour_help", review="auto", publicity_days=0,
         points=1, minutes=240)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household, Resident

        t.card1 = db.session.get(Household, t.h1).member_code    # 张家: 张三, 张小妹, 张主任
        t.card2 = db.session.get(Household, t.h2).member_code    # 李家: 李四 alone
        t.person1 = db.session.get(Resident, t.r1).member_code
    return t


def claims_of(app, **where):
    from timebank.core.extensions import db
    from timebank.earning.models import Claim

    with app.app_context():
        query = select(Claim)
        for name, value in where.items():
            query = query.where(getattr(Claim, name) == value)
        return [(c.resident_id, c.entered_by_user_id, c.entered_for_resident)
                for c in db.session.execute(query).scalars()]


def user_id(app, username):
    from timebank.core.extensions import db
    from timebank.core.users import User

    with app.app_context():
        return db.session.execute(select(User.id).where(User.username == username)).scalar_one()


def test_a_household_card_of_several_members_asks_which_member(app, town):
    grid = page_login(app, "grid")
    form = {"card": town.card1, "rule_code": "clean", "note": "楼道", "form_key": "k" * 16}
    r = grid.post("/committee/claims/enter", data=form)
    assert r.status_code == 200
    words = main_text(r)
    assert "选择" in words and "张三" in words and "张小妹" in words and "张主任" in words
    assert "请扫描居民本人的卡" not in words
    html = r.get_data(as_text=True)
    chosen = re.findall(r'name="resident_id" value="(\d+)"', html)
    assert sorted(map(int, chosen)) == sorted([town.r1, town.r1b, town.c1_resident])
    key = re.search(r'name="form_key" value="([^"]+)"', html).group(1)
    assert claims_of(app) == []                                  # nothing entered yet

    # A member of another household is not a choice: the question is asked again.
    r = grid.post("/committee/claims/enter", data={**form, "resident_id": town.r2, "form_key": key})
    assert r.status_code == 200 and claims_of(app) == []

    r = grid.post("/committee/claims/enter", data={**form, "resident_id": town.r1b, "form_key": key})
    assert r.status_code == 302
    assert claims_of(app) == [(town.r1b, user_id(app, "grid"), True)]
    assert "张小妹" in main_text(grid.get(r.headers["Location"]))
    # The same form again enters nothing twice.
    grid.post("/committee/claims/enter", data={**form, "resident_id": town.r1b, "form_key": key})
    assert len(claims_of(app)) == 1

    # A household of one, a resident's own card and a phone number go straight through.
    for n, card in enumerate((town.card2, town.person1, "13800000002")):
        r = grid.post("/committee/claims/enter", data={**form, "card": card, "form_key": f"direct-key-{n}"})
        assert r.status_code == 302, main_text(r)[:300]
    assert sorted(c[0] for c in claims_of(app)) == sorted([town.r1b, town.r2, town.r1, town.r2])
    # An unknown card is said in words.
    r = grid.post("/committee/claims/enter", data={**form, "card": "HNOSUCHCARD", "form_key": "unknown-key-1"},
                  follow_redirects=True)
    assert "没有办成" in main_text(r)


def test_the_desk_serves_a_resident_from_the_card(app, world, town):
    grid = page_login(app, "grid")
    r = grid.get(f"/committee/serve?card={town.card1}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert f"resident={town.r1b}" in html and 'id="serving"' not in html   # which member?
    r = grid.get(f"/committee/serve?card={town.card1}&resident={town.r1}")
    assert r.status_code == 200 and 'id="serving"' in r.get_data(as_text=True)
    assert "张三" in main_text(r)
    assert grid.get("/committee/serve?card=HNOSUCHCARD").status_code == 404

    def post(path, **data):
        page = grid.get(f"/committee/serve?card={town.person1}").get_data(as_text=True)
        key = re.findall(r'name="form_key" value="([^"]+)"', page)[0]
        response = grid.post(path, data={"form_key": key, **data})
        assert response.status_code == 302, main_text(response)[:300]
        return main_text(grid.get(response.headers["Location"]))

    # A claim entered for 张三 (代录), recorded as entered by the grid worker.
    said = post(f"/committee/serve/{town.r1}/claim", rule_code="serve", note="陪李四就医")
    assert "张三" in said
    assert claims_of(app, resident_id=town.r1) == [(town.r1, user_id(app, "grid"), True)]
    assert world.balance(accounts.resident_minutes(town.r1)) == 240

    # Help asked for 张三; 李四 takes it on (on the phone); the grid worker confirms for 张三.
    post(f"/committee/serve/{town.r1}/help", action="post", title="帮忙换灯泡", minutes="60")
    grid_id = user_id(app, "grid")
    from timebank.core.extensions import db
    from timebank.hours.models import HelpRequest

    with app.app_context():
        asked = db.session.execute(select(HelpRequest)).scalar_one()
        assert (asked.requester_id, asked.created_by_user_id) == (town.r1, grid_id)
        asked_id = asked.id
    r = world.call("POST", f"/api/v1/help-requests/{asked_id}/accept", town.resident2, json={"volunteer_id": town.r2})
    assert r.status_code == 200, r.get_json()
    said = post(f"/committee/serve/{town.r1}/help", action="complete", request_id=str(asked_id))
    assert "李四" in said
    assert world.balance(accounts.resident_minutes(town.r1)) == 180
    assert world.balance(accounts.resident_minutes(town.r2)) == 60

    # 张三 helps a neighbour: a request of 李四 taken on for him.
    r = world.call("POST", "/api/v1/help-requests", town.resident2,
                   json={"resident_id": town.r2, "title": "陪我买菜", "minutes": 30})
    other = r.get_json()["id"]
    assert f'value="{other}"' in grid.get(f"/committee/serve?card={town.person1}").get_data(as_text=True)
    post(f"/committee/serve/{town.r1}/help", action="accept", request_id=str(other))
    with app.app_context():
        assert db.session.get(HelpRequest, other).volunteer_id == town.r1

    # Gifts of his minutes: to his kin, and to the pool.
    post(f"/committee/serve/{town.r1}/gift", to=str(town.r1b), minutes="30")
    post(f"/committee/serve/{town.r1}/gift", to="pool", minutes="50")
    assert world.balance(accounts.resident_minutes(town.r1)) == 100
    assert world.balance(accounts.resident_minutes(town.r1b)) == 30
    # Not to someone of another household.
    page = grid.get(f"/committee/serve?card={town.person1}").get_data(as_text=True)
    key = re.findall(r'name="form_key" value="([^"]+)"', page)[0]
    r = grid.post(f"/committee/serve/{town.r1}/gift", data={"form_key": key, "to": str(town.r2), "minutes": "10"},
                  follow_redirects=True)
    assert world.balance(accounts.resident_minutes(town.r2)) == 60 and "没有办成" in main_text(r)


def test_the_desk_is_read_only_for_supervisors_and_fenced_by_community(app, world, town):
    supervisor = page_login(app, "super")
    r = supervisor.get(f"/committee/serve?card={town.person1}")
    assert r.status_code == 200 and "张三" in main_text(r) and 'method="post"' not in \
        r.get_data(as_text=True).split("<main", 1)[1]
    assert supervisor.post(f"/committee/serve/{town.r1}/gift",
                           data={"form_key": "k" * 16, "to": "pool", "minutes": "5"}).status_code == 403
    other = page_login(app, "other_committee")
    assert other.get(f"/committee/serve?card={town.person1}").status_code == 404
    assert other.post(f"/committee/serve/{town.r1}/gift",
                      data={"form_key": "k" * 16, "to": "pool", "minutes": "5"}).status_code in (403, 404)
    assert world.balance(accounts.pool_minutes(1)) == 0


def test_member_cards_print_per_person_as_well_as_per_household(app, world, town):
    grid = page_login(app, "grid")
    per_household = grid.get(f"/committee/households/cards?id={town.h1}").get_data(as_text=True)
    assert re.findall(r'data-code="([^"]+)"', per_household) == [town.card1]
    per_person = grid.get(f"/committee/households/cards?id={town.h1}&id={town.h2}&per=person")
    html = per_person.get_data(as_text=True)
    codes = re.findall(r'data-code="([^"]+)"', html)
    assert len(codes) == 4 and town.person1 in codes and all(c.startswith("R") for c in codes)
    assert html.count("<svg") == 4 and "张小妹" in html and "李四" in html and "@page { size: A4" in html
    # The QR holds the person's code, which the till reads as this person of the household.
    import segno

    assert segno.make(town.person1, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff",
                                                        omitsize=True) in html
    till = page_login(app, "clerk").get(f"/clerk/pos?member={town.person1}")
    assert till.status_code == 200 and "张家" in main_text(till) and "张三" in main_text(till)
    # Whole documents stream too; a member who left gets no card.
    assert world.call("POST", f"/api/v1/residents/{town.r1b}/deactivate", "committee",
                      json={"reason": "迁出"}).status_code == 200
    whole = grid.get(f"/committee/households/cards?id={town.h1}&per=person&all=1")
    assert whole.is_streamed
    body = whole.get_data(as_text=True)
    assert body.count('class="member-card"') == 2 and "张小妹" not in body
    # The household page links to both prints and to the desk.
    page = grid.get(f"/committee/households/{town.h1}").get_data(as_text=True)
    assert "per=person" in page and "/committee/serve?card=" in page
