"""The sale's refusals are written once (timebank.shop.refusals): every refusal PostgreSQL's
``shop_sell`` raises (migration 0028) has its builder there, which takes exactly the figures the
function puts in its detail, and reads as the Python sale's own refusal does.

The sale's tests (test_shop_api, test_sale_function) check the refusals as the till sees them, on
each database; this checks the table against the function's text, so that a refusal added to one
side only fails here on either database."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import timebank
from timebank.core.errors import DomainError
from timebank.shop import refusals

SALE_FUNCTION = Path(timebank.__file__).parent / "migrations" / "versions" / "0028_sale_function.py"
#: ``RAISE EXCEPTION '<code>' USING ERRCODE = 'TB4xx'[, DETAIL = jsonb_build_object('k', v, ...)]``
RAISE = re.compile(r"RAISE EXCEPTION '(?P<code>[a-z_]+)' USING ERRCODE = 'TB4\d\d'"
                   r"(?:, DETAIL = jsonb_build_object\((?P<detail>.*?)\)::text)?;", re.DOTALL)


def _raised() -> dict[str, set[str]]:
    """code -> the keys of its detail, for every refusal of shop_sell."""
    found: dict[str, set[str]] = {}
    for match in RAISE.finditer(SALE_FUNCTION.read_text()):
        detail = match.group("detail") or ""
        keys = set(re.findall(r"'(\w+)',", detail))
        found.setdefault(match.group("code"), set()).update(keys)
    return found


def test_the_function_raises_the_refusals_it_is_known_to():
    # The parse itself: a change of the function's wording must not make this test vacuous.
    assert {"unknown_member", "pay_code_used", "unknown_item", "mixed_sellers", "limit_exceeded",
            "no_places_left", "insufficient_stock", "insufficient_stock_late",
            "insufficient_points"} <= set(_raised())


@pytest.mark.parametrize("code", sorted(_raised()))
def test_every_refusal_of_the_function_has_one_builder(code):
    keys = _raised()[code]
    assert code in refusals.BY_CODE, f"shop_sell raises {code!r}, which timebank.shop.refusals does not know"
    builder = refusals.BY_CODE[code]
    required = {name for name, parameter in inspect.signature(builder).parameters.items()
                if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and parameter.default is parameter.empty}
    assert required <= keys, f"{code}: the builder needs {sorted(required - keys)}, which the detail lacks"
    problem = refusals.refusal(code, **{key: 7 for key in keys})
    assert isinstance(problem, DomainError)
    assert problem.code == ("insufficient_stock" if code == "insufficient_stock_late" else code)


def test_the_python_sale_and_the_function_say_the_same():
    # The same figures give the same words, whichever side refused.
    by_keywords = refusals.refusal("insufficient_stock", name="大米", on_hand=2, quantity=3)
    by_detail = refusals.BY_CODE["insufficient_stock"](**{"name": "大米", "on_hand": 2, "quantity": 3})
    assert str(by_keywords) == str(by_detail)
    assert "Only 2 of 大米 on the shelf; 3 requested." in str(by_keywords)
    assert "item 5" in str(refusals.refusal("unknown_item", item_id=5, barcode=None))
    assert "barcode 690" in str(refusals.refusal("unknown_item", item_id=None, barcode="690"))
