"""The hour voucher's text format, version 1: write, sign, parse and verify (docs/federation.md).

A voucher is a C2SP signed note (https://github.com/C2SP/C2SP/blob/main/signed-note.md): a body of
exactly eight lines, each ending in a newline, then an empty line, then one signature line::

    timebank-voucher/v1
    issuer <origin of the issuing deployment>
    audience <origin of the deployment where it is redeemed>
    id <32 lowercase hex digits>
    holder <64 lowercase hex digits: the person's phone hash>
    minutes <decimal, 1..999999>
    issued <YYYY-MM-DDTHH:MM:SSZ, UTC>
    expires <YYYY-MM-DDTHH:MM:SSZ, UTC, later than issued>

    — <issuer origin> <base64 of (4-byte key id || 64-byte Ed25519 signature)>

The signature is Ed25519 over the UTF-8 bytes of the body (the eight lines, newlines included).
The key id is signed-note's: the first four bytes of SHA-256(origin || 0x0A || 0x01 || public key),
the same key id the deployment's checkpoints carry. A checkpoint body has exactly three lines, so a
voucher body can never be read as a checkpoint, nor a checkpoint as a voucher.

The holder is SHA-256 over the UTF-8 bytes of ``issuer + "\\n" + id + "\\n" + phone`` with the phone
in digits only (a leading ``86`` of a 13-digit number dropped): salted with the issuer and the
voucher id, so two vouchers of one person do not share a holder value.

Parsing is strict: each field has one spelling, so there is one text per voucher. Only carriage
returns before newlines (a paste from a web form) and white space around the whole text are
forgiven. This module knows nothing of Flask or the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import checkpoint as notes

VERSION_LINE = "timebank-voucher/v1"
FIELDS = ("issuer", "audience", "id", "holder", "minutes", "issued", "expires")
MAX_MINUTES = 999_999
#: An origin names a deployment (``TIMEBANK_ORIGIN``); it is also the signed note's key name, which
#: may hold no spaces and no ``+``.
ORIGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")
ID_RE = re.compile(r"[0-9a-f]{32}")
HOLDER_RE = re.compile(r"[0-9a-f]{64}")
MINUTES_RE = re.compile(r"[1-9][0-9]{0,5}")
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SIGNATURE_PREFIX = "\u2014 "


class VoucherFormatError(ValueError):
    """The text is not a well-formed version 1 voucher (or a field is out of range)."""


@dataclass(frozen=True)
class Voucher:
    issuer: str
    audience: str
    id: str
    holder: str
    minutes: int
    issued: datetime  # aware, UTC, whole seconds
    expires: datetime
    key_id: bytes = b""  # from the signature line (4 bytes)
    signature: bytes = b""  # 64 bytes

    def body(self) -> str:
        return format_body(self.issuer, self.audience, self.id, self.holder, self.minutes, self.issued,
                           self.expires)


def normal_phone(phone: str) -> str:
    """Digits only; a 13-digit number starting with the country code 86 loses it."""
    digits = "".join(ch for ch in phone if "0" <= ch <= "9")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def holder_hash(issuer: str, voucher_id: str, phone: str) -> str:
    """The person's phone hash: lowercase hex SHA-256 of ``issuer \\n id \\n phone`` (phone in digits)."""
    return hashlib.sha256(f"{issuer}\n{voucher_id}\n{normal_phone(phone)}".encode()).hexdigest()


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:  # the application's naive times are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _parse_time(text: str, name: str) -> datetime:
    if not TIME_RE.fullmatch(text):
        raise VoucherFormatError(f"{name} must be YYYY-MM-DDTHH:MM:SSZ")
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise VoucherFormatError(f"{name} is not a real time") from exc


def check_origin(origin: str, name: str = "origin") -> str:
    if not isinstance(origin, str) or not ORIGIN_RE.fullmatch(origin):
        raise VoucherFormatError(f"{name} must be 1 to 100 of the characters A-Z a-z 0-9 . _ : / - "
                                 "(starting with a letter or digit)")
    return origin


def format_body(issuer: str, audience: str, voucher_id: str, holder: str, minutes: int, issued: datetime,
                expires: datetime) -> str:
    """The eight lines that are signed. Raises :class:`VoucherFormatError` on a bad field."""
    check_origin(issuer, "issuer")
    check_origin(audience, "audience")
    if not ID_RE.fullmatch(voucher_id):
        raise VoucherFormatError("id must be 32 lowercase hex digits")
    if not HOLDER_RE.fullmatch(holder):
        raise VoucherFormatError("holder must be 64 lowercase hex digits")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_MINUTES:
        raise VoucherFormatError(f"minutes must be an integer from 1 to {MAX_MINUTES}")
    issued_text, expires_text = format_time(issued), format_time(expires)
    if expires_text <= issued_text:
        raise VoucherFormatError("expires must be later than issued")
    values = (issuer, audience, voucher_id, holder, str(minutes), issued_text, expires_text)
    return VERSION_LINE + "\n" + "".join(f"{name} {value}\n" for name, value in zip(FIELDS, values, strict=True))


def sign(private_key: Ed25519PrivateKey, body: str) -> str:
    """The whole voucher: ``body``, an empty line, and the signature line by the issuer's key."""
    issuer = parse_body(body).issuer
    raw_public = notes.raw_public_key(private_key)
    return notes.signed_note_text(issuer, body, notes.key_id_bytes(issuer, raw_public),
                                  notes.sign_note(private_key, body))


def parse_body(body: str) -> Voucher:
    if not body.endswith("\n"):
        raise VoucherFormatError("the body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) != 1 + len(FIELDS) or lines[0] != VERSION_LINE:
        raise VoucherFormatError(f"the body must be {VERSION_LINE!r} and {len(FIELDS)} field lines")
    values = {}
    for name, line in zip(FIELDS, lines[1:], strict=True):
        prefix = name + " "
        if not line.startswith(prefix):
            raise VoucherFormatError(f"expected the {name!r} line, got {line[:40]!r}")
        values[name] = line[len(prefix):]
    if not MINUTES_RE.fullmatch(values["minutes"]):
        raise VoucherFormatError("minutes must be decimal digits without leading zeros, 1 to 999999")
    voucher = Voucher(issuer=values["issuer"], audience=values["audience"], id=values["id"],
                      holder=values["holder"], minutes=int(values["minutes"]),
                      issued=_parse_time(values["issued"], "issued"),
                      expires=_parse_time(values["expires"], "expires"))
    if voucher.body() != body:  # every field checked, and one spelling only
        raise VoucherFormatError("the body is not in canonical form")
    return voucher


def parse(text: str) -> Voucher:
    """Read a whole voucher (body, empty line, signature line). The signature is not checked here:
    see :func:`verify`."""
    if not isinstance(text, str):
        raise VoucherFormatError("a voucher is text")
    text = text.strip().replace("\r\n", "\n") + "\n"
    body, sep, rest = text.partition("\n\n")
    if not sep:
        raise VoucherFormatError("no empty line between the body and the signature")
    voucher = parse_body(body + "\n")
    line = rest[:-1]
    if "\n" in line or not line.startswith(SIGNATURE_PREFIX):
        raise VoucherFormatError("expected exactly one signature line starting with '\u2014 '")
    name, _, blob = line[len(SIGNATURE_PREFIX):].partition(" ")
    if name != voucher.issuer:
        raise VoucherFormatError("the signature's key name is not the issuer")
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise VoucherFormatError("the signature is not base64") from exc
    if len(raw) != 4 + 64 or base64.b64encode(raw).decode("ascii") != blob:
        raise VoucherFormatError("the signature must be base64 of 4 + 64 bytes")
    return Voucher(**{**voucher.__dict__, "key_id": raw[:4], "signature": raw[4:]})


def canonical(voucher: Voucher) -> str:
    """The voucher's one text (as :func:`sign` wrote it)."""
    return notes.signed_note_text(voucher.issuer, voucher.body(), voucher.key_id, voucher.signature)


def key_matches(voucher: Voucher, public_key_raw: bytes) -> bool:
    """Whether the signature line names this key (by its signed-note key id under the issuer's origin)."""
    return notes.key_id_bytes(voucher.issuer, public_key_raw) == voucher.key_id


def verify(voucher: Voucher, public_key_raw: bytes) -> bool:
    """True when the key is the one named and the Ed25519 signature over the body holds. Never raises."""
    try:
        return key_matches(voucher, public_key_raw) and notes.verify_note(public_key_raw, voucher.body(),
                                                                            voucher.signature)
    except ValueError:
        return False


# --- redemption statements ----------------------------------------------------------------------------
#
# What a receiver tells an issuer: every voucher of that issuer it has redeemed, as of a time. A signed
# note like a voucher, signed by the receiver's key:
#
#     timebank-redemptions/v1
#     from <origin of the receiver, who signs>
#     to <origin of the issuer>
#     as-of <YYYY-MM-DDTHH:MM:SSZ>
#     count <n>
#     <voucher id> <minutes>          (n lines, in voucher id order)
#
# The receiver refuses a voucher from its expiry on, so a statement dated after a voucher's expiry
# that does not list it proves it was never redeemed there.

STATEMENT_LINE = "timebank-redemptions/v1"
COUNT_RE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Statement:
    sender: str
    recipient: str
    as_of: datetime
    redeemed: tuple[tuple[str, int], ...]  # (voucher id, minutes), sorted by id
    key_id: bytes = b""
    signature: bytes = b""

    def body(self) -> str:
        return format_statement(self.sender, self.recipient, self.as_of, self.redeemed)


def format_statement(sender: str, recipient: str, as_of: datetime, redeemed) -> str:
    check_origin(sender, "from")
    check_origin(recipient, "to")
    rows = sorted((str(i), int(m)) for i, m in redeemed)
    for voucher_id, minutes in rows:
        if not ID_RE.fullmatch(voucher_id) or not 1 <= minutes <= MAX_MINUTES:
            raise VoucherFormatError("a statement line is a voucher id and its minutes")
    if len({i for i, _m in rows}) != len(rows):
        raise VoucherFormatError("a voucher is listed twice")
    return (f"{STATEMENT_LINE}\nfrom {sender}\nto {recipient}\nas-of {format_time(as_of)}\ncount {len(rows)}\n"
            + "".join(f"{i} {m}\n" for i, m in rows))


def parse_statement(text: str) -> Statement:
    if not isinstance(text, str):
        raise VoucherFormatError("a statement is text")
    text = text.strip().replace("\r\n", "\n") + "\n"
    body, sep, rest = text.partition("\n\n")
    if not sep:
        raise VoucherFormatError("no empty line between the body and the signature")
    body += "\n"
    lines = body[:-1].split("\n")
    if len(lines) < 5 or lines[0] != STATEMENT_LINE:
        raise VoucherFormatError(f"the body must start with {STATEMENT_LINE!r} and four field lines")
    values = {}
    for name, line in zip(("from", "to", "as-of", "count"), lines[1:5], strict=True):
        if not line.startswith(name + " "):
            raise VoucherFormatError(f"expected the {name!r} line")
        values[name] = line[len(name) + 1:]
    if not COUNT_RE.fullmatch(values["count"]) or int(values["count"]) != len(lines) - 5:
        raise VoucherFormatError("count must be the number of voucher lines")
    redeemed = []
    for line in lines[5:]:
        voucher_id, _, minutes = line.partition(" ")
        if not MINUTES_RE.fullmatch(minutes):
            raise VoucherFormatError("a statement line is a voucher id and its minutes")
        redeemed.append((voucher_id, int(minutes)))
    statement = Statement(values["from"], values["to"], _parse_time(values["as-of"], "as-of"), tuple(sorted(redeemed)))
    if statement.body() != body:
        raise VoucherFormatError("the statement is not in canonical form")
    line = rest[:-1]
    if "\n" in line or not line.startswith(SIGNATURE_PREFIX):
        raise VoucherFormatError("expected exactly one signature line starting with '\u2014 '")
    name, _, blob = line[len(SIGNATURE_PREFIX):].partition(" ")
    if name != statement.sender:
        raise VoucherFormatError("the signature's key name is not the sender")
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise VoucherFormatError("the signature is not base64") from exc
    if len(raw) != 68 or base64.b64encode(raw).decode("ascii") != blob:
        raise VoucherFormatError("the signature must be base64 of 4 + 64 bytes")
    return Statement(**{**statement.__dict__, "key_id": raw[:4], "signature": raw[4:]})


def sign_statement(private_key: Ed25519PrivateKey, body: str) -> str:
    sender = body.split("\n", 2)[1].removeprefix("from ")
    raw_public = notes.raw_public_key(private_key)
    return notes.signed_note_text(sender, body, notes.key_id_bytes(sender, raw_public),
                                  notes.sign_note(private_key, body))


def statement_verifies(statement: Statement, public_key_raw: bytes) -> bool:
    try:
        return (notes.key_id_bytes(statement.sender, public_key_raw) == statement.key_id
                and notes.verify_note(public_key_raw, statement.body(), statement.signature))
    except ValueError:
        return False
