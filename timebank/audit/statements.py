"""A household's monthly statement (户积分月结单) that proves itself against the signed checkpoint.

The statement lists every ledger transaction of the month that moved the household's points, with
the opening and closing balance, and for each transaction its leaf (the exact bytes the ledger
hashed, docs/ledger-format.md) and its RFC 6962 inclusion proof in the tree of the newest signed
checkpoint. Whoever holds the deployment's public key can check it offline with
``tools/verify_checkpoint.py statement`` (docs/verify.md): the checkpoint's signature (and, if asked,
the witnesses' cosignatures), each leaf's hash and proof, that each amount is what its leaf moved on
the household's account, and that the opening plus the entries is the closing balance.

The printed statement carries a QR code with the figures, a digest of the leaves and the checkpoint
as a signed note (:func:`qr_text`): the paper pins what the JSON must say.

Reading only: a statement never signs a checkpoint. Entries after the newest checkpoint are listed
without a proof (``complete`` false) until the next one (the nightly job, or the committee).
"""

from __future__ import annotations

import base64
import hashlib

from sqlalchemy import func, select

from ledger import encoding, merkle
from ledger.models import Account, Posting, Transaction
from ledger.tree import MerkleTree
from timebank.audit import checkpoints
from timebank.core import accounts
from timebank.core.clock import month_bounds, utc_naive
from timebank.core.errors import ValidationFailed
from timebank.core.extensions import db

FORMAT = "timebank-statement/v1"
UNIT = "points"


def statement_digest(account: str, month: str, opening: int, closing: int, leaf_hashes: list[str]) -> str:
    """SHA-256 (hex) of the canonical JSON of the statement's account, month, balances and leaf hashes
    in order: what the QR code pins. ``tools/verify_checkpoint.py`` computes the same."""
    record = {"v": 1, "account": account, "month": month, "opening": opening, "closing": closing,
              "leaf_hashes": leaf_hashes}
    return hashlib.sha256(encoding.canonical_json(record)).hexdigest()


def qr_text(account: str, month: str, opening: int, closing: int, count: int, digest: str,
            checkpoint: dict | None) -> str:
    """The QR code's text: a header line, the figures, the digest, then the checkpoint as a signed
    note (its body and the log's signature line; witnesses' lines are left out to keep it small)."""
    head = f"{FORMAT}\n{account} {month} {opening} {closing} {count}\nsha256 {digest}\n"
    if checkpoint is None:
        return head
    origin = checkpoint["note"].split("\n", 1)[0]
    blob = base64.b64encode(bytes.fromhex(checkpoint["key_id"]) + base64.b64decode(checkpoint["signature"]))
    return head + checkpoint["note"] + f"\n\u2014 {origin} {blob.decode('ascii')}\n"


def _postings(ids: list[int]) -> dict[int, list[tuple[str, str, int]]]:
    legs: dict[int, list[tuple[str, str, int]]] = {i: [] for i in ids}
    if ids:
        rows = db.session.execute(
            select(Posting.transaction_id, Account.code, Posting.unit, Posting.amount)
            .join(Account, Account.id == Posting.account_id).where(Posting.transaction_id.in_(ids)))
        for tx_id, code, unit, amount in rows:
            legs[tx_id].append((code, unit, amount))
    return legs


def household_statement(household, month: str) -> dict:
    """The statement of ``household``'s points for ``month`` (``YYYY-MM``, the deployment's zone)."""
    start, end = month_bounds(month)
    if start > utc_naive():
        raise ValidationFailed(errors={"month": ["This month has not started yet."]})
    account = accounts.household_points(household.id)
    account_id = db.session.execute(select(Account.id).where(Account.code == account)).scalar_one_or_none()
    opening, rows = 0, []
    if account_id is not None:
        opening = db.session.execute(
            select(func.coalesce(func.sum(Posting.amount), 0))
            .join(Transaction, Transaction.id == Posting.transaction_id)
            .where(Posting.account_id == account_id, Transaction.created_at < start)).scalar_one()
        rows = db.session.execute(
            select(Transaction, func.sum(Posting.amount)).join(Posting, Posting.transaction_id == Transaction.id)
            .where(Posting.account_id == account_id, Transaction.created_at >= start, Transaction.created_at < end)
            .group_by(Transaction.id).order_by(Transaction.id)).all()
    legs = _postings([tx.id for tx, _ in rows])
    latest = checkpoints.latest_checkpoint()
    checkpoint = checkpoints.checkpoint_dict(latest) if latest is not None else None
    tree = MerkleTree(db.session, read_only=True)
    transactions, proofs, leaf_hashes = [], [], []
    for tx, amount in rows:
        leaf = encoding.leaf_bytes(id=tx.id, created_at=tx.created_at, kind=tx.kind, category=tx.category,
                                   memo=tx.memo, actor=tx.actor, reference=tx.reference,
                                   reverses_id=tx.reverses_id, postings=legs[tx.id])
        leaf_hash = encoding.leaf_hash(leaf)
        leaf_hashes.append(leaf_hash)
        transactions.append({"id": tx.id, "created_at": tx.created_at, "kind": tx.kind, "category": tx.category,
                             "memo": tx.memo, "amount": int(amount), "leaf": leaf.decode("utf-8"),
                             "leaf_hash": leaf_hash})
        if latest is not None and tx.id <= latest.tree_size:
            index = tx.id - 1
            proofs.append({"transaction_id": tx.id, "leaf_index": index, "tree_size": latest.tree_size,
                           "leaf_hash": merkle.to_hex(tree.leaf_hash(index)),
                           "audit_path": [merkle.to_hex(h) for h in tree.inclusion_proof(index, latest.tree_size)],
                           "root_hash": latest.root_hash})
    opening = int(opening)
    closing = opening + sum(t["amount"] for t in transactions)
    digest = statement_digest(account, month, opening, closing, leaf_hashes)
    community = household.community
    return {
        "format": FORMAT,
        "household": {"id": household.id, "name": household.name, "member_code": household.member_code,
                      "address": household.address, "community_code": community.code,
                      "community_name": community.name, "account": account},
        "month": month, "unit": UNIT, "opening": opening, "closing": closing,
        "transactions": transactions, "checkpoint": checkpoint, "proofs": proofs,
        "complete": len(proofs) == len(transactions) and checkpoint is not None,
        "digest": digest,
        "qr_text": qr_text(account, month, opening, closing, len(transactions), digest, checkpoint),
    }


# --- amounts in Chinese capital numerals (大写), as on a bank's statement ------------------------------

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ("", "拾", "佰", "仟")
_BIG_UNITS = ("", "万", "亿", "万亿")


def _four(n: int) -> str:
    """0 < n < 10000, with 零 for inner gaps."""
    out, zero = "", False
    for place in range(3, -1, -1):
        digit = n // 10**place % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[digit] + _SMALL_UNITS[place]
    return out


def capital_numerals(n: int) -> str:
    """An integer in Chinese capital numerals: 1205 -> 壹仟贰佰零伍, -30 -> 负叁拾."""
    if n == 0:
        return "零"
    if n < 0:
        return "负" + capital_numerals(-n)
    groups, rest = [], n
    while rest:
        groups.append(rest % 10000)
        rest //= 10000
    if len(groups) > len(_BIG_UNITS):
        return str(n)
    out, gap = "", False
    for i in range(len(groups) - 1, -1, -1):
        group = groups[i]
        if group == 0:
            gap = bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _four(group) + _BIG_UNITS[i]
        gap = False
    return out
