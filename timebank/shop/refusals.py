"""The sale's refusals, written once: what each says, from its code and its figures.

The sale refuses in two places that must agree word for word: the Python sale
(:func:`timebank.shop.sale.sell`, on SQLite) and PostgreSQL's ``shop_sell`` (migration 0028), which
raises the code as its message and the figures as JSON in its detail. Both, and the shop's other
operations that refuse the same things, build the problem here: :func:`refusal` with the figures
as keywords, or :data:`BY_CODE` with the function's detail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timebank.core.errors import Conflict, DomainError, NotFound
from timebank.core.ledgering import closed_month


def _unknown_item(item_id: int | None = None, barcode: str | None = None, **_: Any) -> NotFound:
    label = f"item {item_id}" if item_id is not None else f"barcode {barcode}"
    return NotFound(f"No goods with {label} in this supermarket.", code="unknown_item")


#: code -> the problem, from the refusal's figures (the keys of ``shop_sell``'s detail).
BY_CODE: dict[str, Callable[..., DomainError]] = {
    "unknown_member": lambda **_: NotFound("No household with this card or code here.", code="unknown_member"),
    "pay_code_used": lambda **_: Conflict("This pay code was already used; ask for a fresh one.",
                                          code="pay_code_used"),
    "unknown_item": _unknown_item,
    "mixed_sellers": lambda **_: Conflict("One receipt sells the goods of one shop: the supermarket's or one "
                                          "partner's.", code="mixed_sellers"),
    "limit_exceeded": lambda name, limit, bought, **_: Conflict(
        f"{name}: at most {limit} per household a month; {bought} already taken this month.",
        code="limit_exceeded"),
    "no_places_left": lambda name, places, taken, wanted, **_: Conflict(
        f"{name}: {places} places a day, {taken} taken today; {wanted} asked.", code="no_places_left"),
    "insufficient_stock": lambda name, on_hand, quantity, **_: Conflict(
        f"Only {on_hand} of {name} on the shelf; {quantity} requested.", code="insufficient_stock"),
    # The shelf's CHECK refused the movement (a last guard: the goods were locked and counted).
    "insufficient_stock_late": lambda name, quantity, **_: Conflict(
        f"Not enough {name} on the shelf; {quantity} requested.", code="insufficient_stock"),
    "month_closed": lambda month, **_: closed_month(month),
    "insufficient_points": lambda balance, total, **_: Conflict(
        f"The wallet holds {balance} points; these goods cost {total}.", code="insufficient_points"),
}


def refusal(code: str, **figures: Any) -> DomainError:
    """The problem of the refusal ``code`` with these figures (raise it)."""
    return BY_CODE[code](**figures)
