"""Which passwords are too easy to guess.

A login's password must have at least 8 characters and must not be one that guessers try first: a
well-known common password (``data/common_passwords.txt``, optionally followed by digits or
punctuation), a run such as ``12345678``, ``87654321`` or ``abcdefgh``, a row of the keyboard, a short
pattern repeated (``11111111``, ``12341234``), or the username (for residents, their phone number)
with at most punctuation added.
The rules are few and can be said to a resident in one sentence; the list is short enough to read.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from flask_babel import gettext as _

from timebank.core.errors import DomainError

MIN_LENGTH = 8
_KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


class WeakPassword(DomainError):
    status, code, title = 422, "weak_password", "Weak password"


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("timebank.core").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def _is_run(text: str) -> bool:
    """Each character one after the previous, up or down: 12345678, 87654321, abcdefgh."""
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:], strict=False)}
    return len(steps) == 1 and steps <= {1, -1}


def _is_repeated(text: str) -> bool:
    """A pattern of at most four characters repeated: 11111111, 12121212, abcabcabc, 12341234."""
    return any(len(text) % size == 0 and text == text[:size] * (len(text) // size) for size in range(1, 5))


def _on_keyboard(text: str) -> bool:
    return any(text in row or text in row[::-1] for row in _KEYBOARD_ROWS)


def weakness(password: str, username: str | None = None) -> str | None:
    """Why the password is too easy to guess (in the person's language), or None."""
    if len(password) < MIN_LENGTH:
        return _("The password needs at least %(count)d characters.", count=MIN_LENGTH)
    lowered = password.lower()
    name = (username or "").strip().lower()
    if name and name in (lowered, re.sub(r"[\W_]+$", "", lowered)):
        return _("The password must not be the username or phone number.")
    common = common_passwords()
    if lowered in common or re.sub(r"[\d\W_]+$", "", lowered) in common:
        return _("This is one of the most common passwords; choose another.")
    if _is_run(lowered) or _is_repeated(lowered) or _on_keyboard(lowered):
        return _("The password is a simple sequence or repetition; choose another.")
    return None


def check_password_strength(password: str, username: str | None = None) -> None:
    """Refuse a weak password with 422 ``weak_password``; wherever a password is set."""
    reason = weakness(password, username)
    if reason is not None:
        raise WeakPassword(_("The password is too easy to guess."), errors={"password": [reason]})
