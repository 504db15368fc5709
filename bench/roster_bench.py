"""The roster at scale: list and search 12,000 households over HTTP, and print all their cards.

Builds a throw-away SQLite instance with ``--households`` households (two members each, so
``2 x N`` residents and ``3 x N`` ledger accounts), starts ``timebank serve --workers W`` on it, logs a
committee member in (a bearer token for the API, a page session for the pages) and measures, over
HTTP with ``wrk`` (``--connections`` connections for ``--seconds`` each; when ``wrk`` is missing,
the project's own load client in bench/benchlib.py):

1. the API's first page, a search, and a page late in the roster (reached by its cursor);
2. the roster page (``/committee/households``): first page, a search, a late page;
3. the card sheet: one part of 400 cards, and every card in one streamed document (timed once each).

The households are written in a few bulk statements (the operations open each ledger account with
its own queries, which would take minutes for 12,000 households and measure nothing of the roster).
Run it on a quiet machine; the figures are what it prints.
Usage: python bench/roster_bench.py [--households N] [--seconds S] [--connections C] [--workers W]
(``make bench-roster`` installs wrk when it is missing and runs this.)
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import benchlib

PASSWORD = "bench-committee-pass"


def build(instance: benchlib.Instance, households: int) -> dict:
    """One community with ``households`` households of two residents each, and a committee login."""
    from sqlalchemy import insert

    from ledger.models import Account
    from timebank.core import accounts
    from timebank.core.auth import issue_token
    from timebank.core.clock import utc_naive
    from timebank.core.extensions import db
    from timebank.people import operations as people_ops
    from timebank.people.models import Household, Resident, new_member_code

    app = instance.app()
    with app.app_context():
        community = people_ops.create_community("bench", "基准社区")
        committee = people_ops.create_user("bench-committee", PASSWORD, "committee", community_id=community.id)
        token = issue_token(committee)[0]
        db.session.commit()
        now = utc_naive()
        colors = ("green", "green", "yellow", "red")
        homes = [{"id": n + 1, "community_id": community.id, "name": f"户{n % 3000}", "address": f"基准路{n}号",
                  "grid": str(n % 12 + 1), "color": colors[n % 4], "member_code": new_member_code("H"),
                  "created_at": now} for n in range(households)]
        people = [{"id": 2 * n + k + 1, "household_id": n + 1, "name": f"居民{2 * n + k}",
                   "phone": f"139{2 * n + k:08d}", "birth_year": 1940 + (n + k) % 70,
                   "member_code": new_member_code("R"), "created_at": now, "active": True}
                  for n in range(households) for k in (0, 1)]
        db.session.execute(insert(Household), homes)
        db.session.execute(insert(Resident), people)
        first = db.session.execute(db.select(db.func.coalesce(db.func.max(Account.id), 0))).scalar_one() + 1
        wallets = [(accounts.household_points(h["id"]), accounts.POINTS, h["id"], None) for h in homes] + \
                  [(accounts.resident_minutes(r["id"]), accounts.MINUTES, r["household_id"], r["id"]) for r in people]
        db.session.execute(insert(Account), [{"id": first + i, "code": code, "unit": unit, "allow_negative": False,
                                              "balance": 0, "created_at": now}
                                             for i, (code, unit, _h, _r) in enumerate(wallets)])
        db.session.execute(insert(accounts.AccountOwner), [
            {"account_id": first + i, "community_id": community.id, "household_id": h, "resident_id": r}
            for i, (_code, _unit, h, r) in enumerate(wallets)])
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return {"token": token}


def get(port: int, path: str, headers: dict) -> tuple[int, bytes, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection(benchlib.HOST, port, timeout=600)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return response.status, body, time.perf_counter() - start


def page_session(port: int) -> str:
    """Log in to the pages as the committee member; the session cookie."""
    conn = http.client.HTTPConnection(benchlib.HOST, port, timeout=60)
    conn.request("GET", "/login")
    first = conn.getresponse()
    html = first.read().decode()
    cookie = first.getheader("Set-Cookie", "").split(";")[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    form = urllib.parse.urlencode({"username": "bench-committee", "password": PASSWORD, "csrf_token": csrf})
    conn.request("POST", "/login", body=form, headers={"Cookie": cookie,
                                                        "Content-Type": "application/x-www-form-urlencoded"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 302:
        raise SystemExit(f"page login failed: {answer.status}")
    return answer.getheader("Set-Cookie", cookie).split(";")[0]


def late_cursor(port: int, headers: dict, households: int) -> str:
    """The API's cursor for the last page of 50 (walked with pages of 500)."""
    import json

    cursor, seen = None, 0
    while True:
        path = "/api/v1/households?limit=500" + (f"&cursor={cursor}" if cursor else "")
        status, body, _ = get(port, path, headers)
        page = json.loads(body)
        seen += len(page["items"])
        if page["next_cursor"] is None or seen >= households - 500:
            break
        cursor = page["next_cursor"]
    last = json.loads(get(port, f"/api/v1/households?limit=450&cursor={cursor}", headers)[1])
    return last["next_cursor"] or cursor


def latency_at(out: str, percent: int) -> str:
    """The latency at ``percent`` in wrk's ``--latency`` output, as wrk wrote it ("14.12ms"): from
    the distribution's own line ("     50%   14.12ms"), not from a figure such as "90.50%" in the
    thread statistics above it."""
    return re.search(rf"^\s+{percent}%\s+(\S+)", out, re.M).group(1)


def measure(port: int, label: str, path: str, headers: dict, args) -> str:
    status, body, _ = get(port, path, headers)
    if status != 200:
        raise SystemExit(f"{label}: {path} answered {status}: {body[:200]!r}")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (make bench-roster installs it with apt-get)")
    command = ["wrk", f"-t{min(2, args.connections)}", f"-c{args.connections}", f"-d{args.seconds}s",
               "--latency", *[f"-H{k}: {v}" for k, v in headers.items()], f"http://{benchlib.HOST}:{port}{path}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    p50, p99 = latency_at(out, 50), latency_at(out, 99)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (f"{label}: {float(rate):,.0f}/s; p50 {p50}, p99 {p99}; {len(body):,} bytes"
            + (f"; NON-2XX {bad.group(1)}" if bad else "") + " (wrk)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=12_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    print(benchlib.machine())
    with tempfile.TemporaryDirectory() as folder, benchlib.Instance(folder) as instance:
        instance.init_db()
        started = time.perf_counter()
        data = build(instance, args.households)
        print(f"built {args.households:,} households and {2 * args.households:,} residents in "
              f"{time.perf_counter() - started:.1f} s")
        port = instance.start(args.workers)
        print(f"database: {instance.dialect}; gunicorn workers: {args.workers}; connections: {args.connections}; "
              f"{args.seconds} s each; load client: {'wrk' if shutil.which('wrk') else 'benchlib threads'}")
        api = {"Authorization": f"Bearer {data['token']}"}
        page = {"Cookie": page_session(port)}
        cursor = late_cursor(port, api, args.households)
        search = "0012345"  # part of a member's phone: the search that looks at every household's members
        for label, path, headers in (
                ("API first page (50)", "/api/v1/households?limit=50", api),
                ("API search q=phone part", f"/api/v1/households?q={search}", api),
                ("API search q=household name", "/api/v1/households?q=" + urllib.parse.quote("户2999"), api),
                ("API late page (cursor)", f"/api/v1/households?limit=50&cursor={cursor}", api),
                ("API residents, late page", "/api/v1/residents?limit=50&cursor=" + _resident_cursor(args), api),
                ("roster page, first (100)", "/committee/households", page),
                ("roster page, search", f"/committee/households?q={search}", page),
                ("roster page, late (cursor)", f"/committee/households?cursor={cursor}", page)):
            print(measure(port, label, path, headers, args))
        card = b'class="member-card"'
        status, body, seconds = get(port, "/committee/households/cards", page)
        print(f"card sheet, one part: {body.count(card)} cards in {seconds:.2f} s "
              f"({len(body) / 1e6:.1f} MB, status {status})")
        status, body, seconds = get(port, "/committee/households/cards?all=1", page)
        print(f"card sheet, all in one streamed document: {body.count(card):,} cards in "
              f"{seconds:.1f} s ({len(body) / 1e6:.0f} MB, status {status})")


def _resident_cursor(args) -> str:
    import base64
    import json

    key = json.dumps([2 * args.households - 50]).encode()
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


if __name__ == "__main__":
    main()
