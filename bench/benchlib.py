"""Shared pieces of the HTTP benchmarks.

- :class:`Instance`: a throw-away deployment (an instance folder with its SQLite file, or a dedicated
  PostgreSQL database named in ``TIMEBANK_DATABASE_URL``), prepared in-process through the
  operations layer, then served by ``timebank serve --workers N`` in its own process group.
- :func:`run_load`: a load client of plain threads, each with its own ``http.client`` connection
  (re-opened when the server closes it, as gunicorn's sync workers do after every response). Bounded
  by a request count and a deadline, so it always stops by itself. Only ever talks to 127.0.0.1.
- :func:`client_limit`: the client's own ceiling, measured against a null server in another process
  that answers every request with a fixed small JSON body and closes the connection, like gunicorn.
  A benchmark whose server rate is well below this ceiling is measuring the server, not the client.

The benchmarks import this module as ``benchlib`` (they run as ``python bench/X.py``).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


# --- the deployment ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def reset_postgres(url: str) -> None:
    """Empty a PostgreSQL database that belongs to the benchmark (its name must contain "bench")."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if "bench" not in name:
        raise SystemExit(f"refusing to wipe database {name!r}: a benchmark database's name contains 'bench'")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


class Instance:
    """A deployment in ``folder``; PostgreSQL when ``database_url`` is given (the database is wiped)."""

    def __init__(self, folder: str, database_url: str | None = None):
        self.folder = Path(folder)
        self.database_url = database_url or f"sqlite:///{self.folder / 'timebank.sqlite'}"
        self.secret = "bench-secret-key"
        if self.database_url.startswith("postgresql"):
            reset_postgres(self.database_url)
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._log = None

    @property
    def dialect(self) -> str:
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_") and k != "GUNICORN_CMD_ARGS"}
        env.update(TIMEBANK_INSTANCE_PATH=str(self.folder), TIMEBANK_SECRET_KEY=self.secret,
                   TIMEBANK_DATABASE_URL=self.database_url,
                   # Workers are recycled every ~5000 requests in production (gunicorn_conf.py); a
                   # recycle costs a second of one worker importing the app, which would be noise here.
                   GUNICORN_CMD_ARGS="--max-requests 0")
        return env

    def app(self):
        """The application in this process, on the same database (for preparing data and checking)."""
        from timebank import create_app

        return create_app({"INSTANCE_PATH": str(self.folder), "SQLALCHEMY_DATABASE_URI": self.database_url,
                           "SECRET_KEY": self.secret, "TIMEBANK_CHEAP_PASSWORD_HASHING": True})

    def init_db(self) -> None:
        result = subprocess.run([str(BIN / "timebank"), "init-db"], env=self.env(), capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(result.stderr)

    def start(self, workers: int = 2, wait: float = 60.0) -> int:
        self.port = free_port()
        self._log = open(self.folder / "serve.log", "ab")
        self.process = subprocess.Popen(
            [str(BIN / "timebank"), "serve", "--workers", str(workers), "--port", str(self.port)],
            env=self.env(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("timebank serve exited:\n" + (self.folder / "serve.log").read_text())
            if _healthy(self.port) and len(children(self.process.pid)) >= workers:
                # Each worker imports the app after the fork; ask until both have answered once.
                for _ in range(20 * workers):
                    request_once(self.port, "GET", "/healthz")
                return self.port
            time.sleep(0.2)
        self.stop()
        raise SystemExit("timebank serve did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(x) for x in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def _healthy(port: int) -> bool:
    try:
        return request_once(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def request_once(port: int, method: str, path: str, body=None, headers=None, timeout: float = 30.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        conn.request(method, path, body=payload, headers=h)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- prepared data ----------------------------------------------------------------------------

@dataclass
class Shop:
    community_code: str
    clerk_tokens: list[str]
    #: (household id, household card code, resident id, resident card code, resident token or None)
    households: list[tuple]
    item_ids: list[int]
    barcodes: list[str]


def prepare_shop(instance: Instance, households: int, points: int = 100_000, goods: int = 8,
                 stock: int = 1_000_000, clerks: int = 1, resident_tokens: bool = False,
                 community_code: str = "bench") -> Shop:
    """One community with ``households`` households (one resident each) holding ``points`` points,
    ``goods`` items with ``stock`` units each (one donation), and ``clerks`` logged-in clerks.

    Everything goes through the operations layer and the ledger, as in production, in a few large
    database transactions."""
    import ledger
    from timebank.core import accounts
    from timebank.core.auth import issue_token
    from timebank.core.extensions import db
    from timebank.people import operations as people_ops
    from timebank.shop import operations as shop_ops

    app = instance.app()
    rows = []
    with app.app_context():
        community = people_ops.create_community(community_code, "基准社区")
        admin = people_ops.create_user("bench-admin", "bench-admin-pass", "admin")
        clerk_users = [people_ops.create_user(f"bench-clerk-{n}", "bench-clerk-pass", "clerk",
                                              community_id=community.id) for n in range(clerks)]
        items = []
        for n in range(goods):
            item = shop_ops.create_item(community, admin, sku=f"SKU{n:03d}", name=f"商品{n}",
                                        price_points=1 + n % 5, barcode=f"69{n:011d}")
            shop_ops.record_movement(item, admin, quantity=stock, reason="donation", donor="基准捐赠")
            items.append(item)
        db.session.commit()
        issuance = accounts.issuance_points(community.id, "volunteer")
        for n in range(households):
            h = people_ops.create_household(community, f"户{n}", f"基准路{n}号", str(n % 10))
            phone = f"139{n:08d}" if resident_tokens else None
            r = people_ops.create_resident(h, f"居民{n}", phone)
            token = None
            if resident_tokens:
                user = people_ops.create_user(phone, "bench-resident-pass", "resident", resident_id=r.id)
                token = issue_token(user)[0]
            ledger.post(db.session,
                        [ledger.Leg(issuance, -points), ledger.Leg(accounts.household_points(h.id), points)],
                        kind="grant", category="volunteer", memo="bench set-up", actor="bench")
            rows.append((h.id, h.member_code, r.id, r.member_code, token))
            if n % 500 == 499:
                db.session.commit()
        clerk_tokens = [issue_token(u)[0] for u in clerk_users]
        shop = Shop(community_code, clerk_tokens, rows, [i.id for i in items], [i.barcode for i in items])
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return shop


# --- the load client --------------------------------------------------------------------------

@dataclass
class LoadResult:
    label: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]
    errors: int
    #: index -> (status, body bytes), kept only when asked for.
    answers: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
        return ordered[rank] * 1000

    def line(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (f"{self.label}: {self.requests} requests in {self.seconds:.2f} s = {self.rate:,.0f}/s; "
                f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms; "
                f"statuses {{{statuses}}}; transport errors {self.errors}")


def combine(label: str, results: list[LoadResult]) -> LoadResult:
    """Several runs of one load as one: requests and seconds summed, latencies and statuses pooled."""
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return LoadResult(label, sum(r.requests for r in results), sum(r.seconds for r in results),
                      [x for r in results for x in r.latencies], statuses, sum(r.errors for r in results))


def run_load(port: int, make_request, total: int, threads: int, *, label: str = "load",
             max_seconds: float = 300.0, keep_answers: bool = False, start_barrier: bool = False) -> LoadResult:
    """Send ``total`` requests from ``threads`` threads (each with its own connection).

    ``make_request(i)`` returns ``(method, path, body_bytes_or_None, headers)`` for request ``i``.
    Stops after ``total`` requests or ``max_seconds``, whichever comes first. A transport error (the
    server went away) is counted, not retried: the caller decides what an unanswered request means.
    """
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answers: dict[int, tuple[int, bytes]] = {}
    errors = [0]
    barrier = threading.Barrier(threads + 1) if start_barrier else None
    deadline = [0.0]

    def worker():
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        mine: list[float] = []
        seen: dict[int, int] = {}
        got: dict[int, tuple[int, bytes]] = {}
        failed = 0
        if barrier is not None:
            barrier.wait()
        try:
            while True:
                i = next(counter)
                if i >= total or time.monotonic() > deadline[0]:
                    break
                method, path, body, headers = make_request(i)
                began = time.perf_counter()
                try:
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    if response.will_close:
                        conn.close()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    failed += 1
                    continue
                mine.append(time.perf_counter() - began)
                seen[response.status] = seen.get(response.status, 0) + 1
                if keep_answers:
                    got[i] = (response.status, data)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                for k, v in seen.items():
                    statuses[k] = statuses.get(k, 0) + v
                answers.update(got)
                errors[0] += failed

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    deadline[0] = time.monotonic() + max_seconds
    for t in pool:
        t.start()
    if barrier is not None:
        barrier.wait()
    began = time.perf_counter()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - began
    return LoadResult(label, len(latencies), seconds, latencies, statuses, errors[0], answers)


def json_request(method: str, path: str, body, headers: dict | None = None):
    h = {"Content-Type": "application/json", **(headers or {})}
    return method, path, json.dumps(body).encode(), h


# --- the client's own ceiling -----------------------------------------------------------------

_NULL_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
                  b"Connection: close\r\n\r\n{\"status\":\"ok\"}\n")


def _null_server(port: int) -> None:  # pragma: no cover - runs in a child process
    """Answer every request with a fixed body and close, like a gunicorn sync worker (asyncio, one core)."""
    import asyncio

    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            writer.write(_NULL_RESPONSE)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, HOST, port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def client_limit(threads: int, total: int = 5000) -> LoadResult:
    """Requests per second this client reaches against a server that does no work."""
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--null-server", str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        return run_load(port, lambda i: ("GET", "/healthz", None, {}), total, threads,
                        label="client ceiling (null server)")
    finally:
        process.terminate()
        process.wait(10)


# --- the machine ------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"machine: {os.cpu_count()} CPUs ({cpu}), {memory} RAM; Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}")


def disk_flush(folder, writes: int = 200, size: int = 64 * 1024) -> str:
    """How long this disk takes to make a write durable (``fdatasync`` after a ``size``-byte write in
    ``folder``): every committed SQLite write waits for one, so it bounds what the database side of a
    benchmark can do, and it varies between machines and moments more than the CPU does."""
    path = Path(folder) / "flush-probe.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        data = os.urandom(size)
        os.ftruncate(fd, size * 16)
        times = []
        for n in range(writes):
            os.pwrite(fd, data, (n % 16) * size)
            began = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()
    return (f"disk: a {size // 1024} KiB write made durable (fdatasync) in p50 {percentile(times, 50) * 1000:.2f} ms, "
            f"p99 {percentile(times, 99) * 1000:.2f} ms ({writes} tries)")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--null-server":
    _null_server(int(sys.argv[2]))
