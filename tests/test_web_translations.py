"""The Chinese catalog: every page string is translated, and the committed .mo matches the .po.

Chinese is the default language, so a string missing from the catalog would show in English to
people who do not read it. The compiled .mo is committed so that a clean clone works without a
build step; this test catches a .po edited without ``pybabel compile``.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "timebank" / "translations" / "zh" / "LC_MESSAGES"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None}
METHODS = [("timebank/**/migrations/**", "ignore"), ("timebank/**.py", "python"),
           ("timebank/templates/**.html", "jinja2")]


def source_messages() -> set[str]:
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map=METHODS, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_page_string_has_a_chinese_translation():
    messages = source_messages()
    assert "Household points" in messages and "You are checked in." in messages  # the extraction works
    with open(CATALOG / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    missing = sorted(m for m in messages if not (catalog.get(m) and catalog.get(m).string))
    assert not missing, f"untranslated (run pybabel extract/update, translate, compile): {missing}"


def test_compiled_catalog_matches_the_po_file():
    with open(CATALOG / "messages.po", "rb") as handle:
        po = {m.id: m.string for m in read_po(handle) if m.id and m.string and not m.fuzzy}
    with open(CATALOG / "messages.mo", "rb") as handle:
        mo = {m.id: m.string for m in read_mo(io.BytesIO(handle.read())) if m.id}
    assert mo == po, "messages.mo is stale: run `pybabel compile -d timebank/translations`"


def test_pages_are_chinese_by_default_and_english_on_request(client):
    login = client.get("/login")
    assert "登录" in login.get_data(as_text=True) and 'lang="zh-CN"' in login.get_data(as_text=True)
    english = client.get("/login?lang=en").get_data(as_text=True)
    assert "Log in" in english and 'lang="en"' in english
