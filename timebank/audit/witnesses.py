"""Witnesses of the deployment's checkpoints (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``).

A witness is another party (the 街道, another deployment, a university) that keeps the last tree
head it saw of this ledger, checks every newer checkpoint against it with a consistency proof, and
cosigns the checkpoint when it only grew. A checkpoint cosigned by several independent witnesses
cannot have been shown differently to different people (a split view) without one of them
noticing. An admin registers each witness's name and public key; a cosignature then needs no
login: its signature is its authority. ``timebank witness URL`` (:mod:`timebank.audit.cosigner`)
is the witness side.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledger import checkpoint as notes
from timebank.audit.models import Checkpoint, Cosignature, Witness
from timebank.core.audit_log import record
from timebank.core.clock import now, utc_naive
from timebank.core.errors import Conflict, NotFound, ValidationFailed
from timebank.core.extensions import db

#: A cosignature dated further ahead of the deployment's clock than this is refused (C2SP: a
#: verifier MAY reject timestamps in the future); a little slack for clocks that differ.
FUTURE_SLACK_SECONDS = 600


def _decode_b64(text: str, field: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValidationFailed(errors={field: ["Not valid base64."]}) from None
    if size is not None and len(raw) != size:
        raise ValidationFailed(errors={field: [f"Must be base64 of {size} bytes."]})
    return raw


def witnesses() -> list[Witness]:
    return list(db.session.execute(select(Witness).order_by(Witness.id)).scalars())


def register_witness(user, name: str, public_key: str) -> Witness:
    """Trust a witness: its key name and its raw Ed25519 public key (base64 of 32 bytes)."""
    try:
        notes.check_key_name(name)
    except ValueError as exc:
        raise ValidationFailed(errors={"name": [str(exc)]}) from None
    raw = _decode_b64(public_key, "public_key", notes.ED25519_PUBLIC_KEY_SIZE)
    canonical = base64.b64encode(raw).decode("ascii")
    taken = db.session.execute(select(Witness).where(
        (Witness.name == name) | (Witness.public_key == canonical))).scalars().first()
    if taken is not None:
        raise Conflict(f"A witness with this name or key is already registered ({taken.name}).",
                       code="witness_exists")
    witness = Witness(name=name, public_key=canonical, key_id=notes.cosignature_key_id(name, raw),
                      created_at=utc_naive(), created_by=user.actor)
    try:
        with db.session.begin_nested():
            db.session.add(witness)
    except IntegrityError:
        raise Conflict("A witness with this name or key is already registered.", code="witness_exists") from None
    record("witness.register", user=user, target=f"witness:{witness.id}", name=name, key_id=witness.key_id,
           public_key=canonical)
    return witness


def add_cosignature(tree_size: int, name: str, signature: str) -> tuple[Cosignature, Checkpoint, bool]:
    """Keep a registered witness's cosignature of the checkpoint of ``tree_size``.

    Returns ``(cosignature, checkpoint, created)``; a witness that cosigns the same checkpoint again
    gets its first cosignature back (``created`` false). Refusals: 404 ``not_found`` (no checkpoint of
    that size), 422 ``witness_unknown``, 422 ``cosignature_invalid`` (malformed, another key, not over
    this checkpoint's note, or dated in the future).
    """
    witness = db.session.execute(select(Witness).where(Witness.name == name)).scalar_one_or_none()
    if witness is None:
        raise ValidationFailed(f"No witness named {name!r} is registered here.", code="witness_unknown",
                               errors={"name": ["Not a registered witness."]})
    candidates = list(db.session.execute(
        select(Checkpoint).where(Checkpoint.tree_size == tree_size).order_by(Checkpoint.id.desc())).scalars())
    if not candidates:
        raise NotFound(f"No checkpoint of tree size {tree_size}.")
    blob = _decode_b64(signature, "signature")
    try:
        key_id, timestamp, _ = notes.parse_cosignature(blob)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="cosignature_invalid", errors={"signature": [str(exc)]}) from None
    if key_id.hex() != witness.key_id:
        raise ValidationFailed("The cosignature's key ID is not this witness's key.", code="cosignature_invalid",
                               errors={"signature": ["Key ID does not match the witness."]})
    if timestamp > int(now().astimezone(UTC).timestamp()) + FUTURE_SLACK_SECONDS:
        raise ValidationFailed("The cosignature is dated in the future.", code="cosignature_invalid",
                               errors={"signature": ["Timestamp is in the future."]})
    public = base64.b64decode(witness.public_key)
    checkpoint = next((cp for cp in candidates
                       if notes.verify_cosignature(public, witness.name, cp.note, blob) is not None), None)
    if checkpoint is None:
        raise ValidationFailed("The cosignature does not verify over this checkpoint's note with the witness's key.",
                               code="cosignature_invalid", errors={"signature": ["Does not verify."]})
    existing = _existing(checkpoint.id, witness.id)
    if existing is not None:
        return existing, checkpoint, False
    cosignature = Cosignature(checkpoint_id=checkpoint.id, witness_id=witness.id, timestamp=timestamp,
                              signature=base64.b64encode(blob).decode("ascii"), created_at=utc_naive())
    try:
        with db.session.begin_nested():
            db.session.add(cosignature)
    except IntegrityError:  # the same witness, concurrently
        found = _existing(checkpoint.id, witness.id)
        assert found is not None
        return found, checkpoint, False
    record("checkpoint.cosign", actor=f"witness:{witness.name}", target=f"checkpoint:{checkpoint.id}",
           tree_size=checkpoint.tree_size, witness=witness.name, key_id=witness.key_id, timestamp=timestamp)
    return cosignature, checkpoint, True


def _existing(checkpoint_id: int, witness_id: int) -> Cosignature | None:
    return db.session.execute(select(Cosignature).where(
        Cosignature.checkpoint_id == checkpoint_id, Cosignature.witness_id == witness_id)).scalar_one_or_none()


def verify_cosignatures(result: dict) -> None:
    """A ``timebank verify`` hook: every stored cosignature verifies with its witness's key over its
    checkpoint's note."""
    rows = db.session.execute(
        select(Cosignature, Witness, Checkpoint).join(Witness, Witness.id == Cosignature.witness_id)
        .join(Checkpoint, Checkpoint.id == Cosignature.checkpoint_id).order_by(Cosignature.id)).all()
    for cosignature, witness, checkpoint in rows:
        try:
            blob = base64.b64decode(cosignature.signature, validate=True)
        except ValueError:
            blob = b""
        timestamp = notes.verify_cosignature(base64.b64decode(witness.public_key), witness.name, checkpoint.note,
                                             blob)
        if timestamp != cosignature.timestamp:
            result["problems"].append({"transaction_id": None, "problem": (
                f"cosignature {cosignature.id} by {witness.name} of checkpoint {checkpoint.id} does not verify")})
    result["notes"].append(f"{len(rows)} witness cosignatures signature-checked")
