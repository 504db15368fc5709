"""The command line, and the ledger's byte encoding re-implemented from docs/ledger-format.md."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import text

import ledger
from conftest import IS_POSTGRES
from timebank.core import accounts
from timebank.core.extensions import db


def test_create_user_reads_password_from_stdin(runner, world):
    result = runner.invoke(args=["create-user", "li_clerk", "--role", "clerk", "--community", "hongxing",
                                 "--password-stdin"], input="clerk-pass-9\n")
    assert result.exit_code == 0, result.output
    r = world.client.post("/api/v1/auth/token", json={"username": "li_clerk", "password": "clerk-pass-9"})
    assert r.status_code == 200


def test_create_user_refuses_bad_input(runner, world):
    short = runner.invoke(args=["create-user", "x1", "--role", "clerk", "--community", "hongxing",
                                "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "8 个字符" in short.output
    nowhere = runner.invoke(args=["create-user", "x2", "--role", "clerk", "--community", "nowhere",
                                  "--password-stdin"], input="long-enough-1\n")
    assert nowhere.exit_code != 0 and "nowhere" in nowhere.output


def _tamper(sql):
    if IS_POSTGRES:
        db.session.execute(text("ALTER TABLE ledger_transactions DISABLE TRIGGER USER"))
        db.session.execute(text(sql))
        db.session.execute(text("ALTER TABLE ledger_transactions ENABLE TRIGGER USER"))
    else:
        db.session.execute(text("DROP TRIGGER ledger_transactions_no_update"))
        db.session.execute(text(sql))
    db.session.commit()


def test_verify_command(runner, world, app):
    h = world.household()
    for points in (5, 6, 7, 8):
        world.grant(h, points)
    ok = runner.invoke(args=["verify"])
    assert ok.exit_code == 0 and "OK: 4 transactions" in ok.output
    with app.app_context():
        _tamper("UPDATE ledger_transactions SET memo = 'rewritten' WHERE id = 2")
    bad = runner.invoke(args=["verify"])
    assert bad.exit_code == 1
    assert "first bad transaction id 2" in bad.output


def independent_leaf(tx: dict, postings: list) -> bytes:
    """Written from docs/ledger-format.md alone, without ledger.encoding."""

    def dump(value):
        if value is None:
            return "null"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str):
            out = []
            for ch in value:
                if ch == '"':
                    out.append('\\"')
                elif ch == "\\":
                    out.append("\\\\")
                elif ch in "\n\r\t\b\f":
                    out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}[ch])
                elif ord(ch) < 0x20:
                    out.append(f"\\u{ord(ch):04x}")
                else:
                    out.append(ch)
            return '"' + "".join(out) + '"'
        if isinstance(value, list):
            return "[" + ",".join(dump(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ",".join(dump(k) + ":" + dump(value[k]) for k in sorted(value)) + "}"
        raise TypeError(value)

    record = dict(tx)
    record["v"] = 1
    record["postings"] = sorted([list(p) for p in postings])
    return dump(record).encode("utf-8")


def test_leaf_encoding_matches_the_document(world, app):
    h = world.household()
    world.grant(h, 12)
    with app.app_context():
        tx = ledger.post(db.session, [ledger.Leg(accounts.household_points(h), -2),
                                      ledger.Leg(accounts.supermarket_points(1), 2)],
                         kind="redemption", memo='肥皂 "x2"\n\tback\\slash', actor="user:1:张", reference="r:1")
        db.session.commit()
        record = {"id": tx.id, "created_at": tx.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "kind": tx.kind,
                  "category": None, "memo": tx.memo, "actor": tx.actor, "reference": "r:1", "reverses_id": None}
        leaf = independent_leaf(record, [(a, u, m) for a, m, u in tx.postings])
        assert hashlib.sha256(b"\x00" + leaf).hexdigest() == tx.leaf_hash
        assert hashlib.sha256(bytes.fromhex(tx.prev_hash) + bytes.fromhex(tx.leaf_hash)).hexdigest() == tx.hash
        # And the same as Python's canonical JSON, as the document says.
        rec = dict(record, v=1, postings=sorted([list((a, u, m)) for a, m, u in tx.postings]))
        assert json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == leaf
