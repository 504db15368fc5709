"""Shared pieces of the HTTP benchmarks.

- :class:`Instance`: a throw-away deployment (an instance folder with its SQLite file, or a dedicated
  PostgreSQL database named in ``TIMEBANK_DATABASE_URL``), prepared in-process through the
  operations layer, then served by ``timebank serve --workers N`` in its own process group.
- :func:`run_wrk`: load from wrk (Debian's package), driven by a Lua script generated for the run
  (unique Idempotency-Keys, cycling through the prepared data, every answer's status counted; a run
  with any answer that is not 2xx is flagged). Only ever talks to 127.0.0.1. It also reads the CPU
  time the server (gunicorn master and workers, and PostgreSQL's backends) spent during the run from
  /proc, so each benchmark can print CPU per request: a figure the client cannot hold down.

The benchmarks import this module as ``benchlib`` (they run as ``python bench/X.py``).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
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
    server = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:  # made when missing, so `make bench-postgres` needs nothing first
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


class Instance:
    """A deployment in ``folder``; PostgreSQL when ``database_url`` is given (the database is wiped,
    unless ``keep``: a benchmark measuring again what an earlier run of it built)."""

    def __init__(self, folder: str, database_url: str | None = None, keep: bool = False):
        self.folder = Path(folder)
        self.database_url = database_url or f"sqlite:///{self.folder / 'timebank.sqlite'}"
        self.secret = "bench-secret-key"
        if self.database_url.startswith("postgresql") and not keep:
            reset_postgres(self.database_url)
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._log = None
        self._watch = None

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
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def database_pids(self) -> list[int] | None:
        """PostgreSQL: the backends serving this database (not the one asking); None on SQLite."""
        if self.dialect != "postgresql":
            return None
        import psycopg
        from sqlalchemy.engine import make_url

        if self._watch is None:
            url = make_url(self.database_url).set(drivername="postgresql")
            self._watch = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        rows = self._watch.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid()").fetchall()
        return [pid for (pid,) in rows]

    def cpu_ticks(self) -> dict:
        """CPU clock ticks so far of the gunicorn master and workers, and of the database's backends."""
        server = [self.process.pid, *children(self.process.pid)] if self.process is not None else []
        database = self.database_pids()
        return {"server": process_ticks(server),
                "database": None if database is None else process_ticks(database)}

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


# --- the load generator: wrk ------------------------------------------------------------------
#
# Load comes from wrk (Debian's package; `make bench` installs it), a C event loop that keeps many
# connections busy on a fraction of a core, so the server, not the client, sets the figures. Each
# run gets a Lua script generated into the run's temporary folder: the common part below (thread
# ids, status counts, the summary file) and the benchmark's own part (its requests).

WRK_LUA = r"""
-- Generated by bench/benchlib.py for one wrk run; thrown away with the run's folder.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
function now()  -- CLOCK_MONOTONIC, as Python's time.monotonic()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

OUT = %(out)s
THREADS = %(threads)d
KEEP_BODIES = %(keep)s
PARK_PORT = %(park)d

-- The main state: number the threads (ids 1..THREADS) and keep them for done().
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- Each thread's state. wrk calls thread 1's request() once before the run to count the requests
-- in the string it returns; that call must not take one of the thread's requests.
statuses = {}
sent, answered, reserved = 0, 0, 0
first, last = 0, 0
local probe, out

-- gunicorn closes the connection after every answer and wrk connects again at once. A connection
-- that then sends nothing would hold a sync worker until its timeout, so a thread that has nothing
-- more to send parks its new connections on a listener of the benchmark's that never answers.
local park_addr

function park()
  wrk.thread.addr = park_addr
end

function init(args)
  park_addr = wrk.lookup("127.0.0.1", tostring(PARK_PORT))[1]
  probe = (tid == 1)
  if KEEP_BODIES then out = io.open(OUT .. "/answers-" .. tid .. ".txt", "w") end
  if on_init then on_init() end
end

-- Count one answer (and keep its body when asked). Benchmarks that redefine response() call it.
function record(status, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  last = now()
  if out then out:write(status, "\t", (string.gsub(body, "[\r\n]", " ")), "\n") end
end

-- This thread has every answer it waits for: say so (the caller stops wrk) and stop its loop.
function finish()
  park()
  if out then out:close(); out = nil end
  local f = io.open(OUT .. "/done-" .. tid, "w"); f:write("done"); f:close()
  wrk.thread:stop()
end

function request()
  if probe then probe = false; return wrk.format("GET", "/healthz") end
  if sent == 0 then first = now() end
  sent = sent + 1
  return next_request(sent - 1)
end

function response(status, headers, body)
  record(status, body)
  if LIMIT and answered >= LIMIT then finish() end
end

function done(summary, latency, requests)
  local f = io.open(OUT .. "/summary.txt", "w")
  f:write("requests ", summary.requests, "\n")
  f:write("duration_us ", summary.duration, "\n")
  for k, v in pairs(summary.errors) do f:write("error ", k, " ", v, "\n") end
  for _, t in ipairs(threads) do
    for s, c in pairs(t:get("statuses")) do f:write("status ", s, " ", c, "\n") end
    f:write("span ", string.format("%%.6f %%.6f", t:get("first"), t:get("last")), "\n")
    -- What a benchmark times itself (seconds), and what it counts as refused, if it does.
    for _, v in ipairs(t:get("own_latencies") or {}) do f:write("own ", string.format("%%.6f", v), "\n") end
    f:write("refused ", t:get("refused") or 0, "\n")
  end
  -- Percentiles only: listing wrk's histogram costs (distinct values x largest value).
  for _, p in ipairs({50, 90, 99, 99.9}) do f:write("latency ", p, " ", latency:percentile(p), "\n") end
  f:write("latency 100 ", latency.max, "\n")
  f:close()
end

-- A bounded run (LIMIT answers per thread): a connection sends only while requests remain; the
-- others wait (wrk's delay()) until the thread stops.
function bounded(limit)
  LIMIT = limit
  delay = function()
    if reserved < LIMIT then
      reserved = reserved + 1
      if reserved == LIMIT then park() end
      return 0
    end
    return 3600000
  end
end
"""


def lua_string(value: str) -> str:
    """A Lua string literal for ``value`` (JSON's escapes are valid Lua ones for what we write)."""
    return json.dumps(value)


@dataclass
class WrkResult:
    label: str
    requests: int
    seconds: float
    statuses: dict[int, int]
    #: wrk's socket errors (connect, read, write, timeout); its "status" error is a count of >399.
    errors: dict[str, int]
    #: latency percentile -> milliseconds (50, 90, 99, 99.9, 100), from wrk's histogram (with wrk's
    #: correction for requests it could not send in time).
    latency: dict[float, float]
    #: seconds from the first request sent to the last answer received (any thread).
    span: float = 0.0
    #: CPU seconds spent in the interval: the server (gunicorn master and workers), the database's
    #: backends (PostgreSQL only; None on SQLite) and wrk itself.
    server_cpu: float = 0.0
    database_cpu: float | None = None
    client_cpu: float = 0.0
    answers: list[tuple[int, str]] = field(default_factory=list)
    #: latencies (seconds) a script measured itself (``own_latencies``), and what it counted as refused.
    own_latencies: list[float] = field(default_factory=list)
    refused: int = 0
    #: what wrk printed
    output: str = ""
    #: gunicorn workers that started during the run (a worker killed by its timeout is replaced)
    workers_started: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        """Answers that were not 2xx, plus socket errors: a run with any of these does not count."""
        return (sum(c for s, c in self.statuses.items() if not 200 <= s < 300)
                + sum(v for k, v in self.errors.items() if k != "status"))

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds (50, 90, 99, 99.9 or 100); NaN when nothing was answered."""
        return self.latency.get(p, float("nan")) if self.requests else float("nan")

    def cpu_per_request(self, which: str = "server") -> float:
        """CPU milliseconds per request: ``server``, ``database`` or ``client``."""
        value = {"server": self.server_cpu, "database": self.database_cpu, "client": self.client_cpu}[which]
        return value / self.requests * 1000 if self.requests and value is not None else float("nan")

    def line(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()) if v and k != "status")
        cpu = f"server CPU {self.cpu_per_request():.2f} ms/request"
        if self.database_cpu is not None:
            cpu += f" + database {self.cpu_per_request('database'):.2f} ms"
        cpu += f", wrk {self.cpu_per_request('client'):.2f} ms"
        return (f"{self.label}: {self.requests:,} requests in {self.seconds:.2f} s = {self.rate:,.0f}/s; "
                f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms; {cpu}; "
                f"statuses {{{statuses}}}" + (f"; socket errors: {errors}" if errors else "")
                + (f"; {self.workers_started} gunicorn workers restarted" if self.workers_started else ""))


def combine(label: str, results: list[WrkResult]) -> WrkResult:
    """Several rounds of one load as one: requests, seconds and CPU summed, statuses pooled; p50 is the
    median of the rounds' p50, and p90 and above the highest of the rounds' (the worst round)."""
    def pooled(attr):
        out: dict = {}
        for r in results:
            for k, v in getattr(r, attr).items():
                out[k] = out.get(k, 0) + v
        return out

    p50s = sorted(r.latency.get(50, float("nan")) for r in results)
    latency = {p: max(r.latency.get(p, float("nan")) for r in results) for p in (90, 99, 99.9, 100)}
    latency[50] = p50s[len(p50s) // 2]
    database = [r.database_cpu for r in results]
    return WrkResult(label, sum(r.requests for r in results), sum(r.seconds for r in results),
                     pooled("statuses"), pooled("errors"), latency, sum(r.span for r in results),
                     sum(r.server_cpu for r in results),
                     None if None in database else sum(database), sum(r.client_cpu for r in results),
                     workers_started=sum(r.workers_started for r in results))


def need_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install -y wrk (make bench installs it)")
    return found


#: The system calls :func:`count_syscalls` reports: SQLite's page reads and writes, its locks, and
#: the sleeps of the wait for the write lock.
SYSCALLS = ("pread64", "pwrite64", "fcntl", "clock_nanosleep", "fdatasync")


def count_syscalls(instance: Instance, run) -> tuple[object, dict[int, dict[str, tuple[int, int]]]]:
    """Call ``run()`` (a wrk run against ``instance``) while ``strace -c`` counts the system calls of
    each of the server's workers; return its result and, per worker, ``{syscall: (calls, errors)}``.
    strace slows the workers: the run's own figures do not count. Needs strace (Debian's package)."""
    strace = shutil.which("strace")
    if not strace:
        raise SystemExit("strace is needed for --syscalls: apt-get install -y strace")
    workers = sorted(children(instance.process.pid))
    folder = Path(tempfile.mkdtemp(prefix="strace-", dir=instance.folder))
    tracers = [subprocess.Popen([strace, "-c", "-f", "-p", str(pid), "-o", str(folder / f"{pid}.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in workers]
    time.sleep(0.5)  # attached
    try:
        result = run()
    finally:
        for tracer in tracers:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
    counts: dict[int, dict[str, tuple[int, int]]] = {}
    for pid in workers:
        table: dict[str, tuple[int, int]] = {}
        path = folder / f"{pid}.txt"
        for line in path.read_text().splitlines() if path.exists() else []:
            fields = line.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall"
            if len(fields) >= 5 and fields[-1] in SYSCALLS and fields[3].isdigit():
                table[fields[-1]] = (int(fields[3]), int(fields[4]) if len(fields) == 6 else 0)
        counts[pid] = table
    shutil.rmtree(folder, ignore_errors=True)
    return result, counts


def run_wrk(instance: Instance, label: str, lua: str, *, threads: int = 2, connections: int = 4,
            seconds: float | None = None, max_seconds: float = 600.0, keep_answers: bool = False,
            timeout: int = 30) -> WrkResult:
    """Run wrk against ``instance`` with ``lua`` (the benchmark's part of the script).

    Either for ``seconds`` (wrk's duration), or, when the script calls ``bounded(n)`` in its
    ``on_init()`` (each thread's, after ``tid`` is set), until every thread has its ``n`` answers
    (then wrk is stopped; ``max_seconds`` bounds it). ``lua`` defines ``next_request(n)`` (this
    thread's ``n``-th request, from 0) and may redefine ``response``. Server CPU is read from /proc
    before and after.
    """
    wrk = need_wrk()
    folder = Path(tempfile.mkdtemp(prefix="wrk-", dir=instance.folder))
    script = folder / "run.lua"
    parking = socket.socket()
    parking.bind((HOST, 0))
    parking.listen(4096)
    script.write_text(WRK_LUA % {"out": lua_string(str(folder)), "threads": threads, "park": parking.getsockname()[1],
                                 "keep": "true" if keep_answers else "false"} + "\n" + lua)
    duration = seconds if seconds is not None else max_seconds
    command = [wrk, "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
               "--timeout", f"{timeout}s", "-s", str(script), f"http://{HOST}:{instance.port}"]
    before = instance.cpu_ticks()
    client_before = os.times()
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if seconds is None:  # bounded: stop wrk when every thread is done
            deadline = time.monotonic() + max_seconds
            while process.poll() is None and time.monotonic() < deadline:
                if len(list(folder.glob("done-*"))) >= threads:
                    process.send_signal(signal.SIGINT)
                    break
                time.sleep(0.01)
        stdout, stderr = process.communicate(timeout=max_seconds + 60)
    finally:
        parking.close()
    client_after = os.times()
    after = instance.cpu_ticks()
    summary = folder / "summary.txt"
    if process.returncode != 0 or not summary.exists():
        raise SystemExit(f"wrk failed ({process.returncode}):\n{stdout}\n{stderr}")
    result = WrkResult(label, 0, 0.0, {}, {}, {}, output=stdout)
    firsts, lasts = [], []
    for line in summary.read_text().splitlines():
        key, *rest = line.split()
        if key == "requests":
            result.requests = int(rest[0])
        elif key == "duration_us":
            result.seconds = int(rest[0]) / 1e6
        elif key == "error":
            result.errors[rest[0]] = int(rest[1])
        elif key == "status":
            result.statuses[int(rest[0])] = result.statuses.get(int(rest[0]), 0) + int(rest[1])
        elif key == "span":
            if float(rest[0]) > 0:
                firsts.append(float(rest[0]))
                lasts.append(float(rest[1]))
        elif key == "own":
            result.own_latencies.append(float(rest[0]))
        elif key == "refused":
            result.refused += int(float(rest[0]))
        elif key == "latency":
            result.latency[float(rest[0])] = float(rest[1]) / 1000
    result.span = max(lasts) - min(firsts) if firsts else 0.0
    if seconds is None:  # a bounded run's time is from its first request to its last answer
        result.seconds = result.span
    result.server_cpu = cpu_delta(before["server"], after["server"])
    result.workers_started = len(set(after["server"]) - set(before["server"]))
    if before["database"] is not None:
        result.database_cpu = cpu_delta(before["database"], after["database"])
    result.client_cpu = ((client_after.children_user + client_after.children_system)
                         - (client_before.children_user + client_before.children_system))
    if keep_answers:
        for path in sorted(folder.glob("answers-*.txt")):
            for line in path.read_text(encoding="utf-8").splitlines():
                status, _, body = line.partition("\t")
                result.answers.append((int(status), body))
    shutil.rmtree(folder, ignore_errors=True)
    return result


# --- CPU time of the server's processes -------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_ticks(pids) -> dict[int, int]:
    """utime + stime (clock ticks) of each process in ``pids`` that still exists."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return out


def cpu_delta(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds between two readings (a process that started in between counts from zero)."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / CLOCK_TICKS

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


def load_average() -> str:
    """The machine's load average: figures taken on a busy machine are not comparable to quiet ones."""
    one, five, fifteen = os.getloadavg()
    return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"
