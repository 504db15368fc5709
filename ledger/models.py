"""Tables of the ledger. The application shares :data:`metadata` so migrations see one schema.

The units an account may be kept in are the application's: :func:`declare_units` (called through
:func:`ledger.configure`) adds the CHECK constraints that name them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class Account(Base):
    """Somewhere amounts can be: a household wallet, an issuance account, a pool."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # The CHECK on ``unit`` is added by declare_units(), from the application's units.
        # The database's own guard for the rule "a wallet never goes below zero".
        CheckConstraint("allow_negative OR balance >= 0", name="wallet_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Opaque, stable name chosen by the caller, e.g. ``household:12:points``.
    code: Mapped[str] = mapped_column(String(128), unique=True)
    #: One of the application's declared units (e.g. ``points``); every posting to the account is in it.
    unit: Mapped[str] = mapped_column(String(16))
    #: Issuance, sink and pool accounts may go negative; wallets may not.
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Cache of the sum of the account's postings, maintained by a database trigger.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Transaction(Base):
    """One balanced, immutable movement of value; a link in the hash chain."""

    __tablename__ = "ledger_transactions"

    #: Position in the chain (1, 2, 3, ...); assigned under the writer lock, never reused.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: What happened, e.g. ``grant``, ``redemption``, ``reversal``, ``expiry``.
    kind: Mapped[str] = mapped_column(String(32))
    #: Optional classification used by reports, e.g. ``volunteer`` or ``moral``.
    category: Mapped[str | None] = mapped_column(String(32), index=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    #: Who caused it, e.g. ``user:3``; free text to the ledger.
    actor: Mapped[str | None] = mapped_column(String(128))
    #: The caller's object this transaction belongs to, e.g. ``claim:7``.
    reference: Mapped[str | None] = mapped_column(String(128), index=True)
    #: The transaction this one compensates; unique, so at most one reversal each.
    reverses_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id"), unique=True
    )
    #: Client-chosen key that makes the write idempotent.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: SHA-256 of the request that first used the key.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    #: RFC 6962 leaf hash of the canonical encoding (lowercase hex).
    leaf_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Posting(Base):
    """One leg of a transaction: a signed, non-zero integer amount on one account."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        # The CHECK on ``unit`` is added by declare_units(), as on accounts.
        Index("ix_ledger_postings_account_tx", "account_id", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # Deferred: postings are written first and the transaction row last, and the row's insert
    # trigger checks that the postings balance (a "seal"); the key is checked at commit.
    transaction_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("ledger_transactions.id", deferrable=True, initially="DEFERRED"),
        index=True,
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(16))


def unit_check_sql(units: tuple[str, ...]) -> str:
    """The condition of the CHECK on ``unit``, e.g. ``unit IN ('points', 'minutes')``."""
    return "unit IN (" + ", ".join(f"'{unit}'" for unit in units) + ")"


def declare_units(units: tuple[str, ...]) -> None:
    """Add ``CHECK (unit IN (...))`` (named ``ck_<table>_unit``) to the accounts and postings tables,
    unless they have it. The units must be validated first (:func:`ledger.configure` does): they
    are written into the DDL as they are."""
    for table in (metadata.tables["ledger_accounts"], metadata.tables["ledger_postings"]):
        if not any(isinstance(c, CheckConstraint) and c.name == f"ck_{table.name}_unit" for c in table.constraints):
            table.append_constraint(CheckConstraint(unit_check_sql(units), name="unit"))
