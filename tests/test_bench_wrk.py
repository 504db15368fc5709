"""The benchmarks' load generator tells the truth: wrk driven by bench/benchlib.py's Lua scripts.

A small HTTP server in this process stands in for the application (it closes the connection after
every answer, as gunicorn's sync workers do) and records what it received. The tests check what the
benchmarks' figures rest on: every sale carries an Idempotency-Key no other request used, the sales
cycle through the prepared households and goods, every answer's status is counted, an answer that is
not 2xx flags the run, a bounded run sends exactly the requests asked for and stops, and the CPU
reading from /proc sees the time a process spent. Skipped when wrk is not installed (``make bench``
installs it).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench installs it)")


def _load(name: str):
    """A module of bench/ (they import each other as top-level modules, as ``python bench/X.py`` does)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        self._answer(None)

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(body)

    def _answer(self, body):
        server = self.server
        with server.lock:
            server.seen.append((self.command, self.path, dict(self.headers), body))
            number = len(server.seen)
        status = server.status_of(number)
        payload = json.dumps({"n": number}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, *args):
        pass


class _FakeInstance:
    """What ``run_wrk`` needs of a deployment: a port, a folder, and the processes to read CPU from."""

    def __init__(self, port: int, folder: Path, pids=()):
        self.port, self.folder, self.pids = port, folder, list(pids)

    def cpu_ticks(self):
        benchlib = _load("benchlib")
        return {"server": benchlib.process_ticks(self.pids), "database": None}


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.daemon_threads = True
    httpd.lock = threading.Lock()
    httpd.seen = []
    httpd.status_of = lambda number: 201
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _sales_lua(households, items, prefix="bench-t-"):
    bench = _load("http_redemption_bench")
    benchlib = _load("benchlib")
    return bench.SALES_LUA % {
        "auth": benchlib.lua_string("Bearer clerk-token"), "prefix": benchlib.lua_string(prefix),
        "items": ", ".join(str(i) for i in items),
        "households": ", ".join(f"{{{benchlib.lua_string(h)}, {benchlib.lua_string(r)}}}" for h, r in households)}


def test_sales_carry_unique_keys_and_cycle_through_households_and_goods(server, tmp_path):
    benchlib = _load("benchlib")
    households = [(f"H{n}", f"R{n}") for n in range(5)]
    result = benchlib.run_wrk(_FakeInstance(server.server_address[1], tmp_path), "sales",
                              _sales_lua(households, [7, 8, 9]), threads=2, connections=4, seconds=1)
    sales = [s for s in server.seen if s[1] == "/api/v1/redemptions"]
    assert len(sales) >= 20
    keys = [headers["Idempotency-Key"] for _, _, headers, _ in sales]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("bench-t-") for k in keys)
    assert {headers["Authorization"] for _, _, headers, _ in sales} == {"Bearer clerk-token"}
    bodies = [json.loads(body) for _, _, _, body in sales]
    assert {b["member_code"] for b in bodies} == {code for pair in households for code in pair}
    assert {b["lines"][0]["item_id"] for b in bodies} == {7, 8, 9}
    # Every answer wrk received is counted, all 201 here, and the run is not flagged.
    assert result.statuses == {201: result.requests}
    assert result.requests >= len(sales) - 4  # requests still in flight when wrk stops are not counted
    assert result.failures == 0
    assert result.rate > 0 and result.percentile(99) >= result.percentile(50) > 0


def test_an_answer_that_is_not_2xx_flags_the_run(server, tmp_path):
    benchlib = _load("benchlib")
    server.status_of = lambda number: 409 if number % 10 == 0 else 201
    result = benchlib.run_wrk(_FakeInstance(server.server_address[1], tmp_path), "sales",
                              _sales_lua([("H", "R")], [1]), threads=1, connections=2, seconds=1)
    assert result.statuses.get(409, 0) >= 1
    assert result.failures == result.statuses[409]
    combined = benchlib.combine("all", [result, result])
    assert combined.failures == 2 * result.failures


def test_a_bounded_run_sends_exactly_its_requests_then_stops(server, tmp_path):
    benchlib = _load("benchlib")
    burst = _load("checkin_burst_bench")
    tokens = [f"resident-{n}" for n in range(40)]
    lua = burst.BURST_LUA % {"tokens": ", ".join(benchlib.lua_string(t) for t in tokens),
                             "body": benchlib.lua_string('{"token": "task"}'), "total": 50}
    result = benchlib.run_wrk(_FakeInstance(server.server_address[1], tmp_path), "burst", lua, threads=2,
                              connections=50, keep_answers=True, max_seconds=60)
    seen = [headers["Authorization"] for _, path, headers, _ in server.seen if path == "/api/v1/checkins"]
    assert len(seen) == 50
    # Every resident scans once, the first ten twice.
    counts = {t: seen.count(f"Bearer {t}") for t in tokens}
    assert counts == {t: (2 if n < 10 else 1) for n, t in enumerate(tokens)}
    assert result.requests == 50 and result.statuses == {201: 50} and len(result.answers) == 50
    assert sorted(json.loads(body)["n"] for _, body in result.answers) == list(range(1, 51))
    assert result.seconds > 0


def test_cpu_time_of_a_process_is_read_from_proc():
    benchlib = _load("benchlib")
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time\n"
                              "while time.process_time() < 0.3: pass\n"
                              "sys.stdout.write('done\\n'); sys.stdout.flush(); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before = {child.pid: 0}
        assert child.stdout.readline() == "done\n"
        after = benchlib.process_ticks([child.pid, 999_999_999])
        assert list(after) == [child.pid]
        assert benchlib.cpu_delta(before, after) >= 0.25
    finally:
        child.stdin.close()
        child.wait(10)
