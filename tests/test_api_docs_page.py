"""``/api/v1/docs`` works with no internet: every file it loads is served by the app, and Swagger UI
draws the operations of the OpenAPI document in Chromium (which is given no other host to reach).

Before, the page was blank: the Swagger UI files it names answered 404.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from browser_support import browser, console_allow, live_server, page  # noqa: F401


def test_every_file_the_docs_page_names_is_served_by_the_app(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200
    names = re.findall(r'(?:src|href)="([^"]+)"', r.get_data(as_text=True))
    assert any(n.endswith(".js") for n in names) and any(n.endswith(".css") for n in names)
    for name in names:
        assert name.startswith("/"), f"{name} is not on this site"
        assert client.get(name).status_code == 200, name


@pytest.mark.browser
def test_swagger_ui_draws_the_operations_offline(live_server, page):  # noqa: F811
    requested = []
    page.on("request", lambda req: requested.append(req.url))
    page.goto(f"{live_server}/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 50
    assert page.get_by_text("/api/v1/redemptions").first.is_visible()
    hosts = {urlparse(url).netloc for url in requested if url.startswith("http")}
    assert hosts == {urlparse(live_server).netloc}, hosts
