"""``timebank serve --workers 2`` for real: gunicorn, two worker processes, both answering, clean stop."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TIMEBANK_") and k != "GUNICORN_CMD_ARGS"}
    env["TIMEBANK_INSTANCE_PATH"] = str(instance)
    env["TIMEBANK_SECRET_KEY"] = "serve-test-secret"
    return env


def _request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = json.dumps(body) if body is not None else None
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        conn.request(method, path, body=payload, headers=h)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(x) for x in text)
    return found


def _wait_for(predicate, seconds=40.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


@pytest.fixture
def served(tmp_path):
    instance = tmp_path / "instance"
    env = _env(instance)
    subprocess.run([str(BIN / "timebank"), "init-db"], env=env, check=True, capture_output=True)
    made = subprocess.run([str(BIN / "timebank"), "create-user", "root", "--role", "admin", "--password-stdin"],
                          env=env, input="root-password-1\n", text=True, capture_output=True)
    assert made.returncode == 0, made.stderr
    port = _free_port()
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([str(BIN / "timebank"), "serve", "--workers", "2", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, port, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def _healthy(port):
    try:
        return _request(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def test_serve_runs_gunicorn_with_two_workers_that_both_answer(served):
    process, port, log_path = served
    assert _wait_for(lambda: _healthy(port)), log_path.read_text()
    # `timebank serve` execs gunicorn: the process we started is the gunicorn master.
    assert _wait_for(lambda: len(_children(process.pid)) == 2), log_path.read_text()
    workers = _children(process.pid)
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "gunicorn" in cmdline and "timebank.wsgi:app" in cmdline

    # Hold one worker busy with a half-sent request: a sync worker serves one connection at a time,
    # so the next request can only be answered by the other worker.
    blocker = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        blocker.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        status, _, body = _request(port, "GET", "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        blocker.sendall(b"Connection: close\r\n\r\n")
        answer = blocker.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        blocker.close()

    # The API through the real server: log in, then an authenticated call, then a problem+json error.
    status, _, body = _request(port, "POST", "/api/v1/auth/token",
                               {"username": "root", "password": "root-password-1"})
    assert status == 200, body
    token = json.loads(body)["access_token"]
    status, _, body = _request(port, "GET", "/api/v1/ledger/verify", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["ok"] is True
    status, ctype, body = _request(port, "POST", "/api/v1/auth/token", {"username": "root", "password": "wrong"})
    assert status == 401 and ctype.startswith("application/problem+json")
    assert json.loads(body)["error"] == "invalid_credentials"

    # The access log names the worker: both workers answered /healthz.
    def answered_by():
        pids = set(int(p) for p in re.findall(r'"GET /healthz HTTP/1.1" 200 .* pid=<(\d+)>', log_path.read_text()))
        return pids if len(pids) >= 2 else None

    pids = _wait_for(answered_by, 10)
    assert pids and pids <= workers and len(pids) == 2, log_path.read_text()

    # Graceful stop: SIGTERM to the master, workers finish and exit, the master exits 0.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_serve_refuses_zero_workers(tmp_path):
    result = subprocess.run([str(BIN / "timebank"), "serve", "--workers", "0", "--port", str(_free_port())],
                            env=_env(tmp_path / "instance"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "at least one worker" in result.stderr
