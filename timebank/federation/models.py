"""Hours between deployments (docs/federation.md): trusted counterparties, the vouchers this deployment
issued, and the vouchers of others it redeemed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from timebank.core.clock import utc_naive
from timebank.core.extensions import db

VOUCHER_STATUSES = ("issued", "redeemed", "expired", "cancelled")


class TrustedIssuer(db.Model):
    """A counterparty deployment and one of its signing keys, trusted by an admin. An origin may have
    several keys (a rotation keeps the old one, so vouchers it signed still redeem)."""

    __tablename__ = "federation_issuers"
    __table_args__ = (UniqueConstraint("origin", "public_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(100), index=True)
    #: base64 of the raw 32-byte Ed25519 public key.
    public_key: Mapped[str] = mapped_column(String(64))
    #: signed-note key id (8 hex) of the key under this origin.
    key_id: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class IssuedVoucher(db.Model):
    """The issuer's record of a voucher: the minutes left the resident for the audience's clearing
    account in ``transaction_id``. ``redeemed`` once the audience's signed statement lists it; an expiry
    (proved unredeemed by a later statement) or a cancel brings the minutes back once
    (``return_transaction_id``)."""

    __tablename__ = "issued_vouchers"
    __table_args__ = (
        CheckConstraint("status IN ('issued', 'redeemed', 'expired', 'cancelled')", name="status"),
        CheckConstraint("minutes > 0", name="minutes_positive"),
        CheckConstraint("(status IN ('expired', 'cancelled')) = (return_transaction_id IS NOT NULL)",
                        name="returned_once"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    voucher_id: Mapped[str] = mapped_column(String(32), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    audience: Mapped[str] = mapped_column(String(100), index=True)
    minutes: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    #: The whole signed text, as handed out.
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), index=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    #: When the audience's statement first listed it (the statement's as-of time).
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime)
    returned_at: Mapped[datetime | None] = mapped_column(DateTime)
    return_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    return_reason: Mapped[str | None] = mapped_column(String(500))


class RedeemedVoucher(db.Model):
    """A voucher of another deployment redeemed here: once per (issuer, voucher id)."""

    __tablename__ = "redeemed_vouchers"
    __table_args__ = (
        UniqueConstraint("issuer", "voucher_id"),
        CheckConstraint("minutes > 0", name="minutes_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(100), index=True)
    voucher_id: Mapped[str] = mapped_column(String(32))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    minutes: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    redeemed_at: Mapped[datetime] = mapped_column(DateTime)
    redeemed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))


class RedemptionStatement(db.Model):
    """A counterparty's signed list of the vouchers of ours it redeemed, as of a time (docs/federation.md):
    what lets an expired voucher's minutes go back safely."""

    __tablename__ = "federation_statements"
    __table_args__ = (UniqueConstraint("origin", "as_of", "text_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(100), index=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str] = mapped_column(String(8))
    #: SHA-256 (hex) of the text as received, so the same statement is kept once.
    text_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    vouchers: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    received_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
