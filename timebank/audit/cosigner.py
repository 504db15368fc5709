"""``timebank witness URL``: this deployment acts as a witness of another one's ledger.

The witness keeps, in files of its own instance folder:

* its Ed25519 key (``witness_key.pem``, made on first use, mode 0600), and
* its state (``witness_state.json``): for each log it watches (by origin), the log's public keys
  it trusts, and the largest tree head it has seen (tree size and root).

One run: fetch the log's latest checkpoint; check its signature with a trusted key of the log;
check with a consistency proof that it extends the tree head seen last (same size: same root);
write the new tree head to the state; cosign the checkpoint (C2SP tlog-cosignature, Ed25519
``cosignature/v1``) and post the cosignature back. Any failed check stops the run before the state
changes or anything is signed: a witness never signs a tree head it could not tie to the last one.

The log's key is pinned on first contact (given with ``--log-key``, or else taken from the log's
``/api/v1/ledger/public-key`` and printed, to be compared out of band); a checkpoint signed by any
other key is refused until the operator adds that key with ``--log-key``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import checkpoint as notes
from ledger import merkle

STATE_VERSION = 1
DEFAULT_KEY_FILE = "witness_key.pem"
DEFAULT_STATE_FILE = "witness_state.json"


class WitnessError(Exception):
    """A check failed or the log could not be read: nothing was signed."""


# --------------------------------------------------------------------------------------------
# Talking to the log
# --------------------------------------------------------------------------------------------


class HttpLog:
    """The log's public API over HTTP (standard library only)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def _open(self, request: urllib.request.Request) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (an operator's URL)
                return response.status, json.loads(response.read().decode("utf-8") or "null")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read().decode("utf-8") or "null")
            except ValueError:
                body = None
            return exc.code, body
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise WitnessError(f"cannot read {request.full_url}: {exc}") from None

    def get(self, path: str, **query) -> tuple[int, Any]:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._open(urllib.request.Request(url, headers={"Accept": "application/json"}))

    def post(self, path: str, body: dict) -> tuple[int, Any]:
        data = json.dumps(body).encode("utf-8")
        return self._open(urllib.request.Request(self.base + path, data=data, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json"}))


# --------------------------------------------------------------------------------------------
# Key and state files
# --------------------------------------------------------------------------------------------


def load_or_create_key(path: Path):
    if not path.exists():
        try:
            notes.save_private_key(notes.generate_key(), path)
        except FileExistsError:
            pass
    return notes.load_private_key(path)


def public_key_b64(private_key) -> str:
    return base64.b64encode(notes.raw_public_key(private_key)).decode("ascii")


def read_state(path: Path) -> dict:
    if not path.exists():
        return {"v": STATE_VERSION, "logs": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WitnessError(f"cannot read the witness state {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("v") != STATE_VERSION or not isinstance(state.get("logs"), dict):
        raise WitnessError(f"{path} is not a witness state file of version {STATE_VERSION}")
    return state


def write_state(path: Path, state: dict) -> None:
    """Replace the state file atomically (a crash leaves the old or the new state, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    origin: str
    tree_size: int
    root_hash: str
    previous_size: int | None
    posted_status: int
    key_pinned: str | None = None


def _raw_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise WitnessError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise WitnessError(f"{what} is not a raw 32-byte Ed25519 key")
    return raw


def _expect(status: int, body: Any, what: str) -> dict:
    if status != 200 or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else body
        raise WitnessError(f"the log answered {status} for {what}: {detail}")
    return body


def _checked_checkpoint(cp: dict, keys: list[bytes]) -> tuple[str, int, bytes]:
    """The note's (origin, size, root) once a trusted key's signature over it verifies."""
    note = cp.get("note")
    try:
        origin, size, root = notes.parse_checkpoint_body(note)  # type: ignore[arg-type]
        signature = base64.b64decode(str(cp.get("signature", "")).encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError, binascii.Error) as exc:
        raise WitnessError(f"the checkpoint is malformed: {exc}") from None
    if not any(notes.verify_note(key, note, signature) for key in keys):  # type: ignore[arg-type]
        raise WitnessError(f"the checkpoint of {origin} is not signed by a key this witness trusts for it "
                           f"(key {cp.get('key_id')}); if the log rotated its key, confirm the new key out of "
                           "band and give it with --log-key")
    return origin, size, root


def witness_once(log, name: str, private_key, state: dict, log_keys: list[str], clock: Callable[[], int],
                 save: Callable[[dict], None]) -> Outcome:
    """Check the log's latest checkpoint against the state, save the new state, cosign and post."""
    notes.check_key_name(name)
    cp = _expect(*log.get("/api/v1/ledger/checkpoints/latest"), "the latest checkpoint")
    try:
        origin = notes.parse_checkpoint_body(cp.get("note"))[0]  # type: ignore[arg-type]
    except ValueError as exc:
        raise WitnessError(f"the checkpoint is malformed: {exc}") from None
    entry = dict(state["logs"].get(origin) or {"public_keys": [], "tree_size": None, "root_hash": None})
    trusted = list(entry["public_keys"])
    for key in log_keys:
        _raw_key(key, "--log-key")
        if key not in trusted:
            trusted.append(key)
    pinned = None
    if not trusted:  # first contact, no key given: pin the one the log shows (compare it out of band)
        shown = _expect(*log.get("/api/v1/ledger/public-key"), "the public key")
        pinned = str(shown.get("public_key"))
        _raw_key(pinned, "the log's public key")
        trusted = [pinned]
    origin, size, root = _checked_checkpoint(cp, [_raw_key(k, "a trusted key") for k in trusted])

    previous_size, previous_root = entry.get("tree_size"), entry.get("root_hash")
    if previous_size is not None:
        old_root = bytes.fromhex(previous_root)
        if size < previous_size:
            raise WitnessError(f"the log shows {size} entries but this witness saw {previous_size} already: "
                               "the log went back")
        if size == previous_size:
            if root != old_root:
                raise WitnessError(f"the log shows another root for tree size {size} than this witness saw: "
                                   "the ledger was rewritten")
        else:
            proof_body = _expect(*log.get("/api/v1/ledger/consistency-proof", first=previous_size, second=size),
                                 "the consistency proof")
            try:
                proof = [merkle.from_hex(h) for h in proof_body.get("proof", [])]
            except (ValueError, TypeError):
                raise WitnessError("the consistency proof is malformed") from None
            # The roots come from what this witness saw and from the signed note, never from the answer.
            if not merkle.verify_consistency(previous_size, size, old_root, root, proof):
                raise WitnessError(f"the checkpoint of {size} entries is not consistent with the {previous_size} "
                                   "entries this witness saw: the ledger was rewritten")
    entry.update({"url": getattr(log, "base", None), "public_keys": trusted, "tree_size": size,
                  "root_hash": root.hex()})
    state["logs"][origin] = entry
    save(state)  # seen and checked: from now on, only trees extending this one are signed

    blob = notes.sign_cosignature(private_key, name, cp["note"], clock())
    status, answer = log.post(f"/api/v1/ledger/checkpoints/{size}/cosignatures",
                              {"name": name, "signature": base64.b64encode(blob).decode("ascii")})
    if status not in (200, 201):
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        code = answer.get("error") if isinstance(answer, dict) else None
        raise WitnessError(f"the log refused the cosignature ({status} {code}): {detail}")
    return Outcome(origin=origin, tree_size=size, root_hash=root.hex(), previous_size=previous_size,
                   posted_status=status, key_pinned=pinned)
