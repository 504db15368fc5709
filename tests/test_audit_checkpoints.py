"""Signed checkpoints, the public key, inclusion and consistency proofs over HTTP; the nightly job;
`timebank verify` re-deriving checkpoints; key rotation."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import IS_POSTGRES
from ledger import checkpoint as notes
from ledger import merkle

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "verify_checkpoint.py"


@pytest.fixture
def staff(world):
    world.user("chair", "committee")
    world.user("watcher", "supervisor")
    world.user("clerk1", "clerk")
    households = [world.household(name=f"户{i}") for i in range(3)]
    for i in range(40):
        world.grant(households[i % 3], i + 1)
    return world


def tool(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)


def save(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def restore_checkpoint_guard(app):
    """Tests below drop the append-only trigger to tamper; PostgreSQL keeps the schema between tests."""
    yield
    if IS_POSTGRES:
        from ledger.schema import append_only_guard
        from timebank.core.extensions import db

        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_checkpoints_no_change ON ledger_checkpoints"))
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_checkpoints_no_truncate ON ledger_checkpoints"))
            for statement in append_only_guard("postgresql", "ledger_checkpoints"):
                conn.execute(text(statement))


def drop_checkpoint_guard(conn):
    if IS_POSTGRES:
        conn.execute(text("DROP TRIGGER ledger_checkpoints_no_change ON ledger_checkpoints"))
    else:
        conn.execute(text("DROP TRIGGER ledger_checkpoints_no_update"))


def ledger_size(world) -> int:
    return world.client.get("/api/v1/ledger/tree-head").get_json()["tree_size"]


def test_checkpoint_signature_and_proofs_verify(staff, tmp_path):
    world = staff
    r = world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    size1 = first["tree_size"]
    assert size1 == ledger_size(world) and size1 > 0
    assert first["note"] == f"timebank.local/ledger\n{size1}\n" \
        f"{base64.b64encode(bytes.fromhex(first['root_hash'])).decode()}\n"

    # Nothing new: the same checkpoint comes back.
    again = world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert again.status_code == 200 and again.get_json()["id"] == first["id"]

    # Public: no login for the key, the list and the proofs.
    key = world.client.get("/api/v1/ledger/public-key").get_json()
    raw = base64.b64decode(key["public_key"])
    assert len(raw) == 32 and key["key_id"] == first["key_id"] == notes.key_id("timebank.local/ledger", raw)
    assert notes.verify_note(raw, first["note"], base64.b64decode(first["signature"]))
    assert not notes.verify_note(raw, first["note"].replace(str(size1), str(size1 + 1)),
                                 base64.b64decode(first["signature"]))

    newcomer = world.household(name="新户")
    world.grant(newcomer, 5)
    world.grant(newcomer, 6)
    second = world.call("POST", "/api/v1/ledger/checkpoints", "admin").get_json()
    size2 = second["tree_size"]
    assert size2 == size1 + 2
    listing = world.client.get("/api/v1/ledger/checkpoints").get_json()
    assert [c["tree_size"] for c in listing["items"]] == [size2, size1] and listing["next_cursor"] is None
    assert set(listing["items"][0]) >= {"tree_size", "root_hash", "timestamp", "note", "signature", "key_id"}
    page = world.client.get("/api/v1/ledger/checkpoints?limit=1").get_json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert world.client.get("/api/v1/ledger/checkpoints/latest").get_json()["id"] == second["id"]

    # The standalone tool verifies the checkpoint...
    out = tool(tmp_path, "checkpoint", "--json", save(tmp_path, "cp.json", second), "--public-key",
               key["public_key"], "--origin", "timebank.local/ledger")
    assert out.returncode == 0 and out.stdout.startswith("OK checkpoint"), out.stdout + out.stderr
    tampered = dict(second, note=second["note"].replace(f"\n{size2}\n", f"\n{size2 - 1}\n"))
    out = tool(tmp_path, "checkpoint", "--json", save(tmp_path, "bad.json", tampered), "--public-key",
               key["public_key"])
    assert out.returncode == 1 and out.stdout.startswith("FAILED")

    # ... an inclusion proof against the checkpoint's root, for every transaction ...
    for tx_id in (1, 2, size1 // 2, size1, size2):
        proof = world.client.get(f"/api/v1/ledger/transactions/{tx_id}/inclusion-proof?tree_size={size2}").get_json()
        assert proof["leaf_index"] == tx_id - 1 and proof["root_hash"] == second["root_hash"]
        assert merkle.verify_inclusion(merkle.from_hex(proof["leaf_hash"]), proof["leaf_index"], size2,
                                       [merkle.from_hex(h) for h in proof["audit_path"]],
                                       merkle.from_hex(second["root_hash"]))
    tx = world.call("GET", f"/api/v1/ledger/transactions/{size2}", "chair").get_json()
    assert tx["leaf_hash"] == proof["leaf_hash"]
    out = tool(tmp_path, "inclusion", "--json", save(tmp_path, "inc.json", proof), "--root", second["root_hash"],
               "--tree-size", str(size2))
    assert out.returncode == 0 and out.stdout.startswith("OK inclusion"), out.stdout
    bad = dict(proof, audit_path=list(reversed(proof["audit_path"])))
    assert tool(tmp_path, "inclusion", "--json", save(tmp_path, "bad-inc.json", bad)).returncode == 1

    # ... and the consistency of the two checkpoints.
    cons = world.client.get(f"/api/v1/ledger/consistency-proof?first={size1}&second={size2}").get_json()
    assert cons["first"] == size1 and cons["second"] == size2 and cons["proof"]
    assert merkle.verify_consistency(size1, size2, merkle.from_hex(first["root_hash"]),
                                     merkle.from_hex(second["root_hash"]), [merkle.from_hex(h) for h in cons["proof"]])
    out = tool(tmp_path, "consistency", "--json", save(tmp_path, "cons.json", cons), "--first-root",
               first["root_hash"], "--second-root", second["root_hash"])
    assert out.returncode == 0 and out.stdout.startswith("OK consistency"), out.stdout
    out = tool(tmp_path, "consistency", "--json", save(tmp_path, "cons2.json", cons), "--first-root",
               second["root_hash"], "--second-root", second["root_hash"])
    assert out.returncode == 1


def test_proof_validation_errors(staff):
    world = staff
    size = ledger_size(world)
    c = world.client
    r = c.get(f"/api/v1/ledger/transactions/1/inclusion-proof?tree_size={size + 1}")
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"
    assert "tree_size" in r.get_json()["errors"]
    r = c.get("/api/v1/ledger/transactions/5/inclusion-proof?tree_size=4")
    assert r.status_code == 422 and "tree_size" in r.get_json()["errors"]
    r = c.get("/api/v1/ledger/transactions/1/inclusion-proof?tree_size=0")
    assert r.status_code == 422
    r = c.get("/api/v1/ledger/transactions/1/inclusion-proof?tree_size=abc")
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"
    r = c.get(f"/api/v1/ledger/transactions/{size + 1}/inclusion-proof")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = c.get("/api/v1/ledger/transactions/1/inclusion-proof")
    assert r.status_code == 200 and r.get_json()["tree_size"] == size
    r = c.get("/api/v1/ledger/consistency-proof?first=5&second=3")
    assert r.status_code == 422 and "first" in r.get_json()["errors"]
    r = c.get(f"/api/v1/ledger/consistency-proof?first=1&second={size + 1}")
    assert r.status_code == 422 and "second" in r.get_json()["errors"]
    r = c.get("/api/v1/ledger/consistency-proof?first=1")
    assert r.status_code == 422 and "second" in r.get_json()["errors"]
    r = c.get("/api/v1/ledger/consistency-proof?first=-1&second=3")
    assert r.status_code == 422
    r = c.get(f"/api/v1/ledger/consistency-proof?first=0&second={size}")
    assert r.status_code == 200 and r.get_json()["proof"] == []
    r = c.get(f"/api/v1/ledger/tree-head?tree_size={size + 1}")
    assert r.status_code == 422
    assert c.get("/api/v1/ledger/checkpoints/latest").get_json()["error"] == "not_found"


def test_who_may_make_a_checkpoint(staff):
    world = staff
    assert world.client.post("/api/v1/ledger/checkpoints").get_json()["error"] == "unauthenticated"
    r = world.call("POST", "/api/v1/ledger/checkpoints", "clerk1")
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    r = world.call("POST", "/api/v1/ledger/checkpoints", "watcher")
    assert r.status_code == 403 and r.get_json()["error"] == "read_only_role"
    assert world.client.get("/api/v1/ledger/checkpoints").get_json()["items"] == []
    r = world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert r.status_code == 201
    entries = world.call("GET", "/api/v1/audit-log?action=checkpoint.create", "chair").get_json()["items"]
    assert len(entries) == 1 and entries[0]["actor"] == "chair"


def test_nightly_job_is_idempotent(staff, app):
    from timebank.audit.models import Checkpoint
    from timebank.core.boundary import run_job_once
    from timebank.core.extensions import db
    from timebank.core.jobs import JOBS

    job = JOBS["checkpoint"]
    assert job.schedule == {"trigger": "cron", "hour": 2}
    with app.app_context():
        run_job_once(job.func)
        run_job_once(job.func)
        assert db.session.query(Checkpoint).count() == 1
    staff.grant(staff.household(name="又一户"), 3)
    with app.app_context():
        run_job_once(job.func)
        run_job_once(job.func)
        sizes = [c.tree_size for c in db.session.query(Checkpoint).order_by(Checkpoint.id)]
    assert len(sizes) == 2 and sizes[1] == sizes[0] + 1


def test_verify_rederives_checkpoints_and_catches_tampering(staff, runner, app):
    world = staff
    world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    world.grant(world.household(name="后来户"), 9)
    world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    # Fill the proof cache, so verify also checks it.
    assert world.client.get("/api/v1/ledger/transactions/1/inclusion-proof").status_code == 200
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "2 checkpoints" in result.output
    api = world.call("GET", "/api/v1/ledger/verify", "watcher").get_json()
    assert api["ok"] is True

    from timebank.core.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            drop_checkpoint_guard(conn)
            conn.execute(text("UPDATE ledger_checkpoints SET root_hash = :h WHERE id = 1"), {"h": "ab" * 32})
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "checkpoint 1" in result.output and "stored root" in result.output
    api = world.call("GET", "/api/v1/ledger/verify", "chair").get_json()
    assert api["ok"] is False


def test_verify_catches_a_forged_signature_and_a_bad_cache_row(staff, runner, app):
    world = staff
    world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert world.client.get("/api/v1/ledger/transactions/1/inclusion-proof").status_code == 200
    from timebank.core.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            drop_checkpoint_guard(conn)
            sig = base64.b64encode(b"\x01" * 64).decode()
            conn.execute(text("UPDATE ledger_checkpoints SET signature = :s"), {"s": sig})
            conn.execute(text("UPDATE ledger_merkle_nodes SET hash = :h WHERE level = 4 AND position = 0"),
                         {"h": "cd" * 32})
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "signature does not verify" in result.output and "cached Merkle node" in result.output


def test_checkpoints_refuse_update_and_delete(staff, app):
    world = staff
    world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    from timebank.core.extensions import db

    for statement in ("UPDATE ledger_checkpoints SET tree_size = 1", "DELETE FROM ledger_checkpoints",
                      "DELETE FROM signing_keys"):
        with app.app_context():
            with pytest.raises(Exception, match="append-only"):
                with db.engine.begin() as conn:
                    conn.execute(text(statement))


def test_init_db_creates_the_key_and_rotation_keeps_old_checkpoints_valid(staff, runner, app):
    world = staff
    key_file = Path(app.instance_path) / "ledger_signing_key.pem"
    assert runner.invoke(args=["init-db"]).exit_code == 0
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    old = world.client.get("/api/v1/ledger/public-key").get_json()
    first = world.call("POST", "/api/v1/ledger/checkpoints", "chair").get_json()
    assert first["key_id"] == old["key_id"]

    result = runner.invoke(args=["rotate-signing-key"])
    assert result.exit_code == 0, result.output
    new = world.client.get("/api/v1/ledger/public-key").get_json()
    assert new["key_id"] != old["key_id"]
    assert list(Path(app.instance_path).glob(f"ledger_signing_key.{old['key_id']}.retired.pem"))
    # Same tree size, new key: a new checkpoint is signed with the new key.
    second = world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert second.status_code == 201 and second.get_json()["key_id"] == new["key_id"]
    keys = world.client.get("/api/v1/ledger/signing-keys").get_json()["items"]
    by_id = {k["key_id"]: k for k in keys}
    assert by_id[old["key_id"]]["current"] is False and by_id[new["key_id"]]["current"] is True
    assert notes.verify_note(base64.b64decode(by_id[old["key_id"]]["public_key"]), first["note"],
                             base64.b64decode(first["signature"]))
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output


def test_reading_the_public_key_never_creates_or_registers_one(staff, runner, app):
    """GET requests never write: the key is made by init-db (or the first signature), not by a reader."""
    world = staff
    key_file = Path(app.instance_path) / "ledger_signing_key.pem"
    assert not key_file.exists()  # this instance has no key yet (the template's is elsewhere)
    before = world.client.get("/api/v1/ledger/signing-keys").get_json()["items"]
    r = world.client.get("/api/v1/ledger/public-key")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert r.get_json()["error"] == "not_found" and "init-db" in r.get_json()["detail"]
    assert not key_file.exists()
    assert world.client.get("/api/v1/ledger/signing-keys").get_json()["items"] == before
    assert not any(k["current"] for k in before)

    assert runner.invoke(args=["init-db"]).exit_code == 0
    key = world.client.get("/api/v1/ledger/public-key").get_json()
    assert key["current"] is True and key_file.exists()
    keys = world.client.get("/api/v1/ledger/signing-keys").get_json()["items"]
    assert [k["key_id"] for k in keys if k["current"]] == [key["key_id"]]
    assert len(keys) == len(before) + 1
