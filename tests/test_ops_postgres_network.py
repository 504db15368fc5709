"""PostgreSQL that stops answering: the app answers 503 ``service_unavailable`` within seconds, never
hangs until gunicorn kills the worker, and ``/healthz`` says so too.

Three faults: a "database" that accepts connections and never speaks (the connect timeout), a path
that goes silent while the kernel still acknowledges everything (the client's answer timeout), and
a real cut of the network, packets dropped (TCP user timeout and keepalives; root only, opt-in:
``TIMEBANK_ROOT_FAULTS=1``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

import ledger
from conftest import IS_POSTGRES, TEST_DB_URL, base_config
from faults_support import assert_outcome_unknown, assert_unavailable, sibling_app, through_a_silenceable_proxy
from network_support import SilenceableProxy, SilentServer
from timebank import create_app
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.people.models import Household

postgres_only = pytest.mark.skipif(not IS_POSTGRES, reason="needs a real PostgreSQL behind the proxy")


def _timed(call):
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def _assert_unhealthy(response):
    """``/healthz`` asked for JSON: the same 503 problem+json as the API."""
    assert_unavailable(response)


def _dispose(target_app):
    with target_app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_database_that_never_answers_gives_503_within_the_connect_timeout(tmp_path):
    """A server that accepts the TCP connection and never says a word: without a connect timeout
    psycopg waits 130 s (gunicorn kills the worker first); with it the request ends in a 503."""
    server = SilentServer()
    url = f"postgresql+psycopg://timebank@127.0.0.1:{server.port}/timebank"
    silent_app = create_app({**base_config(tmp_path, url), "TIMEBANK_PG_CONNECT_TIMEOUT_S": 2})
    client = silent_app.test_client()
    try:
        response, took = _timed(lambda: client.get("/api/v1/households/1",
                                                   headers={"Authorization": "Bearer some-token"}))
        assert_unavailable(response)
        assert took < 15, took
        response, took = _timed(lambda: client.get("/healthz", headers={"Accept": "application/json"}))
        _assert_unhealthy(response)
        assert took < 15, took
        # A browser gets the 503 page.
        response = client.get("/healthz", headers={"Accept": "text/html"})
        assert response.status_code == 503 and response.mimetype == "text/html"
    finally:
        _dispose(silent_app)
        server.close()


def _count(target_app, statement):
    with target_app.app_context():
        return db.session.scalar(statement)


@postgres_only
def test_a_silent_path_to_postgresql_gives_503_within_bounded_time_and_recovers(world, app, tmp_path):
    """A proxy that stops forwarding but keeps its sockets open: the app's kernel still gets every
    TCP acknowledgement and keepalive answer, and the server never sees the statement it would time
    out. Only the client's answer timeout (statement timeout + 5 s) ends the wait."""
    h = world.household()
    world.grant(h, 10)
    headers = world.headers("admin")
    through, proxy = through_a_silenceable_proxy(app, tmp_path)

    def grant_then_go_silent(household_id):
        """Posts, then the path goes silent before the request's COMMIT."""
        community_id = db.session.get(Household, household_id).community_id
        ledger.post(db.session, [ledger.Leg(accounts.issuance_points(community_id, "volunteer"), -5),
                                 ledger.Leg(accounts.household_points(household_id), 5)],
                    kind="grant", category="volunteer", memo="", actor="test")
        proxy.go_silent()
        return {}, 201

    through.add_url_rule("/api/v1/test-grant-silent/<int:household_id>", "test_grant_silent",
                         grant_then_go_silent, methods=["POST"])
    client = through.test_client()
    transactions = text("SELECT count(*) FROM ledger_transactions")
    try:
        assert client.get(f"/api/v1/households/{h}", headers=headers).status_code == 200
        assert client.get("/healthz").status_code == 200
        before = _count(app, transactions)

        # The path dies between the last statement and COMMIT.
        response, took = _timed(lambda: client.post(f"/api/v1/test-grant-silent/{h}", headers=headers))
        assert_outcome_unknown(response)
        assert took < 20, took
        assert _count(app, transactions) == before

        # Reads on a pooled connection (the pool's pre-ping waits, then connecting does).
        response, took = _timed(lambda: client.get(f"/api/v1/households/{h}", headers=headers))
        assert_unavailable(response)
        assert took < 20, took
        response, took = _timed(lambda: client.get("/healthz", headers={"Accept": "application/json"}))
        _assert_unhealthy(response)
        assert took < 15, took
        response, took = _timed(lambda: client.post("/api/v1/households", headers=headers,
                                                    json={"community_code": "hongxing", "name": "李家",
                                                          "address": "1号"}))
        assert_unavailable(response)
        assert took < 20, took

        proxy.resume()
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/api/v1/households/{h}", headers=headers).status_code == 200
        assert _count(app, transactions) == before
        assert _count(app, select(func.count()).select_from(Household).where(Household.name == "李家")) == 0
    finally:
        _dispose(through)
        proxy.close()


def _server_settings(target_app):
    with target_app.app_context():
        names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "application_name")
        values = {name: db.session.execute(text(f"SHOW {name}")).scalar() for name in names}
        info = db.session.connection().connection.dbapi_connection.info
        values["client"] = {key: info.get_parameters().get(key) for key in
                            ("connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
                             "tcp_user_timeout")}
        db.session.rollback()
        return values


@postgres_only
def test_requests_and_commands_get_their_timeouts(app, tmp_path):
    """What the server and libpq really hold: a request's limits by default, a command's longer
    statement and idle limits (``timebank`` commands), and each one set from its variable."""
    request_side = _server_settings(app)
    assert request_side["statement_timeout"] == "30s" and request_side["lock_timeout"] == "5s"
    assert request_side["idle_in_transaction_session_timeout"] == "1min"
    assert request_side["application_name"] == "timebank"
    assert request_side["client"] == {"connect_timeout": "5", "keepalives_idle": "10", "keepalives_interval": "3",
                                      "keepalives_count": "3", "tcp_user_timeout": "10000"}
    command = sibling_app(app, tmp_path, "command", TIMEBANK_COMMAND_LINE=True)
    tuned = sibling_app(app, tmp_path, "tuned", TIMEBANK_PG_STATEMENT_TIMEOUT_MS=1500, TIMEBANK_PG_LOCK_TIMEOUT_MS=700,
                        TIMEBANK_PG_CONNECT_TIMEOUT_S=3)
    try:
        command_side = _server_settings(command)
        assert command_side["statement_timeout"] == "1h" and command_side["lock_timeout"] == "5s"
        assert command_side["idle_in_transaction_session_timeout"] == "1h"
        tuned_side = _server_settings(tuned)
        assert (tuned_side["statement_timeout"], tuned_side["lock_timeout"]) == ("1500ms", "700ms")
        assert tuned_side["client"]["connect_timeout"] == "3"
    finally:
        _dispose(command)
        _dispose(tuned)


def test_the_timebank_command_runs_with_the_command_timeouts(monkeypatch):
    """``timebank ...`` builds its app as a command (the longer statement timeout), gunicorn's does not."""
    from timebank import cli

    made = {}
    monkeypatch.setattr("timebank.create_app", lambda config=None: made.setdefault("config", config))
    cli._create_app()
    assert made["config"] == {"TIMEBANK_COMMAND_LINE": True}


# --- The real cut: a network namespace, a veth pair, packets dropped (root, opt-in) ---------------------------

root_faults = pytest.mark.skipif(
    os.environ.get("TIMEBANK_ROOT_FAULTS") != "1" or not IS_POSTGRES or os.geteuid() != 0
    or shutil.which("ip") is None,
    reason="needs root, the ip command and PostgreSQL; opt in with TIMEBANK_ROOT_FAULTS=1")

_CLIENT = r"""
import http.client, json, sys, time
method, path, accept, token, port, body = sys.argv[1:7]
headers = {"Accept": accept, "Content-Type": "application/json"}
if token:
    headers["Authorization"] = "Bearer " + token
start = time.monotonic()
try:
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=90)
    conn.request(method, path, body=body or None, headers=headers)
    r = conn.getresponse()
    out = {"status": r.status, "type": r.getheader("Content-Type"), "body": r.read().decode()}
except Exception as exc:
    out = {"status": None, "error": repr(exc)}
out["took"] = time.monotonic() - start
print(json.dumps(out))
"""


def _run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True)


class _Namespace:
    """A network namespace joined to this host by a veth pair: the host side is ``host_address``."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.name, self.outer, self.inner = f"tbpg{tag}", f"tbh{tag}", f"tbn{tag}"
        self.host_address, self.inner_address = "10.231.77.1", "10.231.77.2"

    def __enter__(self):
        try:
            _run("ip", "netns", "add", self.name)
            _run("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            _run("ip", "link", "set", self.inner, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.outer)
            _run("ip", "link", "set", self.outer, "up")
            self.exec_("ip", "addr", "add", f"{self.inner_address}/30", "dev", self.inner)
            self.exec_("ip", "link", "set", self.inner, "up")
            self.exec_("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def exec_(self, *args):
        return _run("ip", "netns", "exec", self.name, *args)

    def cut(self):
        _run("ip", "link", "set", self.outer, "down")

    def mend(self):
        _run("ip", "link", "set", self.outer, "up")

    def __exit__(self, *_exc):
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def _call(ns, port, method, path, accept="application/json", token="", body=None):
    """A request from inside the namespace (the server's side of the cut)."""
    done = ns.exec_(sys.executable, "-c", _CLIENT, method, path, accept, token, str(port),
                    json.dumps(body) if body is not None else "")
    return json.loads(done.stdout)


def _get(ns, port, path, accept="application/json", token=""):
    return _call(ns, port, "GET", path, accept, token)


def _wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


@root_faults
@pytest.mark.slow
def test_a_cut_network_gives_503_within_seconds_and_the_server_recovers(world, tmp_path):
    """gunicorn in a network namespace reaches PostgreSQL through a veth pair and a forwarder on the
    host side; the link is cut (packets dropped: TCP user timeout, keepalives and the connect timeout
    apply, with their defaults) and mended."""
    h = world.household()
    target = make_url(TEST_DB_URL)
    with _Namespace() as ns:
        forwarder = SilenceableProxy((target.host or "127.0.0.1", target.port or 5432), listen_host=ns.host_address)
        url = target.set(host=ns.host_address, port=forwarder.port).render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")}
        env.update(TIMEBANK_DATABASE_URL=url, TIMEBANK_INSTANCE_PATH=str(tmp_path / "instance"),
                   TIMEBANK_SECRET_KEY="cut-test-secret")
        port = 8000
        log_path = tmp_path / "gunicorn.log"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, str(gunicorn), "--config", "python:timebank.ops.gunicorn_conf",
                 "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "120", "timebank.wsgi:app"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            assert _wait_until(lambda: _get(ns, port, "/healthz")["status"] == 200, 40), log_path.read_text()
            login = _call(ns, port, "POST", "/api/v1/auth/token", body={"username": "admin", "password": "secret-pass"})
            assert login["status"] == 200, login
            token = json.loads(login["body"])["access_token"]
            for _ in range(4):  # both workers hold pooled connections
                assert _get(ns, port, f"/api/v1/households/{h}", token=token)["status"] == 200

            ns.cut()
            household = f"/api/v1/households/{h}"
            for path, auth in ((household, token), ("/healthz", ""), (household, token)):
                answer = _get(ns, port, path, token=auth)
                assert answer["status"] == 503, (path, answer, log_path.read_text()[-3000:])
                assert answer["type"].startswith("application/problem+json")
                assert json.loads(answer["body"])["error"] == "service_unavailable"
                assert answer["took"] < 20, (path, answer)

            ns.mend()
            assert _wait_until(lambda: _get(ns, port, "/healthz")["status"] == 200, 40), log_path.read_text()
            assert _get(ns, port, f"/api/v1/households/{h}", token=token)["status"] == 200
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
            forwarder.close()
