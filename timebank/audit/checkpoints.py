"""Signed checkpoints of the ledger (C2SP tlog-checkpoint notes) and the deployment's signing key.

The private Ed25519 key lives in a file in the instance folder (``TIMEBANK_SIGNING_KEY_FILE``,
default ``ledger_signing_key.pem``), created by ``timebank init-db`` (or by the first signature when
it is missing). Every public key that has ever signed is kept in ``signing_keys``, so checkpoints and
month statements signed before a key rotation still verify. Rotation: ``timebank rotate-signing-key``
(see docs/verify.md).

Only writes create and register a key: ``init-db``, a rotation, a checkpoint, a month close. The
public GET endpoints read with :func:`current_key_id` and :func:`public_keys`, which never write.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledger import checkpoint as notes
from ledger import merkle
from ledger.tree import MerkleTree, scan
from timebank.audit.models import Checkpoint, Cosignature, MonthClose, SigningKey, Witness
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.extensions import db
from timebank.core.jobs import job

log = logging.getLogger(__name__)

DEFAULT_KEY_FILE = "ledger_signing_key.pem"


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def origin() -> str:
    return current_app.config.get("TIMEBANK_ORIGIN") or "timebank.local/ledger"


def key_path() -> Path:
    name = current_app.config.get("TIMEBANK_SIGNING_KEY_FILE") or DEFAULT_KEY_FILE
    return Path(current_app.instance_path) / name


def _load_or_create_private_key():
    path = key_path()
    if not path.exists():
        try:
            notes.save_private_key(notes.generate_key(), path)
            log.warning("created a new checkpoint signing key at %s", path)
        except FileExistsError:  # another process created it first; use theirs
            pass
    return notes.load_private_key(path)


def _register(public_raw: bytes) -> SigningKey:
    """The signing_keys row for this public key under the current origin (added if new)."""
    kid = notes.key_id(origin(), public_raw)
    row = db.session.execute(select(SigningKey).where(SigningKey.key_id == kid)).scalar_one_or_none()
    if row is None:
        row = SigningKey(key_id=kid, origin=origin(), public_key=base64.b64encode(public_raw).decode(),
                         created_at=utc_naive())
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # registered concurrently
            row = db.session.execute(select(SigningKey).where(SigningKey.key_id == kid)).scalar_one()
    return row


def signing_key():
    """``(private key, SigningKey row)`` of the current key; creates and registers it if needed.
    For writes only (it may write the row); readers use :func:`current_key_id`."""
    private = _load_or_create_private_key()
    return private, _register(notes.raw_public_key(private))


def current_key_id() -> str | None:
    """The key id of the key in the key file (None without a key file). Reads only."""
    path = key_path()
    if not path.exists():
        return None
    return notes.key_id(origin(), notes.raw_public_key(notes.load_private_key(path)))


def ensure_signing_key() -> None:
    """init-db hook: make sure the key file exists and its public key is registered."""
    signing_key()


def rotate_signing_key() -> SigningKey:
    """Retire the current key file (renamed, kept) and start signing with a new key."""
    path = key_path()
    if path.exists():
        old = notes.load_private_key(path)
        _register(notes.raw_public_key(old))
        old_id = notes.key_id(origin(), notes.raw_public_key(old))
        retired = path.with_name(f"{path.stem}.{old_id}.retired{path.suffix}")
        os.replace(path, retired)
    _, row = signing_key()
    record("signing_key.rotate", actor="cli", target=f"signing_key:{row.key_id}")
    return row


def public_keys() -> dict[str, SigningKey]:
    return {row.key_id: row for row in db.session.execute(select(SigningKey).order_by(SigningKey.id)).scalars()}


def sign_bytes_b64(text: str) -> tuple[str, str]:
    """Sign ``text`` (UTF-8) with the current key: ``(base64 signature, key_id)``."""
    private, row = signing_key()
    return base64.b64encode(notes.sign_note(private, text)).decode(), row.key_id


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def latest_checkpoint() -> Checkpoint | None:
    """The newest checkpoint (for the public notice board)."""
    return db.session.execute(select(Checkpoint).order_by(Checkpoint.id.desc()).limit(1)).scalar_one_or_none()


def make_checkpoint(user=None, actor: str | None = None) -> tuple[Checkpoint, bool]:
    """Sign the ledger's current tree head. Returns ``(checkpoint, created)``.

    When the newest checkpoint by the current key already covers the current size, it is returned
    unchanged (``created`` false): a second checkpoint of the same tree head would say nothing new.
    """
    private, key = signing_key()
    tree = MerkleTree(db.session)
    size = tree.size()
    existing = db.session.execute(
        select(Checkpoint).where(Checkpoint.tree_size == size, Checkpoint.key_id == key.key_id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    tree.sync()
    root = tree.root(size)
    body = notes.format_checkpoint_body(origin(), size, root)
    signature = base64.b64encode(notes.sign_note(private, body)).decode()
    cp = Checkpoint(tree_size=size, root_hash=merkle.to_hex(root), note=body, signature=signature,
                    key_id=key.key_id, created_at=utc_naive())
    try:
        with db.session.begin_nested():
            db.session.add(cp)
    except IntegrityError:  # a concurrent request signed the same head first
        return db.session.execute(
            select(Checkpoint).where(Checkpoint.tree_size == size, Checkpoint.key_id == key.key_id)
        ).scalar_one(), False
    record("checkpoint.create", user=user, actor=actor, target=f"checkpoint:{cp.id}", tree_size=size,
           root_hash=cp.root_hash, key_id=key.key_id)
    return cp, True


@job("checkpoint", "Sign a checkpoint of the ledger when it grew since the last one", trigger="cron", hour=2)
def nightly_checkpoint():
    """Idempotent: a second run on an unchanged ledger makes nothing."""
    cp, created = make_checkpoint(actor="scheduler")
    return {"tree_size": cp.tree_size, "created": created}


def cosignatures_of(checkpoint_ids: list[int]) -> dict[int, list[dict]]:
    """The witnesses' cosignatures of these checkpoints (one query), oldest first."""
    found: dict[int, list[dict]] = {i: [] for i in checkpoint_ids}
    if checkpoint_ids:
        rows = db.session.execute(
            select(Cosignature, Witness.name, Witness.key_id).join(Witness, Witness.id == Cosignature.witness_id)
            .where(Cosignature.checkpoint_id.in_(checkpoint_ids)).order_by(Cosignature.id))
        for cosignature, name, key_id in rows:
            found[cosignature.checkpoint_id].append({
                "name": name, "key_id": key_id, "timestamp": cosignature.timestamp,
                "signature": cosignature.signature, "received_at": cosignature.created_at})
    return found


def signed_note(cp: Checkpoint, cosignatures: list[dict]) -> str:
    """The checkpoint as a standard C2SP signed note: the body, a blank line, the log's signature
    line, then one line per witness cosignature."""
    note_origin = cp.note.split("\n", 1)[0]
    text = notes.signed_note_text(note_origin, cp.note, bytes.fromhex(cp.key_id), base64.b64decode(cp.signature))
    return text + "".join(notes.note_signature_line(c["name"], base64.b64decode(c["signature"]))
                          for c in cosignatures)


def checkpoint_dicts(cps: list[Checkpoint]) -> list[dict]:
    cosignatures = cosignatures_of([cp.id for cp in cps])
    return [{"id": cp.id, "tree_size": cp.tree_size, "root_hash": cp.root_hash, "timestamp": cp.created_at,
             "note": cp.note, "signature": cp.signature, "key_id": cp.key_id,
             "cosignatures": cosignatures[cp.id], "signed_note": signed_note(cp, cosignatures[cp.id])}
            for cp in cps]


def checkpoint_dict(cp: Checkpoint) -> dict:
    return checkpoint_dicts([cp])[0]


# --------------------------------------------------------------------------------------------
# Verification (a `timebank verify` hook)
# --------------------------------------------------------------------------------------------


def verify_checkpoints(result: dict) -> None:
    """Re-derive every checkpoint's root from the leaves, check its note and signature, check the
    Merkle node cache, and check every month statement's signature."""
    keys = public_keys()
    checkpoints = list(db.session.execute(select(Checkpoint).order_by(Checkpoint.id)).scalars())
    report = scan(db.session, [c.tree_size for c in checkpoints])

    def problem(text):
        result["problems"].append({"transaction_id": None, "problem": text})

    for c in checkpoints:
        label = f"checkpoint {c.id} (tree size {c.tree_size})"
        key = keys.get(c.key_id)
        if c.tree_size not in report.roots:
            problem(f"{label} is beyond the ledger's {report.size} transactions")
            continue
        expected_root = merkle.to_hex(report.roots[c.tree_size])
        if c.root_hash != expected_root:
            problem(f"{label}: stored root {c.root_hash} but the transactions give {expected_root}")
        try:
            note_origin, note_size, note_root = notes.parse_checkpoint_body(c.note)
        except ValueError as exc:
            problem(f"{label}: note is malformed ({exc})")
            continue
        if note_size != c.tree_size or merkle.to_hex(note_root) != expected_root:
            problem(f"{label}: signed note does not match the ledger")
        if key is None:
            problem(f"{label}: unknown key {c.key_id}")
            continue
        public = base64.b64decode(key.public_key)
        if notes.key_id(note_origin, public) != c.key_id:
            problem(f"{label}: key id does not match the note's origin and key")
        try:
            signature = base64.b64decode(c.signature, validate=True)
        except ValueError:
            signature = b""
        if not notes.verify_note(public, c.note, signature):
            problem(f"{label}: signature does not verify")
    for level, position in report.bad_nodes:
        problem(f"cached Merkle node level {level} position {position} is wrong (delete it; it is rebuilt)")

    closes = list(db.session.execute(select(MonthClose).order_by(MonthClose.id)).scalars())
    for mc in closes:
        key = keys.get(mc.key_id)
        try:
            signature = base64.b64decode(mc.signature, validate=True)
        except ValueError:
            signature = b""
        if key is None or not notes.verify_note(base64.b64decode(key.public_key), mc.statement, signature):
            problem(f"month close {mc.month} of community {mc.community_id}: statement signature does not verify")
    result["notes"].append(
        f"{len(checkpoints)} checkpoints and {len(closes)} month statements re-derived and signature-checked"
    )
