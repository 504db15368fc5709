"""Household statements: the month's entries with inclusion proofs against the signed checkpoint, checked
offline by tools/verify_checkpoint.py (its QR code too); who may read them; residents reading their own
household's transactions; the printable A4 page linked from the household's page and the resident's home."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import START, main_text, page_login
from ledger import checkpoint as notes

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "verify_checkpoint.py"


def post(world, household_id, points, when, kind="grant", memo="志愿服务 · 张三 (resident:1)"):
    """Points into (or out of) a household at a given moment (the ledger dates it ``when``)."""
    import ledger
    from timebank.core import accounts, ledgering
    from timebank.core.extensions import db
    from timebank.people.models import Household

    with world.app.app_context():
        h = db.session.get(Household, household_id)
        tx = ledgering.post(h.community_id, [
            ledger.Leg(accounts.issuance_points(h.community_id, "volunteer"), -points),
            ledger.Leg(accounts.household_points(household_id), points)],
            kind=kind, category="volunteer", memo=memo, actor="test", now=when)
        db.session.commit()
        return tx.id


@pytest.fixture
def town(world, clock):
    world.community("far", "远方社区")
    world.user("chair", "committee")
    world.user("grid", "grid_worker")
    world.user("watcher", "supervisor")
    world.user("far_chair", "committee", community_code="far")
    world.h1 = world.household(name="张家")
    world.h2 = world.household(name="李家")
    world.r1 = world.resident(world.h1, "张三", phone="13900000001")
    world.r2 = world.resident(world.h2, "李四", phone="13900000002")
    world.user("zhang", "resident", community_code=None, resident_id=world.r1)
    world.user("li", "resident", community_code=None, resident_id=world.r2)
    feb = START - timedelta(days=10)
    world.feb = [post(world, world.h1, 30, feb), post(world, world.h2, 7, feb), post(world, world.h1, 5, feb)]
    march = START + timedelta(hours=1)
    world.march = [post(world, world.h1, 12, march), post(world, world.h2, 4, march),
                   post(world, world.h1, -8, march + timedelta(hours=1), kind="expiry", memo="积分过期"),
                   post(world, world.h1, 3, march + timedelta(hours=2))]
    clock.advance(days=1)
    r = world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert r.status_code == 201, r.get_json()
    world.public_key = world.client.get("/api/v1/ledger/public-key").get_json()["public_key"]
    return world


def tool(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)


def check(tmp_path, world, statement, *extra):
    (tmp_path / "statement.json").write_text(json.dumps(statement, ensure_ascii=False), encoding="utf-8")
    return tool(tmp_path, "statement", "--json", "statement.json", "--public-key", world.public_key, *extra)


def test_a_statement_proves_each_entry_against_the_signed_checkpoint(town, tmp_path):
    world = town
    r = world.call("GET", f"/api/v1/households/{world.h1}/statement?month=2026-03", "zhang")
    assert r.status_code == 200, r.get_json()
    s = r.get_json()
    assert s["format"] == "timebank-statement/v1" and s["month"] == "2026-03" and s["unit"] == "points"
    assert s["household"]["account"] == f"household:{world.h1}:points"
    assert (s["opening"], s["closing"]) == (35, 35 + 12 - 8 + 3)
    assert [t["id"] for t in s["transactions"]] == [world.march[0], world.march[2], world.march[3]]
    assert [t["amount"] for t in s["transactions"]] == [12, -8, 3]
    assert s["complete"] is True and [p["transaction_id"] for p in s["proofs"]] == [t["id"] for t in s["transactions"]]
    assert all(p["tree_size"] == s["checkpoint"]["tree_size"] for p in s["proofs"])
    feb = world.call("GET", f"/api/v1/households/{world.h1}/statement?month=2026-02", "chair").get_json()
    assert (feb["opening"], feb["closing"], len(feb["transactions"])) == (0, 35, 2)

    ok = check(tmp_path, world, s, "--qr", s["qr_text"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "opening=35 closing=42 entries=3" in ok.stdout and f"digest={s['digest']}" in ok.stdout
    assert "qr=matches" in ok.stdout

    def refused(mutate, *extra):
        bad = copy.deepcopy(s)
        mutate(bad)
        result = check(tmp_path, world, bad, *extra)
        assert result.returncode == 1 and result.stdout.startswith("FAILED: "), result.stdout
        return result.stdout

    assert "amount" in refused(lambda b: b["transactions"][0].update(amount=20))
    assert "closing" in refused(lambda b: b.update(closing=99))
    assert "closing" in refused(lambda b: b["transactions"].pop(1))  # an entry left out
    assert "hash" in refused(lambda b: b["transactions"][0].update(
        leaf=b["transactions"][0]["leaf"].replace("志愿服务", "志愿服務"), memo="志愿服務 · 张三 (resident:1)"))
    assert "memo" in refused(lambda b: b["transactions"][0].update(memo="别的"))
    assert "signature" in refused(lambda b: b["checkpoint"].update(
        note=b["checkpoint"]["note"].replace("timebank.local", "timebank.locat")))
    # Another household's entry, with its true proof, is not one of this household's.
    other = world.call("GET", f"/api/v1/households/{world.h2}/statement?month=2026-03", "li").get_json()
    assert "amount" in refused(lambda b: (b["transactions"].append(other["transactions"][0]),
                                          b["transactions"].sort(key=lambda t: t["id"]),
                                          b["proofs"].append(other["proofs"][0])))
    # The printed QR pins the figures and the checkpoint.
    assert "QR" in refused(lambda b: None, "--qr", s["qr_text"].replace(" 42 ", " 52 "))
    assert "QR" in refused(lambda b: None, "--qr", other["qr_text"])


def test_a_statement_with_a_quorum_of_witnesses(town, tmp_path):
    world = town
    key = notes.generate_key()
    assert world.call("POST", "/api/v1/ledger/witnesses", "admin", json={
        "name": "jiedao.example/w1", "public_key": base64.b64encode(notes.raw_public_key(key)).decode()}
    ).status_code == 201
    cp = world.client.get("/api/v1/ledger/checkpoints/latest").get_json()
    blob = notes.sign_cosignature(key, "jiedao.example/w1", cp["note"], int(START.timestamp()))
    assert world.call("POST", f"/api/v1/ledger/checkpoints/{cp['tree_size']}/cosignatures", json={
        "name": "jiedao.example/w1", "signature": base64.b64encode(blob).decode()}).status_code == 201
    s = world.call("GET", f"/api/v1/households/{world.h1}/statement?month=2026-03", "chair").get_json()
    witness = f"jiedao.example/w1={base64.b64encode(notes.raw_public_key(key)).decode()}"
    ok = check(tmp_path, world, s, "--witness-key", witness)
    assert ok.returncode == 0 and "cosigned_by=jiedao.example/w1 quorum=1" in ok.stdout, ok.stdout
    other = f"b.example/w={base64.b64encode(notes.raw_public_key(notes.generate_key())).decode()}"
    short = check(tmp_path, world, s, "--witness-key", witness, "--witness-key", other)
    assert short.returncode == 1 and "only 1 of the 2" in short.stdout


def test_entries_after_the_checkpoint_wait_for_the_next_one(town, tmp_path, clock):
    world = town
    late = post(world, world.h1, 6, clock.now())
    s = world.call("GET", f"/api/v1/households/{world.h1}/statement?month=2026-03", "zhang").get_json()
    assert s["transactions"][-1]["id"] == late and s["closing"] == 48
    assert s["complete"] is False and late not in {p["transaction_id"] for p in s["proofs"]}
    result = check(tmp_path, world, s)
    assert result.returncode == 1 and "not yet in the signed checkpoint" in result.stdout
    page = page_login(world.app, "zhang").get("/me/statement?month=2026-03")
    assert page.status_code == 200 and 'id="statement-pending"' in page.get_data(as_text=True)
    assert world.call("POST", "/api/v1/ledger/checkpoints", "chair").status_code == 201
    s = world.call("GET", f"/api/v1/households/{world.h1}/statement?month=2026-03", "zhang").get_json()
    assert s["complete"] is True
    assert check(tmp_path, world, s).returncode == 0


def test_who_may_read_a_statement(town):
    world = town
    url = f"/api/v1/households/{world.h1}/statement?month=2026-03"
    for who in ("zhang", "chair", "grid", "watcher", "admin"):
        assert world.call("GET", url, who).status_code == 200, who
    for who in ("li", "far_chair"):
        r = world.call("GET", url, who)
        assert r.status_code == 404 and r.get_json()["error"] == "not_found", who
    assert world.client.get(url).status_code == 401
    for month in ("2026-13", "march", "2026-04"):
        r = world.call("GET", f"/api/v1/households/{world.h1}/statement?month={month}", "chair")
        assert r.status_code == 422 and r.get_json()["error"] == "validation_error", month
    assert world.call("GET", f"/api/v1/households/{world.h1}/statement", "chair").status_code == 422


def test_a_resident_reads_their_own_households_transactions(town):
    world = town
    mine, theirs = world.march[0], world.march[1]
    r = world.call("GET", f"/api/v1/ledger/transactions/{mine}", "zhang")
    assert r.status_code == 200, r.get_json()
    tx = r.get_json()
    assert {p["account"] for p in tx["postings"]} >= {f"household:{world.h1}:points"}
    # The leaf rebuilt from what the resident reads is the one the proof is about.
    proof = world.client.get(f"/api/v1/ledger/transactions/{mine}/inclusion-proof").get_json()
    assert tx["leaf_hash"] == proof["leaf_hash"]
    r = world.call("GET", f"/api/v1/ledger/transactions/{theirs}", "zhang")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    listed = world.call("GET", "/api/v1/ledger/transactions", "zhang").get_json()["items"]
    assert sorted(t["id"] for t in listed) == sorted([*world.feb[::2], world.march[0], *world.march[2:]])
    r = world.call("GET", f"/api/v1/ledger/transactions?household_id={world.h2}", "zhang")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = world.call("GET", f"/api/v1/ledger/transactions?household_id={world.h1}&kind=expiry", "zhang")
    assert [t["id"] for t in r.get_json()["items"]] == [world.march[2]]
    # The export stays with the auditors.
    assert world.call("GET", "/api/v1/ledger/transactions/export?format=csv", "zhang").status_code == 403


def test_the_printable_statement_page(town):
    world = town
    staff = page_login(world.app, "grid")
    household = staff.get(f"/committee/households/{world.h1}")
    link = f"/committee/households/{world.h1}/statement"
    assert household.status_code == 200 and link in household.get_data(as_text=True)
    page = staff.get(link + "?month=2026-03")
    assert page.status_code == 200
    html, words = page.get_data(as_text=True), main_text(page)
    assert "@page { size: A4" in html and "<svg" in html and 'id="statement-pending"' not in html
    assert "张家" in html and "2026年3月" in html
    assert "35" in words and "叁拾伍" in html and "肆拾贰" in html  # opening 35, closing 42, also in capitals
    assert "志愿服务 · 张三" in html and "resident:1" not in html  # memos in words, without the auditors' ids
    assert "积分过期" in html and "-8" in html
    assert html.count("data-transaction=") == 3
    # Without a month: the last whole month.
    assert "2026年2月" in staff.get(link).get_data(as_text=True)
    # Another community's household, a month not begun, a bad month.
    assert page_login(world.app, "far_chair").get(link).status_code == 404
    assert staff.get(link + "?month=2026-05").status_code == 404
    assert staff.get(link + "?month=nope").status_code == 404
    # The resident: from the home page to their own household's statement.
    resident = page_login(world.app, "zhang")
    assert "/me/statement" in resident.get("/me/").get_data(as_text=True)
    mine = resident.get("/me/statement?month=2026-03")
    assert mine.status_code == 200 and "张家" in mine.get_data(as_text=True)
    assert resident.get(link).status_code == 403
