#!/usr/bin/env python3
"""Independently verify checkpoints and Merkle proofs published by the ledger.

This script is deliberately standalone: it needs only the Python standard
library and the ``cryptography`` package, and it does not import the ledger
code, so a third party can read it top to bottom and trust it without trusting
the server. The algorithms are the RFC 6962 / RFC 9162 ones:

* leaf hash  = SHA-256(0x00 || leaf bytes)
* node hash  = SHA-256(0x01 || left || right)
* inclusion proofs verified per RFC 9162 section 2.1.3.2
* consistency proofs verified per RFC 9162 section 2.1.4.2
* checkpoints are C2SP tlog-checkpoint notes signed with Ed25519 (C2SP
  signed-note); key ID = SHA-256(origin || 0x0A || 0x01 || public key)[:4]
* witness cosignatures are C2SP tlog-cosignature (Ed25519 cosignature/v1):
  Ed25519 over "cosignature/v1\ntime <T>\n" + the note, in a note signature
  key ID || T (big-endian u64) || signature; key ID =
  SHA-256(name || 0x0A || 0x04 || public key)[:4]

Subcommands (run with ``--help`` for all options)::

    checkpoint   --json CHECKPOINT.json --public-key BASE64 [--origin NAME]
                 --note NOTE.txt --signature BASE64 --public-key BASE64
                 --signed-note SIGNED_NOTE.txt --public-key BASE64
                 [--witness-key NAME=BASE64 ... [--quorum N]]
    statement    --json STATEMENT.json --public-key BASE64 [--origin NAME]
                 [--qr TEXT | --qr-file FILE] [--witness-key NAME=BASE64 ... [--quorum N]]
    inclusion    --json PROOF.json [--root HEX] [--tree-size N] [--leaf-hash HEX]
                 --leaf-hash HEX --index N --tree-size N --root HEX [--path HEX ...]
    consistency  --json PROOF.json --first-root HEX --second-root HEX
                 --first N --second N --first-root HEX --second-root HEX [--proof HEX ...]
    leaf         --file PATH | --hex HEX | --text STRING   [--expect HEX]

A JSON file name of ``-`` reads standard input. Exit status is 0 with a line
starting ``OK`` on success, 1 with a line starting ``FAILED:`` otherwise (2 for
command-line usage errors).

What a successful check means: a proof only ties a leaf (or an old tree) to a
*root*. Compare that root with one taken from a checkpoint whose signature you
verified with a public key you obtained out of band; the ``--root`` option of
``inclusion`` does exactly that comparison. Fields outside the signed note text,
such as a ``timestamp`` in the JSON, are not covered by the signature.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
ED25519_SIGNATURE_TYPE = b"\x01"
COSIGNATURE_V1_TYPE = b"\x04"
EM_DASH = "\u2014"

_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_TREE_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class VerificationError(Exception):
    """Raised for any failed check; the message is printed after ``FAILED:``."""


# --------------------------------------------------------------------------
# Hashing and proof verification (duplicated from the ledger on purpose)
# --------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, returning the computed root."""
    if index >= size:
        raise VerificationError(f"leaf index {index} is not below tree size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("audit path is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # On the right edge some levels have no sibling, hence no proof element.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("audit path is shorter than the tree is high")
    return r


def check_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2; raises VerificationError unless consistent."""
    if first > second:
        raise VerificationError(f"first size {first} is larger than second size {second}")
    if first == 0:
        if proof:
            raise VerificationError("a proof from the empty tree must be empty")
        if first_root != EMPTY_ROOT:
            raise VerificationError("first root is not the empty-tree hash")
        return
    if first == second:
        if proof:
            raise VerificationError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise VerificationError("equal tree sizes but different roots")
        return
    if not proof:
        raise VerificationError("empty consistency proof")
    path = list(proof)
    # A perfect old tree is a node of the new tree, so its root is implied.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    if fr != first_root:
        raise VerificationError("proof does not reproduce the first root")
    if sr != second_root:
        raise VerificationError("proof does not reproduce the second root")


# --------------------------------------------------------------------------
# Checkpoint (signed note) verification
# --------------------------------------------------------------------------


def key_id(origin: str, public_key: bytes) -> bytes:
    digest = hashlib.sha256(origin.encode("utf-8") + b"\n" + ED25519_SIGNATURE_TYPE + public_key)
    return digest.digest()[:4]


def parse_checkpoint_body(note: str) -> tuple[str, int, bytes]:
    """Strictly parse ``origin\\nsize\\nbase64(root)\\n``."""
    if not note.endswith("\n"):
        raise VerificationError("note does not end with a newline")
    lines = note[:-1].split("\n")
    if len(lines) != 3:
        raise VerificationError(f"note has {len(lines)} lines, expected 3")
    origin, size_text, root_text = lines
    if not origin or _CONTROL_RE.search(origin):
        raise VerificationError("note origin line is empty or has control characters")
    if not _TREE_SIZE_RE.fullmatch(size_text):
        raise VerificationError("note tree size is not a canonical decimal number")
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise VerificationError("note root hash is not base64") from None
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
        raise VerificationError("note root hash is not canonical base64 of 32 bytes")
    return origin, int(size_text), root


def check_signature(public_key: bytes, note: str, signature: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, note.encode("utf-8"))
    except InvalidSignature:
        raise VerificationError("signature does not verify with the given public key") from None


def split_signed_note(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (key name, blob) signature lines."""
    # The text ends at the last blank line; signatures follow.
    cut = text.rfind("\n\n")
    if cut < 0 or not text.endswith("\n"):
        raise VerificationError("not a signed note (no blank line before signatures)")
    body, sig_block = text[: cut + 1], text[cut + 2 :]
    signatures = []
    for line in sig_block[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH or not parts[1]:
            raise VerificationError(f"malformed signature line: {line!r}")
        try:
            blob = base64.b64decode(parts[2].encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise VerificationError(f"signature line is not base64: {line!r}") from None
        if len(blob) < 5:
            raise VerificationError(f"signature line too short: {line!r}")
        signatures.append((parts[1], blob))
    return body, signatures


# --------------------------------------------------------------------------
# Witness cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1)
# --------------------------------------------------------------------------


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + COSIGNATURE_V1_TYPE + public_key).digest()[:4]


def parse_witness_key(text: str) -> tuple[str, bytes]:
    """``NAME=BASE64``: the witness's key name (no '=' in it) and its raw Ed25519 public key."""
    name, sep, key = text.partition("=")
    if not sep or not name or _CONTROL_RE.search(name) or " " in name or "+" in name:
        raise VerificationError(f"--witness-key must be NAME=BASE64KEY, got {text!r}")
    return name, decode_public_key(key)


def cosigners(note: str, signatures: list[tuple[str, bytes]], witnesses: dict[str, bytes]) -> list[str]:
    """Names of the given witnesses with a valid cosignature/v1 of ``note`` among ``signatures``."""
    found = []
    for name, public_key in witnesses.items():
        kid = cosignature_key_id(name, public_key)
        for line_name, blob in signatures:
            if line_name != name or len(blob) != 76 or blob[:4] != kid:
                continue
            timestamp = int.from_bytes(blob[4:12], "big")
            if timestamp > 2**63 - 1:
                continue
            message = f"cosignature/v1\ntime {timestamp}\n{note}".encode()
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(blob[12:], message)
            except InvalidSignature:
                continue
            found.append(name)
            break
    return found


# --------------------------------------------------------------------------
# Input decoding
# --------------------------------------------------------------------------


def decode_hash(value: Any, what: str) -> bytes:
    """A 32-byte hash given as 64 hex characters."""
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE or not _HEX_RE.fullmatch(value):
        raise VerificationError(f"{what} must be {2 * HASH_SIZE} hex characters")
    return bytes.fromhex(value)


def decode_hash_hex_or_b64(value: Any, what: str) -> bytes:
    """A 32-byte hash as hex or as base64 (the two lengths cannot be confused)."""
    if isinstance(value, str) and len(value) == 2 * HASH_SIZE:
        return decode_hash(value, what)
    raw = decode_b64(value, what)
    if len(raw) != HASH_SIZE:
        raise VerificationError(f"{what} must be 32 bytes")
    return raw


def decode_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise VerificationError(f"{what} is not valid base64") from None


def decode_size(value: Any, what: str) -> int:
    # JSON booleans are ints in Python; a tree size of `true` is an error.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise VerificationError(f"{what} must be a non-negative integer")
    return value


def decode_hash_list(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise VerificationError(f"{what} must be a list of hex hashes")
    return [decode_hash(item, f"{what}[{i}]") for i, item in enumerate(value)]


def decode_public_key(value: str) -> bytes:
    raw = decode_b64(value, "public key")
    if len(raw) != 32:
        raise VerificationError("public key must be 32 bytes (raw Ed25519, base64)")
    return raw


def read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationError(f"cannot read {path}: {exc}") from None


def read_json(path: str) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise VerificationError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VerificationError(f"{path} must contain a JSON object")
    return data


def require(data: dict[str, Any], key: str) -> Any:
    if key not in data:
        raise VerificationError(f"JSON is missing {key!r}")
    return data[key]


# --------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------


def checked_signature(note: Any, signature_b64: Any, public_key: bytes, origin_wanted: str | None):
    """``(origin, size, root, key id)`` of a checkpoint note once the log's signature verifies."""
    if not isinstance(note, str):
        raise VerificationError("'note' must be a string")
    origin, size, root = parse_checkpoint_body(note)
    kid = key_id(origin, public_key)
    signature = decode_b64(signature_b64, "signature")
    # Accept the signed-note form key ID || signature as well, but only for our key.
    if len(signature) == 68:
        if signature[:4] != kid:
            raise VerificationError("signature's key ID prefix does not match the public key")
        signature = signature[4:]
    if len(signature) != 64:
        raise VerificationError("Ed25519 signature must be 64 bytes")
    if origin_wanted is not None and origin != origin_wanted:
        raise VerificationError(f"origin is {origin!r}, expected {origin_wanted!r}")
    check_signature(public_key, note, signature)
    return origin, size, root, kid


def check_json_agrees(data: dict[str, Any], size: int, root: bytes, kid: bytes) -> None:
    """The JSON repeats values from the note for convenience; they must agree with what was signed,
    or a client reading the JSON fields would be misled."""
    if "key_id" in data and data["key_id"] != kid.hex():
        raise VerificationError(f"key_id {data['key_id']!r} does not match {kid.hex()}")
    if "tree_size" in data and decode_size(data["tree_size"], "tree_size") != size:
        raise VerificationError("tree_size in JSON differs from the signed note")
    if "root_hash" in data and decode_hash_hex_or_b64(data["root_hash"], "root_hash") != root:
        raise VerificationError("root_hash in JSON differs from the signed note")


def json_cosignatures(data: dict[str, Any]) -> list[tuple[str, bytes]]:
    """``(witness name, note signature)`` of the API's ``cosignatures`` list."""
    found = []
    listed = data.get("cosignatures", [])
    if not isinstance(listed, list):
        raise VerificationError("'cosignatures' must be a list")
    for i, item in enumerate(listed):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise VerificationError(f"cosignatures[{i}] must be an object with a name and a signature")
        found.append((item["name"], decode_b64(item.get("signature"), f"cosignatures[{i}].signature")))
    return found


def quorum_message(args: argparse.Namespace, note: str, cosignatures: list[tuple[str, bytes]]) -> str:
    """Check ``--witness-key`` / ``--quorum``; the text to add to the OK line ("" when not asked)."""
    witnesses: dict[str, bytes] = {}
    for text in args.witness_key or []:
        name, key = parse_witness_key(text)
        witnesses[name] = key
    quorum = args.quorum if args.quorum is not None else len(witnesses)
    if quorum < 0:
        raise VerificationError("--quorum must not be negative")
    if quorum > len(witnesses):
        raise VerificationError(f"--quorum {quorum} needs at least {quorum} different --witness-key")
    if not witnesses:
        return ""
    cosigned = cosigners(note, cosignatures, witnesses)
    if len(cosigned) < quorum:
        raise VerificationError(
            f"only {len(cosigned)} of the {quorum} witnesses required cosigned this checkpoint"
            f" ({', '.join(cosigned) or 'none'})"
        )
    return f" cosigned_by={','.join(cosigned) or '-'} quorum={quorum}"


def cmd_checkpoint(args: argparse.Namespace) -> str:
    public_key = decode_public_key(args.public_key)
    sources = [args.json is not None, args.note is not None, args.signed_note is not None]
    if sum(sources) != 1:
        raise VerificationError("give exactly one of --json, --note or --signed-note")

    data: dict[str, Any] = {}
    cosignatures: list[tuple[str, bytes]] = []
    if args.signed_note is not None:
        note, signatures = split_signed_note(read_text(args.signed_note))
        origin, size, root = parse_checkpoint_body(note)
        kid = key_id(origin, public_key)
        # Per signed-note, only lines whose name and key ID both match our key count.
        mine = [blob[4:] for name, blob in signatures if name == origin and blob[:4] == kid]
        if not mine:
            raise VerificationError(f"no signature by key {origin} {kid.hex()} in the note")
        origin, size, root, kid = checked_signature(
            note, base64.b64encode(mine[0]).decode("ascii"), public_key, args.origin)
        cosignatures = [(name, blob) for name, blob in signatures if name != origin]
    else:
        if args.json is not None:
            data = read_json(args.json)
            note = require(data, "note")
            signature_b64 = require(data, "signature")
            cosignatures = json_cosignatures(data)
        else:
            if args.signature is None:
                raise VerificationError("--note needs --signature")
            note = read_text(args.note)
            signature_b64 = args.signature
        origin, size, root, kid = checked_signature(note, signature_b64, public_key, args.origin)
    check_json_agrees(data, size, root, kid)

    message = (
        f"OK checkpoint origin={origin} tree_size={size} "
        f"root_hash={root.hex()} key_id={kid.hex()}"
    )
    message += quorum_message(args, note, cosignatures)
    if "timestamp" in data:
        message += " (timestamp is not covered by the signature)"
    return message


# --------------------------------------------------------------------------
# Household statements
# --------------------------------------------------------------------------

STATEMENT_FORMAT = "timebank-statement/v1"


def statement_digest(account: str, month: str, opening: int, closing: int, leaf_hashes: list[str]) -> str:
    """SHA-256 (hex) of the canonical JSON of what the statement says: printed in its QR code."""
    record = {"account": account, "closing": closing, "leaf_hashes": leaf_hashes, "month": month,
              "opening": opening, "v": 1}
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _amount_in_leaf(leaf: dict[str, Any], account: str, unit: str) -> int:
    postings = leaf.get("postings")
    if not isinstance(postings, list):
        raise VerificationError("a leaf has no postings")
    total = 0
    for posting in postings:
        if not (isinstance(posting, list) and len(posting) == 3):
            raise VerificationError("a leaf's posting is not [account, unit, amount]")
        if posting[0] == account and posting[1] == unit:
            total += decode_int(posting[2], "posting amount")
    return total


def decode_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise VerificationError(f"{what} must be an integer")
    return value


def cmd_statement(args: argparse.Namespace) -> str:
    public_key = decode_public_key(args.public_key)
    data = read_json(args.json)
    if data.get("format") != STATEMENT_FORMAT:
        raise VerificationError(f"not a statement of the form {STATEMENT_FORMAT}")
    household = require(data, "household")
    if not isinstance(household, dict) or not isinstance(household.get("account"), str):
        raise VerificationError("'household' must name its account")
    account, unit = household["account"], require(data, "unit")
    month = require(data, "month")
    if not isinstance(month, str) or not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        raise VerificationError("'month' must be YYYY-MM")
    opening = decode_int(require(data, "opening"), "opening")
    closing = decode_int(require(data, "closing"), "closing")
    checkpoint = require(data, "checkpoint")
    if not isinstance(checkpoint, dict):
        raise VerificationError("the statement has no signed checkpoint yet: it cannot be verified")
    note = require(checkpoint, "note")
    origin, size, root, kid = checked_signature(note, require(checkpoint, "signature"), public_key, args.origin)
    check_json_agrees(checkpoint, size, root, kid)
    quorum = quorum_message(args, note, json_cosignatures(checkpoint))

    transactions = require(data, "transactions")
    proofs = require(data, "proofs")
    if not isinstance(transactions, list) or not isinstance(proofs, list):
        raise VerificationError("'transactions' and 'proofs' must be lists")
    by_id: dict[int, dict[str, Any]] = {}
    for proof in proofs:
        if not isinstance(proof, dict):
            raise VerificationError("each proof must be an object")
        by_id[decode_size(require(proof, "transaction_id"), "transaction_id")] = proof
    total, leaf_hashes, missing, last_id = 0, [], [], 0
    for i, tx in enumerate(transactions):
        if not isinstance(tx, dict):
            raise VerificationError(f"transactions[{i}] must be an object")
        tx_id = decode_size(require(tx, "id"), f"transactions[{i}].id")
        if tx_id <= last_id:
            raise VerificationError("transactions must be in increasing id order, each once")
        last_id = tx_id
        leaf_text = require(tx, "leaf")
        if not isinstance(leaf_text, str):
            raise VerificationError(f"transaction {tx_id}: 'leaf' must be the leaf's text")
        leaf_bytes = leaf_text.encode("utf-8")
        try:
            leaf = json.loads(leaf_text)
        except json.JSONDecodeError:
            raise VerificationError(f"transaction {tx_id}: the leaf is not JSON") from None
        if not isinstance(leaf, dict) or leaf.get("id") != tx_id or leaf.get("v") != 1:
            raise VerificationError(f"transaction {tx_id}: the leaf is of another transaction or format")
        amount = _amount_in_leaf(leaf, account, unit)
        if amount == 0 or decode_int(require(tx, "amount"), f"transaction {tx_id} amount") != amount:
            raise VerificationError(f"transaction {tx_id}: the amount shown is not what the leaf moves on {account}")
        for field in ("kind", "memo"):
            if field in tx and tx[field] != leaf.get(field):
                raise VerificationError(f"transaction {tx_id}: {field} shown differs from the leaf")
        digest = leaf_hash(leaf_bytes)
        leaf_hashes.append(digest.hex())
        total += amount
        proof = by_id.get(tx_id)
        if proof is None:
            missing.append(tx_id)
            continue
        if decode_hash(require(proof, "leaf_hash"), "leaf_hash") != digest:
            raise VerificationError(f"transaction {tx_id}: the leaf does not hash to the proof's leaf_hash")
        if decode_size(require(proof, "leaf_index"), "leaf_index") != tx_id - 1:
            raise VerificationError(f"transaction {tx_id}: the proof is for another position")
        if decode_size(require(proof, "tree_size"), "tree_size") != size:
            raise VerificationError(f"transaction {tx_id}: the proof is not against the checkpoint's tree")
        path = decode_hash_list(require(proof, "audit_path"), "audit_path")
        computed = root_from_inclusion_proof(digest, tx_id - 1, size, path)
        if computed != root:
            raise VerificationError(f"transaction {tx_id}: not in the checkpoint's tree (the proof leads elsewhere)")
    if missing:
        raise VerificationError(
            f"{len(missing)} entries are not yet in the signed checkpoint (ids {', '.join(map(str, missing[:10]))});"
            " fetch the statement again after the next checkpoint"
        )
    if opening + total != closing:
        raise VerificationError(f"opening {opening} plus the entries {total:+d} is not the closing {closing}")
    digest_hex = statement_digest(account, month, opening, closing, leaf_hashes)
    if args.qr is not None or args.qr_file is not None:
        check_qr(args.qr if args.qr is not None else read_text(args.qr_file), account, month, opening, closing,
                 len(transactions), digest_hex, note, public_key)
    return (
        f"OK statement {account} {month} opening={opening} closing={closing} entries={len(transactions)} "
        f"tree_size={size} root_hash={root.hex()} key_id={kid.hex()} digest={digest_hex}{quorum}"
        + (" qr=matches" if args.qr is not None or args.qr_file is not None else "")
    )


def check_qr(text: str, account: str, month: str, opening: int, closing: int, count: int, digest_hex: str,
             note: str, public_key: bytes) -> None:
    """The printed QR code: the statement's figures and digest, then the checkpoint as a signed note."""
    lines = text.replace("\r\n", "\n").split("\n", 3)
    if len(lines) < 4 or lines[0] != STATEMENT_FORMAT:
        raise VerificationError("the QR text is not a statement's")
    expected = f"{account} {month} {opening} {closing} {count}"
    if lines[1] != expected:
        raise VerificationError(f"the QR says {lines[1]!r}, the statement {expected!r}")
    if lines[2] != f"sha256 {digest_hex}":
        raise VerificationError("the QR's digest is not the statement's")
    qr_note, signatures = split_signed_note(lines[3] if lines[3].endswith("\n") else lines[3] + "\n")
    if qr_note != note:
        raise VerificationError("the QR's checkpoint is not the statement's")
    origin = parse_checkpoint_body(qr_note)[0]
    kid = key_id(origin, public_key)
    mine = [blob[4:] for name, blob in signatures if name == origin and blob[:4] == kid]
    if not mine:
        raise VerificationError("the QR's checkpoint carries no signature by the given key")
    check_signature(public_key, qr_note, mine[0])


def cmd_inclusion(args: argparse.Namespace) -> str:
    if args.json is not None:
        data = read_json(args.json)
        index = decode_size(require(data, "leaf_index"), "leaf_index")
        size = decode_size(require(data, "tree_size"), "tree_size")
        leaf = decode_hash(require(data, "leaf_hash"), "leaf_hash")
        path = decode_hash_list(require(data, "audit_path"), "audit_path")
        root = decode_hash(require(data, "root_hash"), "root_hash")
        # Optional pins: the root from a verified checkpoint, the leaf hash the
        # user computed from the leaf bytes themselves.
        if args.root is not None and decode_hash(args.root, "--root") != root:
            raise VerificationError("root_hash in JSON differs from --root")
        if args.leaf_hash is not None and decode_hash(args.leaf_hash, "--leaf-hash") != leaf:
            raise VerificationError("leaf_hash in JSON differs from --leaf-hash")
        # A proof alone does not pin the tree size (leaf 0 has the same path in
        # trees of 65 and 66 leaves); the checkpoint's size and root do.
        if args.tree_size is not None and args.tree_size != size:
            raise VerificationError("tree_size in JSON differs from --tree-size")
        if args.index is not None and args.index != index:
            raise VerificationError("leaf_index in JSON differs from --index")
    else:
        missing = [
            name
            for name, value in (
                ("--leaf-hash", args.leaf_hash),
                ("--index", args.index),
                ("--tree-size", args.tree_size),
                ("--root", args.root),
            )
            if value is None
        ]
        if missing:
            raise VerificationError("without --json, also give " + ", ".join(missing))
        index, size = args.index, args.tree_size
        if index < 0 or size < 0:
            raise VerificationError("index and tree size must be non-negative")
        leaf = decode_hash(args.leaf_hash, "--leaf-hash")
        root = decode_hash(args.root, "--root")
        path = [decode_hash(h, f"--path[{i}]") for i, h in enumerate(args.path)]

    computed = root_from_inclusion_proof(leaf, index, size, path)
    if computed != root:
        raise VerificationError(f"audit path leads to root {computed.hex()}, not {root.hex()}")
    return f"OK inclusion leaf_index={index} tree_size={size} root_hash={root.hex()}"


def cmd_consistency(args: argparse.Namespace) -> str:
    if args.first_root is None or args.second_root is None:
        raise VerificationError("--first-root and --second-root are required")
    first_root = decode_hash(args.first_root, "--first-root")
    second_root = decode_hash(args.second_root, "--second-root")
    if args.json is not None:
        data = read_json(args.json)
        first = decode_size(require(data, "first"), "first")
        second = decode_size(require(data, "second"), "second")
        proof = decode_hash_list(require(data, "proof"), "proof")
    else:
        if args.first is None or args.second is None:
            raise VerificationError("without --json, give --first and --second")
        first, second = args.first, args.second
        if first < 0 or second < 0:
            raise VerificationError("tree sizes must be non-negative")
        proof = [decode_hash(h, f"--proof[{i}]") for i, h in enumerate(args.proof)]
    check_consistency(first, second, first_root, second_root, proof)
    return f"OK consistency first={first} second={second}"


def cmd_leaf(args: argparse.Namespace) -> str:
    if args.file is not None:
        try:
            if args.file == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as fh:
                    data = fh.read()
        except OSError as exc:
            raise VerificationError(f"cannot read {args.file}: {exc}") from None
    elif args.hex is not None:
        if not _HEX_RE.fullmatch(args.hex) or len(args.hex) % 2:
            raise VerificationError("--hex must be an even number of hex digits")
        data = bytes.fromhex(args.hex)
    else:
        data = args.text.encode("utf-8")
    digest = leaf_hash(data)
    if args.expect is not None and decode_hash(args.expect, "--expect") != digest:
        raise VerificationError(f"leaf hash is {digest.hex()}, expected {args.expect.lower()}")
    return f"OK leaf_hash={digest.hex()}"


def add_quorum_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--witness-key", action="append", metavar="NAME=BASE64",
                   help="a witness's name and raw Ed25519 public key (repeat for each witness)")
    p.add_argument("--quorum", type=int, help="how many of the witnesses must have cosigned (default: all given)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Verify ledger checkpoints and Merkle proofs (RFC 6962/9162, C2SP).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("checkpoint", help="verify a signed checkpoint")
    p.add_argument("--public-key", required=True, help="raw 32-byte Ed25519 public key, base64")
    p.add_argument("--json", metavar="FILE", help="checkpoint JSON as returned by the API")
    p.add_argument("--note", metavar="FILE", help="checkpoint note text (use with --signature)")
    p.add_argument("--signature", metavar="BASE64", help="Ed25519 signature of the note")
    p.add_argument("--signed-note", metavar="FILE", help="a standard C2SP signed note")
    p.add_argument("--origin", help="require this origin (log name)")
    add_quorum_options(p)
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("statement", help="verify a household statement and its proofs")
    p.add_argument("--json", metavar="FILE", required=True, help="statement JSON as returned by the API")
    p.add_argument("--public-key", required=True, help="the log's raw 32-byte Ed25519 public key, base64")
    p.add_argument("--origin", help="require this origin (log name)")
    qr = p.add_mutually_exclusive_group()
    qr.add_argument("--qr", metavar="TEXT", help="the text of the printed statement's QR code")
    qr.add_argument("--qr-file", metavar="FILE", help="the QR code's text in a file")
    add_quorum_options(p)
    p.set_defaults(func=cmd_statement)

    p = sub.add_parser("inclusion", help="verify an inclusion proof")
    p.add_argument("--json", metavar="FILE", help="inclusion proof JSON as returned by the API")
    p.add_argument("--leaf-hash", metavar="HEX")
    p.add_argument("--index", type=int)
    p.add_argument("--tree-size", type=int)
    p.add_argument("--path", nargs="*", default=[], metavar="HEX", help="audit path, leaf first")
    p.add_argument("--root", metavar="HEX", help="expected root (e.g. from a verified checkpoint)")
    p.set_defaults(func=cmd_inclusion)

    p = sub.add_parser("consistency", help="verify a consistency proof")
    p.add_argument("--json", metavar="FILE", help="consistency proof JSON as returned by the API")
    p.add_argument("--first", type=int)
    p.add_argument("--second", type=int)
    p.add_argument("--proof", nargs="*", default=[], metavar="HEX")
    p.add_argument("--first-root", metavar="HEX")
    p.add_argument("--second-root", metavar="HEX")
    p.set_defaults(func=cmd_consistency)

    p = sub.add_parser("leaf", help="compute the RFC 6962 leaf hash of some bytes")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", metavar="PATH", help="read leaf bytes from a file (- = stdin)")
    source.add_argument("--hex", metavar="HEX", help="the leaf bytes as hex")
    source.add_argument("--text", metavar="STRING", help="the leaf bytes as UTF-8 text")
    p.add_argument("--expect", metavar="HEX", help="fail unless the leaf hash equals this")
    p.set_defaults(func=cmd_leaf)
    return parser


def fail(reason: str) -> NoReturn:
    print(f"FAILED: {reason}")
    sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        message = args.func(args)
    except VerificationError as exc:
        fail(str(exc))
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
