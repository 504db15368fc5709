"""A real ``timebank serve`` (gunicorn master and workers) in a subprocess, for the tests that need one
more than an app in the test process: the restore refused under a live server, the read-only folder."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(instance: Path, db_uri: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_") and k != "GUNICORN_CMD_ARGS"}
    env["TIMEBANK_INSTANCE_PATH"] = str(instance)
    env["TIMEBANK_SECRET_KEY"] = "server-test-secret"
    if db_uri:
        env["TIMEBANK_DATABASE_URL"] = db_uri
    return env


def timebank(env: dict, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``timebank`` command as an operator would, in its own process."""
    return subprocess.run([str(BIN / "timebank"), *args], env=env, input=stdin, text=True, capture_output=True,
                          timeout=timeout)


def request(port, method, path, body=None, headers=None, timeout=20):
    """(status, content type, headers, body bytes) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = dict(headers or {})
        payload = None
        if isinstance(body, (dict, list)):
            payload = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        elif body is not None:
            payload = body
        conn.request(method, path, body=payload, headers=h)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.headers, response.read()
    finally:
        conn.close()


class Server:
    """``timebank serve`` in its own process group; ``prefix`` runs it under another command (setpriv)."""

    def __init__(self, env: dict, log_path: Path, workers: int = 2, prefix: tuple[str, ...] = ()):
        self.env, self.log_path, self.workers, self.prefix = env, log_path, workers, prefix
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self, seconds: float = 60) -> Server:
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, str(BIN / "timebank"), "serve", "--workers", str(self.workers),
                 "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if request(self.port, "GET", "/healthz", timeout=5)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not start:\n" + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
