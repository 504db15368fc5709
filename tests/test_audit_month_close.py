"""Month close (月结): two different committee members, a signed statement, and the posting guard."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timezone

import pytest

import ledger
from ledger import checkpoint as notes


@pytest.fixture
def month_world(world):
    world.user("chair", "committee")
    world.user("vice", "committee")
    world.user("watcher", "supervisor")
    world.user("grid1", "grid_worker")
    world.community("other", "别的社区")
    world.user("outsider", "committee", community_code="other")
    world.hh = world.household()
    post_points(world.app, world.hh, 30, category="volunteer")
    post_points(world.app, world.hh, 12, category="moral")
    return world


def post_points(app, household_id, points, now=None, category="red"):
    """Post through the application's ledger wrapper (where the guards sit)."""
    from timebank.core import accounts, ledgering
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with app.app_context():
        h = db.session.get(Household, household_id)
        tx = ledgering.post(h.community_id, [
            ledger.Leg(accounts.issuance_points(h.community_id, category), -points),
            ledger.Leg(accounts.household_points(household_id), points)],
            kind="grant", category=category, memo="test", actor="test", now=now)
        db.session.commit()
        return tx.id


APRIL = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 1 April 00:00 in Shanghai: March has ended


def sign(world, who, month="2026-03", code="hongxing"):
    return world.call("POST", "/api/v1/month-closes", who, json={"community_code": code, "month": month})


def test_two_signers_close_the_month_with_a_signed_statement(month_world, app, clock):
    world = month_world
    clock.set(APRIL)
    r = sign(world, "chair")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["status"] == "pending_second" and r.get_json()["statement"] is None
    r = sign(world, "chair")
    assert r.status_code == 409 and r.get_json()["error"] == "same_signer"
    clock.advance(hours=1)
    r = sign(world, "vice")
    assert r.status_code == 201
    body = r.get_json()
    assert body["status"] == "closed" and [s["username"] for s in body["signoffs"]] == ["chair", "vice"]
    st = body["statement"]
    assert st["month"] == "2026-03" and st["community_code"] == "hongxing"
    assert st["points"]["issued_by_category"] == {"volunteer": 30, "red": 0, "moral": 12, "neighbour_help": 0}
    assert st["points"]["issued_total"] == 42 and st["points"]["outstanding"] == 42
    assert st["points"]["redeemed"] == 0 and st["points"]["expired"] == 0
    assert st["signers"] == ["chair", "vice"] and st["ledger"]["tree_size"] == 2
    assert st["period"]["start"] == "2026-03-01T00:00:00+08:00"
    assert "stock" in st

    # The statement is signed with the checkpoint key over its exact JSON bytes.
    key = world.client.get("/api/v1/ledger/public-key").get_json()
    assert body["key_id"] == key["key_id"] and json.loads(body["statement_text"]) == st
    raw = base64.b64decode(key["public_key"])
    assert notes.verify_note(raw, body["statement_text"], base64.b64decode(body["signature"]))
    assert not notes.verify_note(raw, body["statement_text"].replace('"issued_total":42', '"issued_total":43'),
                                 base64.b64decode(body["signature"]))

    r = sign(world, "chair")
    assert r.status_code == 409 and r.get_json()["error"] == "already_closed"

    one = world.call("GET", "/api/v1/month-closes/hongxing/2026-03", "watcher").get_json()
    assert one["status"] == "closed" and one["signature"] == body["signature"]
    listing = world.call("GET", "/api/v1/month-closes?community_code=hongxing", "chair").get_json()
    assert [i["month"] for i in listing["items"]] == ["2026-03"] and listing["next_cursor"] is None
    assert world.call("GET", "/api/v1/month-closes", "admin").get_json()["items"][0]["status"] == "closed"
    log = world.call("GET", "/api/v1/audit-log?action=month_close.sign", "chair").get_json()["items"]
    assert [e["details"]["status"] for e in log] == ["closed", "pending_second"]

    # `timebank verify` checks the statement's signature too.
    result = app.test_cli_runner().invoke(args=["verify"])
    assert result.exit_code == 0 and "1 month statements" in result.output


def test_nothing_dated_in_a_closed_month_can_be_posted(month_world, app, clock):
    world = month_world
    post_points(app, world.hh, 5)  # the month is open: fine
    clock.set(APRIL)
    march = datetime(2026, 3, 31, 15, 59, tzinfo=UTC)
    sign(world, "chair")
    post_points(app, world.hh, 5, now=march)  # pending_second does not close it yet
    assert sign(world, "vice").get_json()["status"] == "closed"

    from timebank.core.errors import Conflict

    with pytest.raises(Conflict) as caught:  # back-dated into the closed March
        post_points(app, world.hh, 5, now=march)
    assert caught.value.code == "month_closed"
    post_points(app, world.hh, 5)  # April is open
    # Another community's March is open.
    other = world.household(community_code="other", name="别家")
    post_points(app, other, 5, now=datetime(2026, 3, 20, tzinfo=UTC))


def test_a_month_is_closed_only_after_it_has_ended(month_world, app, clock):
    """Finding: the running month could be closed on the 3rd, after which every claim and sale of the
    community was refused until the next month."""
    world = month_world
    for month in ("2026-03", "2026-04"):  # the running month, a later one
        r = sign(world, "chair", month=month)
        assert r.status_code == 409 and r.get_json()["error"] == "month_not_ended", r.get_json()
    post_points(app, world.hh, 5)  # nothing was frozen
    clock.set(datetime(2026, 3, 31, 15, 59, tzinfo=UTC))  # 23:59 on 31 March in Shanghai
    world._tokens.clear()  # logins of 2 March have expired by now
    assert sign(world, "chair").get_json()["error"] == "month_not_ended"
    clock.set(APRIL)
    assert sign(world, "chair").status_code == 201


def test_month_close_refusals(month_world, clock):
    world = month_world
    r = sign(world, "grid1")
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    r = sign(world, "admin")
    assert r.status_code == 403
    r = sign(world, "outsider")
    assert r.status_code == 403
    r = sign(world, "watcher")
    assert r.status_code == 403 and r.get_json()["error"] == "read_only_role"
    r = sign(world, "chair", month="2026-13")
    assert r.status_code == 422 and "month" in r.get_json()["errors"]
    r = sign(world, "chair", code="nowhere")
    assert r.status_code == 404
    r = world.call("GET", "/api/v1/month-closes/hongxing/2026-3", "chair")
    assert r.status_code == 422
    r = world.call("GET", "/api/v1/month-closes/other/2026-03", "chair")
    assert r.status_code == 403
    preview = world.call("GET", "/api/v1/month-closes/hongxing/2026-03", "chair").get_json()
    assert preview["status"] == "open" and preview["preview"]["points"]["issued_total"] == 42


def test_printable_page(month_world, app, clock):
    world = month_world
    clock.set(APRIL)
    sign(world, "chair")
    sign(world, "vice")
    from sqlalchemy import select

    from timebank.core.extensions import db
    from timebank.core.users import User

    with app.app_context():
        uid = db.session.execute(select(User.id).where(User.username == "watcher")).scalar_one()
    page_client = app.test_client()
    assert page_client.get("/committee/month-close/hongxing/2026-03").status_code == 401
    with page_client.session_transaction() as session:
        session["_user_id"] = str(uid)
        session["_fresh"] = True
    r = page_client.get("/committee/month-close/hongxing/2026-03")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "月结" in html and "2026-03" in html and "42" in html and "已月结" in html
