"""``timebank restore --force`` refuses while a real server (``timebank serve``: gunicorn master and workers)
or ``timebank scheduler`` uses the database, and changes nothing; once they stop, the same restore runs.

On SQLite and on PostgreSQL (the suite's database). Every command runs in its own process, as an
operator runs it. A user made after the backup tells the live database from the restored one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import IS_POSTGRES
from server_support import BIN, Server, request, server_env, timebank

pytestmark = pytest.mark.slow

REFUSAL = "a server or scheduler is using the database"


@pytest.fixture
def deployment(db_uri, tmp_path):
    """A database with one user, its backup, then a second user made after the backup."""
    env = server_env(tmp_path / "instance", db_uri)
    made = timebank(env, "create-user", "root", "--role", "admin", "--password-stdin", stdin="root-password-1\n")
    assert made.returncode == 0, made.stderr
    backup = tmp_path / "backups" / ("tb.dump" if IS_POSTGRES else "tb.sqlite")
    done = timebank(env, "backup", str(backup))
    assert done.returncode == 0, done.stderr
    late = timebank(env, "create-user", "late", "--role", "admin", "--password-stdin", stdin="late-password-1\n")
    assert late.returncode == 0, late.stderr
    return env, backup


def _database_file(env) -> Path | None:
    if IS_POSTGRES:
        return None
    return Path(make_url(env["TIMEBANK_DATABASE_URL"]).database)


def _can_log_in(port, username, password) -> bool:
    status, _, _, body = request(port, "POST", "/api/v1/auth/token", {"username": username, "password": password})
    assert status in (200, 401), body
    return status == 200


def _assert_refused(env, backup):
    path = _database_file(env)
    inode = path.stat().st_ino if path else None
    refused = timebank(env, "restore", "--force", str(backup))
    output = (refused.stdout + refused.stderr).strip()
    assert refused.returncode == 1, output
    assert REFUSAL in output and len(output.splitlines()) == 1, output
    if path:
        assert path.stat().st_ino == inode  # the live file was not swapped
        assert not list(path.parent.glob(path.name + ".before-restore-*"))


def _assert_restored(env, backup):
    done = timebank(env, "restore", "--force", str(backup))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "transactions verify" in done.stdout


def test_restore_refuses_under_a_live_server_then_runs_once_it_stops(deployment, tmp_path):
    env, backup = deployment
    server = Server(env, tmp_path / "serve.log", workers=2).start()
    try:
        assert _can_log_in(server.port, "late", "late-password-1")
        _assert_refused(env, backup)
        # The server still serves the live database, with what was written after the backup.
        assert _can_log_in(server.port, "late", "late-password-1")
        status, _, _, body = request(server.port, "POST", "/api/v1/auth/token",
                                     {"username": "root", "password": "root-password-1"})
        assert status == 200, body
        token = json.loads(body)["access_token"]
        status, _, _, body = request(server.port, "POST", "/api/v1/communities", {"code": "xinhe", "name": "新河社区"},
                                     {"Authorization": f"Bearer {token}"})
        assert status == 201, body
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log()[-3000:]
    _assert_restored(env, backup)
    server = Server(env, tmp_path / "serve.log", workers=1).start()
    try:
        assert _can_log_in(server.port, "root", "root-password-1")
        assert not _can_log_in(server.port, "late", "late-password-1")  # the backup's database is back
    finally:
        server.stop()


def test_restore_refuses_while_the_scheduler_runs(deployment, tmp_path):
    env, backup = deployment
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "wb") as log:
        scheduler = subprocess.Popen([str(BIN / "timebank"), "scheduler"], env={**env, "PYTHONUNBUFFERED": "1"},
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "jobs " not in log_path.read_text(errors="replace"):  # it marks the database in use first
            assert scheduler.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        _assert_refused(env, backup)
    finally:
        if scheduler.poll() is None:
            os.killpg(scheduler.pid, signal.SIGTERM)
            try:
                scheduler.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(scheduler.pid, signal.SIGKILL)
                scheduler.wait(10)
    _assert_restored(env, backup)
