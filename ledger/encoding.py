"""Canonical byte encoding of a ledger transaction (version 1) and the hash chain.

The encoding is documented in ``docs/ledger-format.md`` so that anyone can re-implement it. In short:

* The leaf bytes of a transaction are the UTF-8 bytes of a JSON object with keys sorted, no
  insignificant white space, non-ASCII characters written as themselves (not ``\\u`` escapes), and
  only strings, integers, ``null`` and arrays as values.
* ``leaf_hash = SHA-256(0x00 || leaf_bytes)`` (the RFC 6962 leaf hash).
* ``hash = SHA-256(prev_hash || leaf_hash)`` over raw 32-byte values; the first transaction's
  ``prev_hash`` is 32 zero bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "00" * 32


def format_time(moment: datetime) -> str:
    """UTC, microsecond precision, with a trailing Z: one spelling per instant."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def leaf_bytes(
    *,
    id: int,
    created_at: datetime,
    kind: str,
    category: str | None,
    memo: str,
    actor: str | None,
    reference: str | None,
    reverses_id: int | None,
    postings: list[tuple[str, str, int]],
) -> bytes:
    """The bytes that are hashed for a transaction. ``postings`` are (account code, unit, amount)."""
    record = {
        "v": FORMAT_VERSION,
        "id": id,
        "created_at": format_time(created_at),
        "kind": kind,
        "category": category,
        "memo": memo,
        "actor": actor,
        "reference": reference,
        "reverses_id": reverses_id,
        "postings": [list(p) for p in sorted(postings)],
    }
    return canonical_json(record)


def leaf_hash(data: bytes) -> str:
    return hashlib.sha256(b"\x00" + data).hexdigest()


def chain_hash(prev_hash: str, leaf_hash_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + bytes.fromhex(leaf_hash_hex)).hexdigest()


def request_hash(value: Any) -> str:
    """Hash of what a caller asked for, used to tell a retry from a reuse of an idempotency key."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
