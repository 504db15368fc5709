"""Browser-test fixtures: the app on a live local server, and Debian's Chromium driven by Playwright.

Use them from a test module with ``from browser_support import live_server, browser, page, console_allow, login``
(and ``# noqa: F401``), and mark the tests ``@pytest.mark.browser``.

* ``live_server``: the test ``app`` (same database, same frozen clock) served by werkzeug on
  127.0.0.1 with a free port, threaded, with CSRF protection switched ON (the test config turns it off
  for the test client). Yields the base URL; ``TIMEBANK_BASE_URL`` points there, so QR URLs work.
* ``browser``: one Chromium for the session, ``/usr/bin/chromium`` only: Playwright never downloads a
  browser. Missing Chromium fails the tests (``make test`` installs it with apt).
* ``page``: a fresh context and page per test. Any console message of type ``error`` and any uncaught
  page error fails the test.
"""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def launch_chromium(playwright):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium fonts-noto-cjk).")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def live_server(app):
    app.config["WTF_CSRF_ENABLED"] = True
    server = LiveServer(app)
    app.config["TIMEBANK_BASE_URL"] = server.url
    server.start()
    yield server.url
    server.stop()


#: One Playwright and one Chromium for the whole session, however many test modules import ``browser``
#: (each importing module defines its own session fixture; two sync Playwrights in one thread fail).
_SHARED: dict = {"users": 0}


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if _SHARED["users"] == 0:
        _SHARED["manager"] = sync_playwright()
        _SHARED["chromium"] = launch_chromium(_SHARED["manager"].start())
    _SHARED["users"] += 1
    try:
        yield _SHARED["chromium"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            _SHARED.pop("chromium").close()
            _SHARED.pop("manager").__exit__(None, None, None)


class ConsoleWatch:
    """Every console error and uncaught exception of a page, for the test to fail on.

    ``allowed`` holds texts of console errors a test provokes on purpose (say, the browser's own
    "status of 410" line when the test opens an expired code); each allowed text must then occur.
    """

    def __init__(self, page, allowed: list[str]):
        self.problems: list[str] = []
        self.allowed = allowed
        self.seen_allowed: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message):
        if message.type != "error":
            return
        for text in self.allowed:
            if text in message.text:
                self.seen_allowed.add(text)
                return
        self.problems.append(f"console error: {message.text} at {message.location}")

    def check(self) -> None:
        problems = self.problems + [f"expected console error did not occur: {text}"
                                    for text in self.allowed if text not in self.seen_allowed]
        assert not problems, "\n".join(problems)


@pytest.fixture
def console_allow() -> list[str]:
    """Append texts of console errors the test provokes on purpose; anything else still fails."""
    return []


@contextlib.contextmanager
def open_tab(browser, console_allow, viewport=PHONE, **options):
    """A tab in a new Chinese-language context (``options``: Playwright's context options), whose
    console errors fail the test when it closes."""
    context = browser.new_context(viewport=viewport, locale="zh-CN", **options)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    watch = ConsoleWatch(tab, console_allow)
    yield tab
    context.close()
    watch.check()


@pytest.fixture
def page(browser, request, console_allow):
    with open_tab(browser, console_allow, getattr(request, "param", None) or PHONE) as tab:
        yield tab


def login(page, base_url: str, username: str, password: str = "secret-pass") -> None:
    """Log in through the login page (the page ends wherever the login sends it)."""
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state("load")
