"""Typed exceptions raised by the ledger. Callers map them to their own error codes."""


class LedgerError(Exception):
    """Base class of every refusal by the ledger."""

    code = "ledger_error"


class UnbalancedTransaction(LedgerError):
    """Postings are missing, zero, not integers, or do not sum to zero per unit."""

    code = "unbalanced_transaction"


class UnknownAccount(LedgerError):
    code = "unknown_account"

    def __init__(self, account_code: str):
        super().__init__(f"unknown account {account_code!r}")
        self.account_code = account_code


class UnknownUnit(LedgerError, ValueError):
    """A unit the application did not declare (:func:`ledger.configure`)."""

    code = "unknown_unit"

    def __init__(self, unit: object, declared: tuple[str, ...]) -> None:
        super().__init__(f"unit {unit!r} is not one of the declared units {declared}")
        self.unit = unit
        self.declared = declared


class InsufficientFunds(LedgerError):
    """A wallet would go below zero."""

    code = "insufficient_funds"

    def __init__(self, account_code: str, balance: int, change: int, unit: str):
        super().__init__(
            f"account {account_code!r} holds {balance} {unit}; {-change} requested"
        )
        self.account_code = account_code
        self.balance = balance
        self.change = change
        self.unit = unit


class IdempotencyKeyReused(LedgerError):
    """The same idempotency key was sent with a different request."""

    code = "idempotency_key_reused"


class AlreadyReversed(LedgerError):
    code = "already_reversed"


class NotReversible(LedgerError):
    """A reversal cannot itself be reversed, and unknown transactions cannot be reversed."""

    code = "not_reversible"
