"""Signed checkpoints in the C2SP ``tlog-checkpoint`` / ``signed-note`` format.

A checkpoint commits a log operator to one tree head. Its body (the "note
text") is exactly three lines::

    <origin>
    <tree size in decimal>
    <base64 of the 32-byte RFC 6962 root hash>

and it is signed with Ed25519 over the UTF-8 bytes of that body, as specified in
https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md and
https://github.com/C2SP/C2SP/blob/main/signed-note.md.

Why this format: it is small, text-based, already understood by transparency
tooling (witnesses, ``sumdb``-style verifiers), and the signature covers a
canonical byte string, so there is no JSON-canonicalisation question about what
was signed. Anything not in the body -- a timestamp in an HTTP response, for
instance -- is *not* covered by the signature.

Two renderings are supported:

* the pieces separately (body + base64 raw 64-byte signature + key ID), which is
  what a JSON API can expose; and
* the standard signed note (:func:`signed_note_text`): body, blank line, and
  ``— <key name> base64(key ID || signature)``.

Key IDs follow signed-note's recommendation: the first four bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key), where 0x01
is the Ed25519 signature type. The key name is the log's origin.

Parsing is strict (canonical decimal, canonical base64, exactly three lines, no
control characters) because a verifier that accepts several spellings of one
checkpoint invites confusion about what was actually signed. This log never
emits extension lines, so bodies with extension lines are rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "format_checkpoint_body",
    "parse_checkpoint_body",
    "generate_key",
    "save_private_key",
    "load_private_key",
    "raw_public_key",
    "key_id",
    "key_id_bytes",
    "sign_note",
    "verify_note",
    "signed_note_text",
    "COSIGNATURE_V1_TYPE",
    "check_key_name",
    "cosignature_key_id",
    "cosignature_key_id_bytes",
    "cosignature_message",
    "sign_cosignature",
    "parse_cosignature",
    "verify_cosignature",
    "note_signature_line",
]

#: Signature type byte for Ed25519 in signed-note key IDs.
ED25519_SIGNATURE_TYPE = b"\x01"
ROOT_HASH_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
ED25519_PUBLIC_KEY_SIZE = 32

# ASCII digits only: str.isdigit() and \d would accept other Unicode digits.
_TREE_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
# Signed notes must not contain control characters other than newline; the
# origin line may not contain a newline either.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _check_origin(origin: object) -> str:
    if not isinstance(origin, str) or not origin:
        raise ValueError("origin must be a non-empty string")
    if _CONTROL_RE.search(origin):
        raise ValueError("origin must not contain control characters or newlines")
    return origin


def check_key_name(name: object) -> str:
    """A signed-note key name (a log's origin, a witness's name): non-empty, no spaces, no '+'."""
    return _check_key_name(name)


def _check_key_name(name: object) -> str:
    name = _check_origin(name)
    # signed-note: key names must not contain Unicode spaces or '+', since the
    # signature line is split on spaces.
    if "+" in name or any(ch.isspace() for ch in name):
        raise ValueError("key name must not contain spaces or '+'")
    return name


# --------------------------------------------------------------------------
# Checkpoint body
# --------------------------------------------------------------------------


def format_checkpoint_body(origin: str, tree_size: int, root_hash: bytes) -> str:
    """``origin + "\\n" + str(tree_size) + "\\n" + base64(root_hash) + "\\n"``."""
    _check_origin(origin)
    if not isinstance(tree_size, int) or isinstance(tree_size, bool) or tree_size < 0:
        raise ValueError("tree_size must be a non-negative int")
    if not isinstance(root_hash, bytes) or len(root_hash) != ROOT_HASH_SIZE:
        raise ValueError("root_hash must be 32 bytes")
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode('ascii')}\n"


def parse_checkpoint_body(text: str) -> tuple[str, int, bytes]:
    """Parse a checkpoint body into ``(origin, tree_size, root_hash)``.

    Raises :class:`ValueError` unless ``text`` is exactly what
    :func:`format_checkpoint_body` would produce for the returned values.
    """
    if not isinstance(text, str):
        raise ValueError("checkpoint body must be a string")
    if not text.endswith("\n"):
        raise ValueError("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise ValueError(f"checkpoint body must have exactly 3 lines, got {len(lines)}")
    origin, size_text, root_text = lines
    _check_origin(origin)
    if not _TREE_SIZE_RE.fullmatch(size_text):
        raise ValueError("tree size must be decimal digits without leading zeros")
    tree_size = int(size_text)
    try:
        root_hash = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("root hash is not valid base64") from exc
    if len(root_hash) != ROOT_HASH_SIZE:
        raise ValueError("root hash must decode to 32 bytes")
    # Re-encoding rejects non-canonical padding bits, so each root has one spelling.
    if base64.b64encode(root_hash).decode("ascii") != root_text:
        raise ValueError("root hash is not canonical base64")
    return origin, tree_size, root_hash


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def save_private_key(
    key: Ed25519PrivateKey, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, readable by the owner only (0600).

    Refuses to replace an existing file unless ``overwrite`` is true: silently
    replacing a log's signing key would orphan every checkpoint signed so far.
    The file is created with mode 0600 from the start rather than chmod-ed
    afterwards, so the key is never briefly world-readable.
    """
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(os.fspath(path), flags, 0o600)
    try:
        # An existing file keeps its old mode under O_TRUNC; tighten it.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd != -1:
            os.close(fd)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load an unencrypted PEM private key; it must be Ed25519."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of the public key (of a private or public key)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def key_id_bytes(origin: str, public_key_raw: bytes) -> bytes:
    """4-byte signed-note key ID: SHA-256(name || 0x0A || 0x01 || pubkey)[:4]."""
    _check_origin(origin)
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != ED25519_PUBLIC_KEY_SIZE:
        raise ValueError("public key must be 32 raw bytes")
    digest = hashlib.sha256(
        origin.encode("utf-8") + b"\n" + ED25519_SIGNATURE_TYPE + public_key_raw
    ).digest()
    return digest[:4]


def key_id(origin: str, public_key_raw: bytes) -> str:
    """The key ID as 8 lowercase hex characters."""
    return key_id_bytes(origin, public_key_raw).hex()


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------


def sign_note(private_key: Ed25519PrivateKey, body: str) -> bytes:
    """Ed25519 signature (64 bytes) over the UTF-8 bytes of ``body``."""
    if not isinstance(body, str):
        raise ValueError("body must be a string")
    return private_key.sign(body.encode("utf-8"))


def verify_note(public_key_raw: bytes, body: str, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``body``. Never raises."""
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != ED25519_PUBLIC_KEY_SIZE:
        return False
    if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    if not isinstance(body, str):
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(public_key_raw)
        public.verify(signature, body.encode("utf-8"))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return False
    return True


def signed_note_text(origin: str, body: str, key_id_bytes: bytes, signature: bytes) -> str:
    """Render the standard signed note: body, blank line, one signature line.

    ``origin`` is used as the key name, as tlog-checkpoint recommends. The
    signature line is ``"\\u2014 " + name + " " + base64(key_id || signature)``.
    """
    _check_key_name(origin)
    if not isinstance(body, str) or not body.endswith("\n"):
        raise ValueError("note body must end with a newline")
    if not isinstance(key_id_bytes, bytes) or len(key_id_bytes) != 4:
        raise ValueError("key ID must be 4 bytes")
    if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_SIZE:
        raise ValueError("signature must be 64 bytes")
    blob = base64.b64encode(key_id_bytes + signature).decode("ascii")
    return f"{body}\n\u2014 {origin} {blob}\n"


# --------------------------------------------------------------------------
# Cosignatures (C2SP tlog-cosignature, Ed25519 "cosignature/v1")
# --------------------------------------------------------------------------
#
# A witness that checked that a checkpoint is consistent with every earlier one it saw signs
#
#     "cosignature/v1\n" + "time <POSIX seconds>\n" + <the checkpoint's note body>
#
# with its own Ed25519 key. The note signature is base64(key ID || timestamp || signature): a
# 4-byte key ID, the timestamp as a big-endian u64, and the 64-byte signature (76 bytes). The key ID
# is SHA-256(<witness name> || 0x0A || 0x04 || public key)[:4] (0x04: the cosignature/v1 type).
# https://github.com/C2SP/C2SP/blob/main/tlog-cosignature.md

#: Signature type byte of Ed25519 cosignature/v1 key IDs.
COSIGNATURE_V1_TYPE = b"\x04"
COSIGNATURE_SIZE = 4 + 8 + ED25519_SIGNATURE_SIZE
_MAX_TIMESTAMP = 2**63 - 1


def cosignature_key_id_bytes(name: str, public_key_raw: bytes) -> bytes:
    """4-byte key ID of a cosigner: SHA-256(name || 0x0A || 0x04 || pubkey)[:4]."""
    _check_key_name(name)
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != ED25519_PUBLIC_KEY_SIZE:
        raise ValueError("public key must be 32 raw bytes")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + COSIGNATURE_V1_TYPE + public_key_raw).digest()[:4]


def cosignature_key_id(name: str, public_key_raw: bytes) -> str:
    """The cosigner's key ID as 8 lowercase hex characters."""
    return cosignature_key_id_bytes(name, public_key_raw).hex()


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosigner signs: header line, time line, then the whole note body."""
    if not isinstance(body, str) or not body.endswith("\n"):
        raise ValueError("note body must end with a newline")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError("timestamp must be an integer from 0 to 2**63 - 1")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def sign_cosignature(private_key: Ed25519PrivateKey, name: str, body: str, timestamp: int) -> bytes:
    """The 76-byte note signature (key ID || timestamp || signature) of a cosignature/v1."""
    key_id_value = cosignature_key_id_bytes(name, raw_public_key(private_key))
    signature = private_key.sign(cosignature_message(body, timestamp))
    return key_id_value + timestamp.to_bytes(8, "big") + signature


def parse_cosignature(blob: bytes) -> tuple[bytes, int, bytes]:
    """``(key ID, timestamp, signature)`` of a note signature blob; ValueError unless well formed."""
    if not isinstance(blob, bytes) or len(blob) != COSIGNATURE_SIZE:
        raise ValueError(f"a cosignature is {COSIGNATURE_SIZE} bytes: key ID, timestamp and signature")
    timestamp = int.from_bytes(blob[4:12], "big")
    if timestamp > _MAX_TIMESTAMP:
        raise ValueError("timestamp exceeds 2**63 - 1")
    return blob[:4], timestamp, blob[12:]


def verify_cosignature(public_key_raw: bytes, name: str, body: str, blob: bytes) -> int | None:
    """The cosignature's timestamp if ``blob`` is a valid cosignature/v1 of ``body`` by this
    cosigner (name and key), else None. Never raises."""
    try:
        key_id_value, timestamp, signature = parse_cosignature(blob)
        if key_id_value != cosignature_key_id_bytes(name, public_key_raw):
            return None
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(signature, cosignature_message(body, timestamp))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return None
    return timestamp


def note_signature_line(name: str, blob: bytes) -> str:
    """One signed-note signature line: ``"\u2014 " + name + " " + base64(blob) + "\n"``."""
    _check_key_name(name)
    return f"\u2014 {name} {base64.b64encode(blob).decode('ascii')}\n"
