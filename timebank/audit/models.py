"""Audit and transparency: signing keys, signed checkpoints of the ledger, and month closes (月结).

Every table here is append-only (the database refuses UPDATE and DELETE): a checkpoint, a public
key, a sign-off and a closing statement are statements made once and never edited. A month's
status is derived from its rows: no sign-off -> ``open``, one -> ``pending_second``, a closing
statement -> ``closed``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from timebank.core.extensions import db

#: Tables the migration makes append-only.
APPEND_ONLY_TABLES = ("signing_keys", "ledger_checkpoints", "month_close_signoffs", "month_closes",
                      "ledger_witnesses", "checkpoint_cosignatures")


class SigningKey(db.Model):
    """A public key that has signed checkpoints or statements. Old keys stay, so old signatures verify.

    The private key lives in a file in the instance folder, never in the database; the newest row
    whose public key matches that file is the current key.
    """

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: signed-note key ID: first 4 bytes of SHA-256(origin || 0x0A || 0x01 || public key), hex.
    key_id: Mapped[str] = mapped_column(String(8), unique=True)
    #: The key name (the checkpoint origin line) the key ID was derived with.
    origin: Mapped[str] = mapped_column(String(200))
    #: Raw 32-byte Ed25519 public key, base64.
    public_key: Mapped[str] = mapped_column(String(64))
    #: When this key was first used by the deployment.
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Checkpoint(db.Model):
    """A signed tree head: the ledger's Merkle root at one size, in the C2SP tlog-checkpoint form."""

    __tablename__ = "ledger_checkpoints"
    __table_args__ = (
        CheckConstraint("tree_size >= 0", name="tree_size_not_negative"),
        UniqueConstraint("tree_size", "key_id", name="uq_ledger_checkpoints_tree_size_key_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Number of transactions (leaves) covered.
    tree_size: Mapped[int] = mapped_column(BigInteger)
    #: RFC 6962 root of the first ``tree_size`` transactions, lowercase hex.
    root_hash: Mapped[str] = mapped_column(String(64))
    #: The exact signed text: origin, tree size and base64 root, each followed by a newline.
    note: Mapped[str] = mapped_column(Text)
    #: Ed25519 signature over the note's UTF-8 bytes, base64 of 64 bytes.
    signature: Mapped[str] = mapped_column(String(128))
    #: Key that signed it (signing_keys.key_id).
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    #: When it was made (not covered by the signature).
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Witness(db.Model):
    """A witness trusted to cosign the deployment's checkpoints (C2SP tlog-cosignature, Ed25519).

    Registered by an admin with the name and public key the witness's operator handed over; the key
    ID is the cosignature/v1 one: SHA-256(name || 0x0A || 0x04 || public key)[:4].
    """

    __tablename__ = "ledger_witnesses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The witness's key name (a schema-less URL such as ``witness.example.org/w1``).
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: Raw 32-byte Ed25519 public key, base64.
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: cosignature/v1 key ID, hex.
    key_id: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    #: Who registered it (``user:<id>:<username>``).
    created_by: Mapped[str] = mapped_column(String(128))


class Cosignature(db.Model):
    """A witness's cosignature of one checkpoint: it saw that tree head, consistent with every
    earlier one it saw. The first cosignature of a witness for a checkpoint is kept."""

    __tablename__ = "checkpoint_cosignatures"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "witness_id", name="uq_checkpoint_cosignatures_checkpoint_witness"),
        CheckConstraint("timestamp >= 0", name="timestamp_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("ledger_checkpoints.id"), index=True)
    witness_id: Mapped[int] = mapped_column(ForeignKey("ledger_witnesses.id"))
    #: The cosignature's own time (POSIX seconds), as signed.
    timestamp: Mapped[int] = mapped_column(BigInteger)
    #: base64 of the 76-byte note signature: key ID || timestamp (big-endian u64) || Ed25519 signature.
    signature: Mapped[str] = mapped_column(String(128))
    #: When it reached the deployment.
    created_at: Mapped[datetime] = mapped_column(DateTime)


class MonthCloseSignoff(db.Model):
    """One committee member's sign-off of a community's month. Two different members close it."""

    __tablename__ = "month_close_signoffs"
    __table_args__ = (
        UniqueConstraint("community_id", "month", "user_id", name="uq_month_close_signoffs_signer"),
        CheckConstraint("length(month) = 7", name="month_format"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: ``YYYY-MM`` in the deployment's time zone.
    month: Mapped[str] = mapped_column(String(7))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: SHA-256 of the statement the signer saw (canonical JSON), hex.
    statement_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(DateTime)


class MonthClose(db.Model):
    """The signed closing statement of a community's month (月结). Its presence closes the month:
    nothing dated inside it can be posted afterwards."""

    __tablename__ = "month_closes"
    __table_args__ = (
        UniqueConstraint("community_id", "month", name="uq_month_closes_community_month"),
        CheckConstraint("length(month) = 7", name="month_format"),
        CheckConstraint("first_signer_id <> second_signer_id", name="two_signers"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: ``YYYY-MM`` in the deployment's time zone.
    month: Mapped[str] = mapped_column(String(7))
    #: The statement as canonical JSON (sorted keys, no spaces, UTF-8): exactly the signed bytes.
    statement: Mapped[str] = mapped_column(Text)
    #: Ed25519 signature over the statement's UTF-8 bytes, base64.
    signature: Mapped[str] = mapped_column(String(128))
    #: Key that signed it (signing_keys.key_id).
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    #: The first and the second signer.
    first_signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    second_signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime] = mapped_column(DateTime)


class ExportRun(db.Model):
    """A ledger export made in the background (``timebank.audit.export_runs``): its filters, its
    progress and, once done, its file in the instance folder. Not part of the books: a run is
    updated as it goes, and its file is removed after a day."""

    __tablename__ = "export_runs"
    __table_args__ = (
        CheckConstraint("fmt IN ('csv', 'xlsx')", name="fmt"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'expired')", name="status"),
        CheckConstraint("rows_written >= 0 AND rows_expected >= 0", name="rows"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The community whose ledger it holds; NULL: every community (an administrator's export).
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    fmt: Mapped[str] = mapped_column(String(8))
    #: The filters as JSON: the arguments of ``ledger_query`` (ids, codes, UTC times in ISO 8601).
    filters: Mapped[str] = mapped_column(Text)
    #: The file's name for the download (``ledger-<community>-<time>.csv``).
    file_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    #: Posting rows counted when the export was asked for, and rows written so far.
    rows_expected: Mapped[int] = mapped_column(Integer)
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: Last sign of life of the process writing it (an export silent for long was interrupted).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
