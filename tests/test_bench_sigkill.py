"""SIGKILL in the middle of a redemption load: nothing acknowledged is lost, nothing is half-applied.

``timebank serve --workers 2`` runs on the test database (a SQLite file, or the PostgreSQL test
database when the suite runs on PostgreSQL). Tills fire redemptions with Idempotency-Keys from
threads; while they do, the whole process group (gunicorn master and workers) is killed with
SIGKILL. After a restart: every acknowledged sale is there with its ledger transaction and stock
movements; no sale exists without its ledger transaction or the other way round; every item's
on-hand equals its movement log; ``timebank verify`` exits 0; and retrying an unanswered request
with its key either returns the stored answer or performs the sale, exactly once.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

import ledger
from ledger.models import Transaction
from timebank.core import accounts
from timebank.core.auth import issue_token
from timebank.core.extensions import db
from timebank.core.users import User
from timebank.people.models import Household
from timebank.shop import operations as shop_ops
from timebank.shop.models import Item, Redemption, RedemptionLine, StockMovement

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow
HOUSEHOLDS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port, path, body, headers, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, response.getheader("Idempotent-Replayed"), response.read()
    finally:
        conn.close()


class Server:
    def __init__(self, tmp_path: Path, db_uri: str):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_") and k != "GUNICORN_CMD_ARGS"}
        self.env.update(TIMEBANK_INSTANCE_PATH=str(tmp_path / "instance"), TIMEBANK_SECRET_KEY="test-secret",
                        TIMEBANK_DATABASE_URL=db_uri)
        self.log_path = tmp_path / "serve.log"
        self.process = None

    def start(self):
        self.port = _free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "timebank"), "serve", "--workers", "2", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server did not start:\n" + self.log_path.read_text())

    def group_pids(self) -> set[int]:
        pids = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.process.pid:
                        pids.add(int(entry.name))
                except OSError:
                    pass
        return pids

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture
def server(tmp_path, db_uri):
    s = Server(tmp_path, db_uri)
    yield s
    s.stop()


def _prepare(world):
    """Households with points, two goods with stock, a clerk's token (on the real clock: the server's)."""
    app = world.app
    app.extensions.pop("timebank.core.clock", None)
    world.user("clerk", "clerk")
    households = [world.household(name=f"户{n}") for n in range(HOUSEHOLDS)]
    for h in households:
        world.grant(h, 1000)
    with app.app_context():
        clerk = db.session.execute(select(User).where(User.username == "clerk")).scalar_one()
        community = clerk.community
        items = []
        for sku, price in (("soap", 3), ("rice", 7)):
            item = shop_ops.create_item(community, clerk, sku=sku, name=sku, price_points=price)
            shop_ops.record_movement(item, clerk, quantity=100_000, reason="donation", donor="爱心企业")
            items.append(item.id)
        cards = [db.session.get(Household, h).member_code for h in households]
        token = issue_token(clerk)[0]
        db.session.commit()
    return token, cards, items


def test_sigkill_mid_load_loses_no_acknowledged_redemption_and_leaves_none_half_applied(world, server):
    token, cards, items = _prepare(world)
    server.start()
    auth = {"Authorization": f"Bearer {token}"}
    lock = threading.Lock()
    acknowledged: dict[str, dict] = {}   # key -> the 201 body
    unanswered: dict[str, dict] = {}     # key -> the request body
    sent: dict[str, dict] = {}           # every key -> its request body
    killed = threading.Event()
    counter = iter(range(10**6))

    def till():
        while not killed.is_set():
            with lock:
                n = next(counter)
            key = f"kill-{n}"
            body = {"member_code": cards[n % HOUSEHOLDS],
                    "lines": [{"item_id": items[n % 2], "quantity": 1 + n % 3}]
                    + ([{"item_id": items[(n + 1) % 2], "quantity": 1}] if n % 4 == 0 else [])}
            with lock:
                sent[key] = body
            try:
                status, _, data = _post(server.port, "/api/v1/redemptions", body, {**auth, "Idempotency-Key": key})
            except (OSError, http.client.HTTPException):
                with lock:
                    unanswered[key] = body
                continue
            with lock:
                if status == 201:
                    acknowledged[key] = json.loads(data)
                else:
                    unanswered[key] = body  # e.g. 503 while the database was busy: not acknowledged

    threads = [threading.Thread(target=till) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    group = server.group_pids()
    assert len(group) >= 3, group  # master and two workers, all killed together, mid-load
    server.kill()
    killed.set()
    for t in threads:
        t.join(30)
    assert len(acknowledged) >= 40
    assert unanswered  # four tills were busy: the kill cut requests in flight
    time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
                   for pid in group)

    # Restarted, the database holds exactly what was acknowledged plus possibly sales whose answer
    # was lost in the kill, each complete.
    server.start()
    with world.app.app_context():
        s = db.session
        sales = {r.id: r for r in s.scalars(select(Redemption))}
        for answer in acknowledged.values():
            row = sales.get(answer["id"])
            assert row is not None and row.transaction_id == answer["transaction_id"]
            assert row.receipt_no == answer["receipt_no"] and row.total_points == answer["total_points"]
        tx_by_ref = {ref: tx_id for ref, tx_id in s.execute(
            select(Transaction.reference, Transaction.id).where(Transaction.kind == "redemption"))}
        assert set(tx_by_ref) == {f"redemption:{rid}" for rid in sales}  # no sale without its points, and back
        for rid, row in sales.items():
            assert tx_by_ref[f"redemption:{rid}"] == row.transaction_id
            lines = {line.item_id: line.quantity for line in s.scalars(
                select(RedemptionLine).where(RedemptionLine.redemption_id == rid))}
            moved = {m.item_id: -m.quantity for m in s.scalars(
                select(StockMovement).where(StockMovement.redemption_id == rid))}
            assert lines and lines == moved
            assert sum(lines[i] * (3 if i == items[0] else 7) for i in lines) == row.total_points
        for item in s.scalars(select(Item)):
            logged = s.scalar(select(func.coalesce(func.sum(StockMovement.quantity), 0))
                              .where(StockMovement.item_id == item.id))
            assert item.on_hand == logged
        assert ledger.verify(s).ok
        spent = sum(1000 - ledger.balance(s, accounts.household_points(h.id)) for h in s.scalars(select(Household)))
        assert spent == sum(r.total_points for r in sales.values())
        before = len(sales)
        s.remove()
    verify = subprocess.run([str(BIN / "timebank"), "verify"], env=server.env, capture_output=True, text=True,
                            timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Retrying what had no answer: the stored answer if it committed before the kill, else done now;
    # a second retry replays. Each key ends up as exactly one sale.
    # A sale that had not committed is done now, and may now be refused: the load may have spent the
    # household's points meanwhile. The refusal is stored with the key and replayed too.
    retried = {}
    for key, body in unanswered.items():
        status, replayed, data = _post(server.port, "/api/v1/redemptions", body, {**auth, "Idempotency-Key": key})
        assert status == 201 or (status == 409 and json.loads(data)["error"] == "insufficient_points"), data
        again, replayed, data_again = _post(server.port, "/api/v1/redemptions", body,
                                            {**auth, "Idempotency-Key": key})
        assert again == status and replayed == "true" and json.loads(data_again) == json.loads(data)
        if status == 201:
            retried[key] = json.loads(data)
    some = next(iter(acknowledged))
    status, replayed, data = _post(server.port, "/api/v1/redemptions", sent[some], {**auth, "Idempotency-Key": some})
    assert status == 201 and replayed == "true" and json.loads(data)["id"] == acknowledged[some]["id"]
    ids = [a["id"] for a in acknowledged.values()] + [r["id"] for r in retried.values()]
    assert len(ids) == len(set(ids))
    with world.app.app_context():
        total = db.session.scalar(select(func.count()).select_from(Redemption))
        assert total == len(ids) and total >= before
        assert ledger.verify(db.session).ok
