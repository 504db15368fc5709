"""The ledger core: accounts, transactions, postings, balances and the hash chain.

Design overview
===============

This package moves integer amounts between named accounts and proves that it did. It knows nothing
of Flask requests, households, claims or goods: callers give accounts opaque codes such as
``household:12:points`` and the ledger only sees strings, units and integers.

It does not choose its units or how writers take turns either: the application tells it, once per
process, with :func:`configure` (``units``, and optionally a ``writer_lock``; see
:mod:`ledger.config`). Its functions take a SQLAlchemy ``Connection`` or ``Session``.

The invariants, each enforced twice (in code with a typed exception, and in the database by a
constraint or trigger so that no other code path can break it):

* Amounts are integers and never zero. Every transaction has at least two postings, and its
  postings sum to zero per unit. Every account is kept in one of the units the application
  declared (:class:`UnknownUnit` otherwise; the CHECK constraints on the unit columns name them).
* Nothing is ever updated or deleted. Transactions and postings are append-only; the database
  refuses UPDATE, DELETE (and on PostgreSQL TRUNCATE) on them. Corrections are new, compensating
  transactions that name the transaction they reverse: at most one reversal per transaction, and a
  reversal is never itself reversed.
* A wallet (an account without ``allow_negative``) never goes below zero, even under concurrent
  writers: writers are serialised by the writer lock (the application's, or by default
  ``BEGIN IMMEDIATE`` on SQLite and a transaction-scoped advisory lock on PostgreSQL) and the
  balance column carries a CHECK constraint.
* Balances are a cache. A trigger adds each posting to its account's balance in the same database
  transaction; :func:`ledger.core.replay_balances` recomputes them from the postings alone,
  :func:`ledger.core.verify` compares the two and :func:`ledger.core.rebuild_balances` resets the cache
  from the postings.
* Every write that moves value may carry an idempotency key, stored with a hash of the request in
  the same database transaction: a retry returns the first transaction and moves nothing, the same
  key with a different request raises :class:`IdempotencyKeyReused`.
* Transactions form a hash chain and the leaves of a Merkle tree; the byte encoding is in
  ``docs/ledger-format.md`` and :mod:`ledger.encoding`.
"""

from ledger.config import WriterLock, configure, default_writer_lock  # noqa: F401
from ledger.core import (  # noqa: F401
    Leg,
    PostedTransaction,
    Request,
    balance,
    balances,
    open_account,
    open_accounts,
    post,
    post_many,
    rebuild_balances,
    replay_balances,
    reverse,
    verify,
)
from ledger.errors import (  # noqa: F401
    AlreadyReversed,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerError,
    NotReversible,
    UnbalancedTransaction,
    UnknownAccount,
    UnknownUnit,
)
