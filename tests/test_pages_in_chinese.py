"""Every page reads in Chinese (issue: "English and internal text in the Chinese interface").

Every HTML page of the app's URL map is rendered in zh_CN (the default) as every role, in a community
with households, claims, a task, goods, a sale, a help request, a checkpoint and a closed month. The
words a person reads (the text of the page, without scripts, styles and what is marked
``translate="no"``: hashes, signatures and the signed text of a month close, which are bytes) may
hold Latin letters only where they are data that people typed (names, usernames, rule codes, card
codes), or one of a few technical words a Chinese clerk also reads in Latin letters (CSV, Excel, QR).
An English word that the app wrote, whether a template string without ``_()``, a memo, a raw account
code such as ``community:1:issuance:volunteer`` or a cap in words such as "每户每year", fails the test
with the page that showed it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import inspect, text

from earning_support import rule
from test_gets_never_write import add_checkpoint_and_close, build_world, clients, requests_for
from timebank.core.extensions import db

#: Latin words that a Chinese interface keeps (file formats, units, keys on the keyboard, the language's
#: own name in the language menu, "No." before a receipt's number as printed Chinese receipts have it).
TECHNICAL = {"CSV", "XLSX", "Excel", "JSON", "QR", "SKU", "UTC", "Esc", "Enter", "English", "API", "ID", "PDF",
             "OpenAPI", "Ed25519", "SHA-256", "Merkle", "PIN", "A4", "MB", "KB", "No", "JPEG", "PNG", "WebP"}

#: Tables whose text the app writes itself (memos, account codes, logs, stored answers): their words
#: are not "data that people typed".
APP_WRITTEN = ("ledger_", "audit_log", "idempotency", "refusals", "checkpoint", "month_close", "signing",
               "stock_movements")
#: Columns that hold one of the app's own words (a status, a period, a role), chosen from a list: the
#: page must show them in words, so they are not data either.
ENUM_COLUMNS = {"status", "kind", "category", "unit", "role", "color", "review", "reason", "donor_kind", "source",
                "cap_period", "cap_minutes_period", "period", "method", "action", "via", "channel", "state"}

#: A run of letters and digits (with ``_ : -`` inside): a random id such as ``12ab56de`` is one token,
#: not the word "de".
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:\-]*[A-Za-z0-9]|[A-Za-z0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_SKIP_TAGS = {"script", "style", "template", "noscript"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Text(HTMLParser):
    """The words a person reads: text outside scripts, styles and ``translate="no"`` elements, and the
    attributes read aloud or shown (title, alt, placeholder, aria-label, a button's value)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.parts: list[str] = []

    def _hidden(self) -> bool:
        return any(hidden for _tag, hidden in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        hidden = tag in _SKIP_TAGS or attrs.get("translate") == "no"
        if not hidden and not self._hidden():
            for name in ("title", "alt", "placeholder", "aria-label"):
                if attrs.get(name):
                    self.parts.append(attrs[name])
            if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
                self.parts.append(attrs["value"])
        if tag not in _VOID:
            self.stack.append((tag, hidden))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if not self._hidden():
            self.parts.append(data)


def readable_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


#: A short hash or id in hexadecimal (a voucher's first eight characters, say): a code, not a word.
_HEX_ID = re.compile(r"(?=[0-9a-f]*[0-9])[0-9a-f]{4,}|[0-9a-f]{8,}")


def latin_words(html: str) -> set[str]:
    return {w for w in _WORD.findall(readable_text(html)) if _LETTER.search(w) and not _HEX_ID.fullmatch(w)}


def data_words(app) -> set[str]:
    """Every Latin word in what people typed: the text columns of the tables the app does not write."""
    words: set[str] = set()
    with app.app_context(), db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            if table.startswith(APP_WRITTEN) or table == "alembic_version":
                continue
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            keys = list(result.keys())
            for row in result:
                for key, value in zip(keys, row, strict=True):
                    if isinstance(value, str) and key not in ENUM_COLUMNS:
                        words.update(_WORD.findall(value))
        # A grant's memo is what the committee member typed.
        for (memo,) in conn.execute(text("SELECT memo FROM ledger_transactions WHERE kind = 'grant'")):
            words.update(_WORD.findall(memo or ""))
    return words


def test_the_reader_sees_text_and_shown_attributes_only():
    html = ('<p>积分 <b>points</b></p><script>var english = 1;</script><style>.a{}</style>'
            '<code translate="no">abc:def</code><input type="submit" value="Send"><img alt="Photo">'
            '<p title="Hint">好<br>Done</p>')
    assert latin_words(html) == {"points", "Send", "Photo", "Hint", "Done"}
    # A random id is a code, whatever its last letters; a word glued to Chinese is still a word.
    assert latin_words("<p>时间券 123456de：张三 · 2026-03-05</p>") == set()
    assert latin_words("<p>每户每year最多 50 积分</p>") == {"year"}


@pytest.mark.slow
def test_every_page_reads_in_chinese(app, world, clock):
    ids = build_world(world, clock)
    rule(world, "capped", title="门前三包（限次）", points=5, review="auto", publicity_days=0,
         cap={"period": "year", "max_points": 50})
    add_checkpoint_and_close(world, clock, ids)
    allowed = TECHNICAL | data_words(app)

    found: dict[str, set[str]] = {}
    pages = 0
    for role, (client, _headers) in clients(app, world).items():
        for _rule, url in requests_for(app, ids):
            if url.startswith(("/api/", "/static/", "/lang/")):
                continue
            r = client.get(url, headers={"Accept": "text/html"})
            body = r.get_data()  # a streamed export is read to its end, closing its context
            r.close()
            assert r.status_code < 500, (url, role, r.status_code)
            if 300 <= r.status_code < 400 or "text/html" not in r.content_type:
                continue
            body = body.decode()
            pages += 1
            for word in latin_words(body) - allowed:
                found.setdefault(word, set()).add(f"{url} [{role}]")
    assert pages > 100, pages
    report = [f"{word!r} on {sorted(where)[:3]}" for word, where in sorted(found.items())]
    assert not report, f"{len(report)} English words on Chinese pages:\n" + "\n".join(report[:80])
