"""A power cut under a redemption load: every acknowledged sale is on disk (opt-in, needs root).

The SQLite database lies on an ext4 file system of its own (an image file on a loop device,
mounted ``errors=remount-ro``), as a plain file, as a file reached through a symbolic link, or in a
folder reached through a symbolic link. ``timebank serve --workers 2`` runs on it while four tills
fire sales with Idempotency-Keys. Mid-load, ext4's ``trigger_fs_error`` aborts the journal: from
then on nothing more reaches the disk, and whatever was written but not synced is lost, as in a
power cut. The server is killed, the image detached, attached again and mounted (the journal is
replayed as at boot). Then every sale that was answered 201 must be there, with its idempotency
record and its ledger transaction; the ledger balances; and ``timebank verify`` exits 0.

Run it with ``TIMEBANK_ROOT_FAULTS=1 .venv/bin/pytest -m slow tests/test_power_cut.py`` as root, on
a kernel with loop devices and ext4 (docs/operations.md, "What is durable when").
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import ledger
from conftest import IS_POSTGRES, base_config
from ledger.models import Transaction
from test_bench_sigkill import BIN, HOUSEHOLDS, Server, _post, _prepare  # noqa: PLC2701 - shared
from timebank import create_app
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.core.idempotency import IdempotencyRecord
from timebank.people.models import Household
from timebank.shop.models import Redemption

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("TIMEBANK_ROOT_FAULTS") != "1",
                       reason="needs root, a loop device and ext4: set TIMEBANK_ROOT_FAULTS=1"),
    pytest.mark.skipif(IS_POSTGRES, reason="the SQLite file on a file system of its own"),
]

LOAD_SECONDS, MIN_ACKNOWLEDGED, LOAD_AFTER_FAULT_SECONDS = 2.0, 200, 1.0


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


class Ext4Image:
    """An ext4 file system in an image file, on a loop device, mounted with ``errors=remount-ro``."""

    def __init__(self, folder: Path):
        self.image = folder / "ext4.img"
        self.mountpoint = folder / "mnt"
        self.device: str | None = None
        self.mounted = False

    def create(self) -> None:
        self.mountpoint.mkdir()
        _run("truncate", "-s", "128M", str(self.image))
        _run("mkfs.ext4", "-q", str(self.image))
        self.attach()

    def attach(self) -> None:
        self.device = _run("losetup", "-f", "--show", str(self.image))
        mount = ["mount", "-o", "errors=remount-ro", self.device, str(self.mountpoint)]
        if subprocess.run(mount, capture_output=True).returncode != 0:  # repair, then mount
            self._detach_device()
            subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, timeout=120)
            self.device = _run("losetup", "-f", "--show", str(self.image))
            _run("mount", "-o", "errors=remount-ro", self.device, str(self.mountpoint))
        self.mounted = True

    def abort_journal(self) -> None:
        """ext4's own error path: the journal is aborted and the file system turns read-only, so
        pages written but not yet synced never reach the device."""
        assert self.device is not None
        Path(f"/sys/fs/ext4/{Path(self.device).name}/trigger_fs_error").write_text("1")

    def detach(self) -> None:
        if self.mounted:
            if subprocess.run(["umount", str(self.mountpoint)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
            self.mounted = False
        self._detach_device()

    def _detach_device(self) -> None:
        if self.device is not None:
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
            self.device = None


def _place(database: Path, mountpoint: Path, layout: str) -> Path:
    """Copy the prepared database onto the file system in ``layout``; the path the server is given."""
    real = mountpoint / "real"
    real.mkdir()
    shutil.copy(database, real / "timebank.sqlite")
    if layout == "plain":
        path = real / "timebank.sqlite"
    elif layout == "linked file":
        path = mountpoint / "link.sqlite"
        path.symlink_to("real/timebank.sqlite")
    else:
        (mountpoint / "linked").symlink_to("real")
        path = mountpoint / "linked" / "timebank.sqlite"
    os.sync()  # the starting point is on the device
    return path


@pytest.mark.parametrize("layout", ["plain", "linked file", "linked folder"])
def test_power_cut_loses_no_acknowledged_sale(world, tmp_path, layout):
    token, cards, items = _prepare(world)
    with world.app.app_context():
        db.session.remove()
        db.engine.dispose()
    prepared = Path(world.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    assert not prepared.with_name(prepared.name + "-wal").exists()  # all in the one file

    disk = Ext4Image(tmp_path)
    server = Server(tmp_path, "")
    try:
        disk.create()
        database = _place(prepared, disk.mountpoint, layout)
        uri = f"sqlite:///{database}"
        server.env["TIMEBANK_DATABASE_URL"] = uri
        server.start()

        auth = {"Authorization": f"Bearer {token}"}
        lock = threading.Lock()
        acknowledged: dict[str, dict] = {}  # key -> the 201 body
        stop = threading.Event()
        counter = iter(range(10**6))

        def till():
            while not stop.is_set():
                with lock:
                    n = next(counter)
                key = f"cut-{n}"
                body = {"member_code": cards[n % HOUSEHOLDS],
                        "lines": [{"item_id": items[n % 2], "quantity": 1 + n % 3}]}
                try:
                    status, _, data = _post(server.port, "/api/v1/redemptions", body,
                                            {**auth, "Idempotency-Key": key}, timeout=10)
                except (OSError, http.client.HTTPException):
                    continue
                if status == 201:
                    with lock:
                        acknowledged[key] = json.loads(data)

        threads = [threading.Thread(target=till) for _ in range(4)]
        for t in threads:
            t.start()
        started = time.monotonic()
        while ((len(acknowledged) < MIN_ACKNOWLEDGED or time.monotonic() - started < LOAD_SECONDS)
               and time.monotonic() - started < 60):
            time.sleep(0.05)
        before_fault, loaded_for = len(acknowledged), time.monotonic() - started
        disk.abort_journal()
        time.sleep(LOAD_AFTER_FAULT_SECONDS)
        server.kill()
        stop.set()
        for t in threads:
            t.join(30)
        assert before_fault >= 50, before_fault  # the load was running when the power went

        # Power back: the device attached and mounted again, its journal replayed.
        disk.detach()
        disk.attach()
        check = create_app(base_config(tmp_path / "check", uri))
        with check.app_context():
            s = db.session
            sales = {r.id: r for r in s.scalars(select(Redemption))}
            keys = set(s.scalars(select(IdempotencyRecord.key)))
            present = [k for k, answer in acknowledged.items() if answer["id"] in sales and k in keys]
            print(f"\n{layout}: {len(acknowledged)} sales acknowledged ({before_fault} in {loaded_for:.1f} s"
                  f" before the fault), {len(present)} present after the power cut, {len(sales)} in the database")
            lost = sorted(set(acknowledged) - set(present), key=lambda k: int(k.split("-")[1]))
            assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged sales lost: {lost[:10]}"
            for answer in acknowledged.values():
                row = sales[answer["id"]]
                assert (row.transaction_id, row.receipt_no, row.total_points) == (
                    answer["transaction_id"], answer["receipt_no"], answer["total_points"])
            refs = set(s.scalars(select(Transaction.reference).where(Transaction.kind == "redemption")))
            assert refs == {f"redemption:{rid}" for rid in sales}
            assert ledger.verify(s).ok
            spent = sum(1000 - ledger.balance(s, accounts.household_points(h.id))
                        for h in s.scalars(select(Household)))
            assert spent == sum(r.total_points for r in sales.values())
            s.remove()
            db.engine.dispose()
        verify = subprocess.run([str(BIN / "timebank"), "verify"], env=server.env, capture_output=True,
                                text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
        disk.detach()
