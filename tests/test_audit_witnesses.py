"""Witnesses: registered keys, C2SP tlog-cosignatures of checkpoints over HTTP, `timebank verify` of them,
the quorum in tools/verify_checkpoint.py, the public board naming who cosigned, and `timebank witness URL`
run by a second app instance against the first one served live."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from browser_support import LiveServer
from conftest import START, main_text
from ledger import checkpoint as notes

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "verify_checkpoint.py"
NOW = int(START.timestamp())


@pytest.fixture
def log(world):
    world.user("chair", "committee")
    household = world.household()
    for i in range(5):
        world.grant(household, i + 1)
    r = world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    assert r.status_code == 201, r.get_json()
    world.checkpoint = r.get_json()
    world.h = household
    return world


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def new_witness(world, name):
    key = notes.generate_key()
    r = world.call("POST", "/api/v1/ledger/witnesses", "admin",
                   json={"name": name, "public_key": b64(notes.raw_public_key(key))})
    assert r.status_code == 201, r.get_json()
    return key


def cosign(world, key, name, checkpoint, timestamp=NOW, tree_size=None):
    blob = notes.sign_cosignature(key, name, checkpoint["note"], timestamp)
    return world.call("POST", f"/api/v1/ledger/checkpoints/{tree_size or checkpoint['tree_size']}/cosignatures",
                      json={"name": name, "signature": b64(blob)})


def tool(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)


def test_only_an_admin_registers_a_witness_and_names_and_keys_are_unique(log):
    world = log
    key = notes.raw_public_key(notes.generate_key())
    body = {"name": "jiedao.example/w1", "public_key": b64(key)}
    r = world.call("POST", "/api/v1/ledger/witnesses", "chair", json=body)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert world.client.post("/api/v1/ledger/witnesses", json=body).status_code == 401
    r = world.call("POST", "/api/v1/ledger/witnesses", "admin", json=body)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["key_id"] == notes.cosignature_key_id("jiedao.example/w1", key)
    r = world.call("POST", "/api/v1/ledger/witnesses", "admin", json=body)
    assert r.status_code == 409 and r.get_json()["error"] == "witness_exists"
    r = world.call("POST", "/api/v1/ledger/witnesses", "admin", json={**body, "name": "other.example/w"})
    assert r.status_code == 409 and r.get_json()["error"] == "witness_exists"
    for bad in ({**body, "name": "has space"}, {**body, "name": "a+b"}, {"name": "x.example/w", "public_key": "AAAA"},
                {"name": "x.example/w", "public_key": "not base64!"}):
        r = world.call("POST", "/api/v1/ledger/witnesses", "admin", json=bad)
        assert r.status_code == 422 and r.get_json()["error"] == "validation_error", bad
    listed = world.client.get("/api/v1/ledger/witnesses").get_json()["items"]
    assert [(w["name"], w["public_key"]) for w in listed] == [("jiedao.example/w1", b64(key))]


def test_a_cosignature_is_checked_kept_once_and_listed_with_the_checkpoint(log, runner):
    world = log
    cp = world.checkpoint
    assert cp["cosignatures"] == []
    key = new_witness(world, "jiedao.example/w1")

    # Refused: unknown witness, malformed, over another text, another key, a checkpoint that does not exist,
    # a date in the future.
    r = cosign(world, key, "nobody.example/w", cp)
    assert r.status_code == 422 and r.get_json()["error"] == "witness_unknown"
    r = world.call("POST", f"/api/v1/ledger/checkpoints/{cp['tree_size']}/cosignatures",
                   json={"name": "jiedao.example/w1", "signature": b64(b"short")})
    assert r.status_code == 422 and r.get_json()["error"] == "cosignature_invalid"
    other_note = cp["note"].replace(f"\n{cp['tree_size']}\n", f"\n{cp['tree_size'] + 1}\n")
    r = cosign(world, key, "jiedao.example/w1", {**cp, "note": other_note})
    assert r.status_code == 422 and r.get_json()["error"] == "cosignature_invalid"
    r = cosign(world, notes.generate_key(), "jiedao.example/w1", cp)
    assert r.status_code == 422 and r.get_json()["error"] == "cosignature_invalid"
    r = cosign(world, key, "jiedao.example/w1", cp, tree_size=cp["tree_size"] + 7)
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = cosign(world, key, "jiedao.example/w1", cp, timestamp=NOW + 3600)
    assert r.status_code == 422 and r.get_json()["error"] == "cosignature_invalid"
    assert world.client.get("/api/v1/ledger/checkpoints/latest").get_json()["cosignatures"] == []

    # Accepted without a login: the signature is the witness's authority.
    r = cosign(world, key, "jiedao.example/w1", cp)
    assert r.status_code == 201, r.get_json()
    listed = r.get_json()["cosignatures"]
    assert [(c["name"], c["timestamp"]) for c in listed] == [("jiedao.example/w1", NOW)]
    # The same witness again: its first cosignature stands.
    r = cosign(world, key, "jiedao.example/w1", cp, timestamp=NOW + 5)
    assert r.status_code == 200 and [c["timestamp"] for c in r.get_json()["cosignatures"]] == [NOW]

    latest = world.client.get("/api/v1/ledger/checkpoints/latest").get_json()
    assert latest["cosignatures"] == listed
    page = world.client.get("/api/v1/ledger/checkpoints").get_json()["items"]
    assert page[0]["cosignatures"] == listed
    # The standard signed note: body, blank line, the log's line, the witness's line.
    text = latest["signed_note"]
    assert text.startswith(cp["note"] + "\n\u2014 timebank.local/ledger ")
    line = text.rstrip("\n").split("\n")[-1]
    name, blob = line.split(" ")[1:]
    assert name == "jiedao.example/w1"
    assert notes.verify_cosignature(notes.raw_public_key(key), name, cp["note"], base64.b64decode(blob)) == NOW

    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "1 witness cosignatures signature-checked" in result.output


def test_the_tool_checks_a_quorum_of_witnesses(log, tmp_path):
    world = log
    cp = world.checkpoint
    keys = {name: new_witness(world, name) for name in ("a.example/w", "b.example/w", "c.example/w")}
    for name in ("a.example/w", "b.example/w"):
        assert cosign(world, keys[name], name, cp).status_code == 201
    latest = world.client.get("/api/v1/ledger/checkpoints/latest").get_json()
    (tmp_path / "cp.json").write_text(json.dumps(latest), encoding="utf-8")
    (tmp_path / "signed.txt").write_text(latest["signed_note"], encoding="utf-8")
    public = world.client.get("/api/v1/ledger/public-key").get_json()["public_key"]
    pairs = {name: f"{name}={b64(notes.raw_public_key(k))}" for name, k in keys.items()}

    def check(*extra, source=("--json", "cp.json")):
        return tool(tmp_path, "checkpoint", *source, "--public-key", public, *extra)

    for source in (("--json", "cp.json"), ("--signed-note", "signed.txt")):
        ok = check("--witness-key", pairs["a.example/w"], "--witness-key", pairs["b.example/w"], source=source)
        assert ok.returncode == 0 and "cosigned_by=a.example/w,b.example/w quorum=2" in ok.stdout, ok.stdout
        ok = check(*[a for n in pairs for a in ("--witness-key", pairs[n])], "--quorum", "2", source=source)
        assert ok.returncode == 0, ok.stdout
        short = check(*[a for n in pairs for a in ("--witness-key", pairs[n])], source=source)  # all three
        assert short.returncode == 1 and "only 2 of the 3 witnesses" in short.stdout, short.stdout
    # A key that is not the witness's does not count.
    wrong = f"a.example/w={b64(notes.raw_public_key(notes.generate_key()))}"
    r = check("--witness-key", wrong, "--witness-key", pairs["b.example/w"], "--quorum", "2")
    assert r.returncode == 1 and "only 1 of the 2" in r.stdout
    # A cosignature moved to another checkpoint does not count either.
    moved = dict(latest, cosignatures=[dict(c, name="b.example/w") for c in latest["cosignatures"][:1]])
    (tmp_path / "moved.json").write_text(json.dumps(moved), encoding="utf-8")
    r = check("--witness-key", pairs["b.example/w"], source=("--json", "moved.json"))
    assert r.returncode == 1
    r = check("--quorum", "1")
    assert r.returncode == 1 and "needs at least 1" in r.stdout


def test_the_public_board_names_who_cosigned_the_latest_checkpoint(log):
    world = log
    key = new_witness(world, "jiedao.example/w1")
    r = world.client.get("/public/hongxing")
    assert "jiedao.example/w1" not in main_text(r)
    assert cosign(world, key, "jiedao.example/w1", world.checkpoint).status_code == 201
    r = world.client.get("/public/hongxing")
    assert r.status_code == 200 and "jiedao.example/w1" in main_text(r)
    board = world.client.get("/api/v1/public/hongxing").get_json()
    assert [c["name"] for c in board["checkpoint"]["cosignatures"]] == ["jiedao.example/w1"]


# --------------------------------------------------------------------------------------------------
# `timebank witness URL`: a second app instance witnesses the first, served live
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def served_log(log, app):
    server = LiveServer(app)
    server.start()
    yield server.url
    server.stop()


def _witness(witness_app, *args):
    return witness_app.test_cli_runner().invoke(args=["witness", *args, "--name", "jiedao.example/w1"])


def test_timebank_witness_checks_consistency_cosigns_and_refuses_a_rewritten_log(log, served_log, make_app,
                                                                                    runner):
    world = log
    witness_app = make_app()
    shown = witness_app.test_cli_runner().invoke(args=["witness-key", "--name", "jiedao.example/w1"])
    assert shown.exit_code == 0, shown.output
    public_key = shown.output.split("public_key: ")[1].split()[0]
    r = world.call("POST", "/api/v1/ledger/witnesses", "admin",
                   json={"name": "jiedao.example/w1", "public_key": public_key})
    assert r.status_code == 201
    state_file = Path(witness_app.instance_path) / "witness_state.json"

    # First contact: the log's key is pinned, the checkpoint cosigned.
    first = _witness(witness_app, served_log)
    assert first.exit_code == 0, first.output
    assert "pinned the log's public key" in first.output and "(first contact); cosigned" in first.output
    size1 = world.checkpoint["tree_size"]
    state = json.loads(state_file.read_text())
    assert state["logs"]["timebank.local/ledger"]["tree_size"] == size1
    latest = world.client.get("/api/v1/ledger/checkpoints/latest").get_json()
    assert [c["name"] for c in latest["cosignatures"]] == ["jiedao.example/w1"]

    # The ledger grows; the next checkpoint is proven consistent with the one seen, then cosigned.
    for _ in range(4):
        world.grant(world.h, 2)
    cp2 = world.call("POST", "/api/v1/ledger/checkpoints", "chair").get_json()
    second = _witness(witness_app, served_log)
    assert second.exit_code == 0, second.output
    assert f"tree_size={cp2['tree_size']}" in second.output and f"consistent with {size1}" in second.output
    assert json.loads(state_file.read_text())["logs"]["timebank.local/ledger"]["tree_size"] == cp2["tree_size"]
    again = _witness(witness_app, served_log)
    assert again.exit_code == 0 and "already cosigned" in again.output

    # The witness's memory says another root for an earlier size: the log was rewritten since. Refused,
    # nothing signed, the state kept as it was.
    state = json.loads(state_file.read_text())
    state["logs"]["timebank.local/ledger"].update(tree_size=size1, root_hash="11" * 32)
    state_file.write_text(json.dumps(state))
    for _ in range(2):
        world.grant(world.h, 1)
    cp3 = world.call("POST", "/api/v1/ledger/checkpoints", "chair").get_json()
    refused = _witness(witness_app, served_log)
    assert refused.exit_code == 1 and "not consistent" in refused.output, refused.output
    assert json.loads(state_file.read_text()) == state
    assert world.client.get("/api/v1/ledger/checkpoints/latest").get_json()["cosignatures"] == []

    # A log that shows fewer entries than the witness saw went back: refused too.
    state["logs"]["timebank.local/ledger"].update(tree_size=cp3["tree_size"] + 10, root_hash=cp3["root_hash"])
    state_file.write_text(json.dumps(state))
    refused = _witness(witness_app, served_log)
    assert refused.exit_code == 1 and "went back" in refused.output

    # A checkpoint signed by a key the witness never pinned is refused until the operator confirms it.
    state["logs"]["timebank.local/ledger"].update(tree_size=cp3["tree_size"], root_hash=cp3["root_hash"])
    state_file.write_text(json.dumps(state))
    assert runner.invoke(args=["rotate-signing-key"]).exit_code == 0
    world.grant(world.h, 1)
    world.call("POST", "/api/v1/ledger/checkpoints", "chair")
    refused = _witness(witness_app, served_log)
    assert refused.exit_code == 1 and "--log-key" in refused.output
    new_key = world.client.get("/api/v1/ledger/public-key").get_json()["public_key"]
    accepted = _witness(witness_app, served_log, "--log-key", new_key)
    assert accepted.exit_code == 0 and "cosigned" in accepted.output, accepted.output

    # Everything the log keeps verifies.
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
