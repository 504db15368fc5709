"""A real server over a SQLite database whose folder is read-only: SQLite cannot make the ``-wal`` and
``-shm`` files beside the database, so every connection fails as it opens. Every request that needs the
database answers 503 (problem+json ``service_unavailable`` for programs, the 503 page for people), never 500,
whether the database file itself is writable or not.

Root ignores file permissions, so the server runs as root without the capabilities that let it
(``setpriv --bounding-set -dac_override,-fowner``): then a folder of mode 0555 is read-only for it too.
Opt-in, as it needs root and ``setpriv`` (util-linux):
``TIMEBANK_ROOT_FAULTS=1 pytest tests/test_ops_readonly_folder.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from conftest import IS_POSTGRES
from server_support import Server, request, server_env, timebank

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(IS_POSTGRES, reason="a SQLite file's folder; PostgreSQL keeps no files beside the app"),
    pytest.mark.skipif(os.environ.get("TIMEBANK_ROOT_FAULTS") != "1",
                       reason="needs root and setpriv: set TIMEBANK_ROOT_FAULTS=1 to run"),
]

WITHOUT_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-fowner", "--")


def _session_cookie(headers) -> str:
    jar = SimpleCookie()
    for value in headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return jar["session"].value


def _sign_in(port, username, password) -> str:
    """Sign in through the login page as a browser does (CSRF token included); return the session cookie."""
    status, _, headers, body = request(port, "GET", "/login")
    assert status == 200
    cookie = _session_cookie(headers)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()
    form = urlencode({"csrf_token": token, "username": username, "password": password})
    status, _, headers, body = request(port, "POST", "/login", form, {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"session={cookie}"})
    assert status == 302, body
    return _session_cookie(headers)


@pytest.fixture(scope="module")
def root_without_override():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")


@pytest.mark.parametrize("file_mode", [0o644, 0o444], ids=["file-writable", "file-read-only"])
def test_read_only_folder_answers_503_never_500(root_without_override, tmp_path, file_mode):
    instance = tmp_path / "instance"
    env = server_env(instance)
    assert timebank(env, "init-db").returncode == 0
    made = timebank(env, "create-user", "root", "--role", "admin", "--password-stdin", stdin="root-password-1\n")
    assert made.returncode == 0, made.stderr

    # Sign in while the folder is writable: a page session and an API token.
    server = Server(env, tmp_path / "serve.log", workers=1).start()
    try:
        cookie = _sign_in(server.port, "root", "root-password-1")
        status, _, _, body = request(server.port, "POST", "/api/v1/auth/token",
                                     {"username": "root", "password": "root-password-1"})
        assert status == 200, body
        token = json.loads(body)["access_token"]
    finally:
        server.stop()
    database = instance / "timebank.sqlite"
    con = sqlite3.connect(database)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()  # the last connection removes -wal and -shm
    assert not database.with_name("timebank.sqlite-wal").exists()
    assert not database.with_name("timebank.sqlite-shm").exists()
    before = database.read_bytes()

    database.chmod(file_mode)
    instance.chmod(0o555)
    server = Server(env, tmp_path / "serve.log", workers=1, prefix=WITHOUT_OVERRIDE)
    try:
        server.start()
        bearer = {"Authorization": f"Bearer {token}"}
        asks = [
            ("GET", "/api/v1/ledger/verify", None, bearer),
            ("POST", "/api/v1/communities", {"code": "xinhe", "name": "新河社区"}, bearer),
            ("POST", "/api/v1/auth/token", {"username": "root", "password": "root-password-1"}, {}),
        ]
        for method, path, body, headers in asks:
            status, ctype, answer_headers, answer = request(server.port, method, path, body, headers)
            assert status == 503, (method, path, status, answer[:300], server.log()[-3000:])
            assert ctype.startswith("application/problem+json")
            assert json.loads(answer)["error"] == "service_unavailable"
            assert int(answer_headers["Retry-After"]) > 0
        for path in ("/", "/login"):
            status, ctype, answer_headers, answer = request(server.port, "GET", path,
                                                            headers={"Cookie": f"session={cookie}"})
            assert status == 503, (path, status, answer[:300], server.log()[-3000:])
            assert ctype.startswith("text/html") and b"503" in answer
        assert not re.search(r'" 500 ', server.log()), server.log()[-3000:]
    finally:
        server.stop()
        instance.chmod(0o755)
    assert database.read_bytes() == before
