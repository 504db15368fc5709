"""Tests for ledger.merkle (RFC 6962 / 9162) and ledger.checkpoint (C2SP notes).

Three independent sources of truth are used:

* published vectors from transparency-dev/merkle (tests/data/rfc6962_vectors.json);
* a deliberately naive recursive transcription of the RFC definitions below
  (MTH, PATH, PROOF/SUBPROOF) that the optimised code is compared against;
* round-trip properties: every generated proof verifies, every tampered one fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Allow running plain `pytest` from a checkout without installing the package.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from ledger import checkpoint as cp  # noqa: E402
from ledger import merkle as m  # noqa: E402

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text())
H = bytes.fromhex

MAX_SIZE = 300
# Leaf hashes shared by all property tests; trees of size n use the first n.
LEAVES = [m.leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]


# ---------------------------------------------------------------------------
# Naive reference implementation, written straight from RFC 6962 section 2.1
# ---------------------------------------------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if len(d) == 0:
        return m.EMPTY_ROOT
    if len(d) == 1:
        return d[0]  # inputs are already leaf hashes
    k = _k(len(d))
    return m.node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(i: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if i < k:
        return ref_path(i, d[:k]) + [ref_mth(d[k:])]
    return ref_path(i - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(mm: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if mm == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if mm <= k:
        return ref_subproof(mm, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(mm - k, d[k:], False) + [ref_mth(d[:k])]


# Roots of every prefix, computed once with the reference implementation.
ROOTS = [ref_mth(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# ---------------------------------------------------------------------------
# Published vectors
# ---------------------------------------------------------------------------


def vector_leaves() -> list[bytes]:
    return [m.leaf_hash(H(x)) for x in VECTORS["leaf_inputs"]]


def test_vectors_name_their_source():
    assert "transparency-dev/merkle" in VECTORS["comment"]
    assert VECTORS["source"]["repository"] == "transparency-dev/merkle"


def test_hasher_vectors():
    hv = VECTORS["hasher"]
    assert m.EMPTY_ROOT.hex() == hv["empty_root"] == VECTORS["empty_root"]
    assert m.root_from_leaf_hashes([]).hex() == hv["empty_root"]
    assert m.leaf_hash(b"").hex() == hv["empty_leaf"]["leaf_hash"]
    assert m.leaf_hash(hv["leaf"]["leaf_input_ascii"].encode()).hex() == hv["leaf"]["leaf_hash"]
    node = hv["node"]
    assert m.node_hash(node["left_ascii"].encode(), node["right_ascii"].encode()).hex() == node[
        "node_hash"
    ]


@pytest.mark.parametrize("size", range(0, 9))
def test_vector_roots(size):
    leaves = vector_leaves()
    assert m.root_from_leaf_hashes(leaves[:size]).hex() == VECTORS["roots"][size]


def test_vector_node_hashes():
    leaves = vector_leaves()
    for level, row in enumerate(VECTORS["node_hashes"]):
        width = 1 << level
        for i, want in enumerate(row):
            assert m.is_perfect_subtree(i * width, (i + 1) * width)
            assert m.subtree_root(leaves, i * width, (i + 1) * width).hex() == want


@pytest.mark.parametrize(
    "vec", VECTORS["inclusion_proofs"], ids=lambda v: f"{v['leaf_index']}-{v['tree_size']}"
)
def test_vector_inclusion(vec):
    leaves = vector_leaves()
    index, size = vec["leaf_index"], vec["tree_size"]
    proof = [H(x) for x in vec["proof"]]
    root = H(VECTORS["roots"][size])
    assert m.inclusion_proof(leaves, index, size) == proof
    assert m.verify_inclusion(leaves[index], index, size, proof, root)
    assert_inclusion_probes_fail(leaves[index], index, size, proof, root)


@pytest.mark.parametrize(
    "vec", VECTORS["consistency_proofs"], ids=lambda v: f"{v['first']}-{v['second']}"
)
def test_vector_consistency(vec):
    leaves = vector_leaves()
    first, second = vec["first"], vec["second"]
    proof = [H(x) for x in vec["proof"]]
    r1, r2 = H(VECTORS["roots"][first]), H(VECTORS["roots"][second])
    assert m.consistency_proof(leaves, first, second) == proof
    assert m.verify_consistency(first, second, r1, r2, proof)
    if proof:
        assert_consistency_probes_fail(first, second, r1, r2, proof)


# ---------------------------------------------------------------------------
# Tampering probes (modelled on the corruption cases in transparency-dev/merkle)
# ---------------------------------------------------------------------------

SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")


def assert_inclusion_probes_fail(leaf, index, size, proof, root):
    probes = [
        (leaf, index - 1, size, proof, root),
        (leaf, index + 1, size, proof, root),
        (leaf, index ^ 2, size, proof, root),
        (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root),
        (flip(leaf), index, size, proof, root),
        (b"WrongLeaf", index, size, proof, root),
        (leaf, index, size, proof, m.EMPTY_ROOT),
        (leaf, index, size, proof, SOME_HASH),
        (leaf, index, size, proof, flip(root)),
        (leaf, index, size, proof + [b""], root),
        (leaf, index, size, proof + [root], root),
        (leaf, index, size, [b""] + proof, root),
        (leaf, index, size, [root] + proof, root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 3)
        probes.append((leaf, index, size, bad, root))
    if proof:
        probes.append((leaf, index, size, proof[:-1], root))
    if len(proof) > 1:
        probes.append((leaf, index, size, [proof[0], SOME_HASH] + proof[1:], root))
    for probe in probes:
        assert not m.verify_inclusion(*probe), probe[1:3]


def assert_consistency_probes_fail(first, second, r1, r2, proof):
    probes = [
        (first - 1, second, r1, r2, proof),
        (first + 1, second, r1, r2, proof),
        (first ^ 2, second, r1, r2, proof),
        (first, second * 2, r1, r2, proof),
        (first, second // 2, r1, r2, proof),
        (first, second, flip(r1), r2, proof),
        (first, second, r1, flip(r2), proof),
        (first, second, b"WrongRoot", r2, proof),
        (first, second, r2, r1, proof),
        (first, second, r1, r2, []),
        (first, second, r1, r2, proof + [b""]),
        (first, second, r1, r2, proof + [r1]),
        (first, second, r1, r2, proof + [r2]),
        (first, second, r1, r2, [b""] + proof),
        (first, second, r1, r2, [r1] + proof),
        (first, second, r1, r2, [r2] + proof),
        (first, second, r1, r2, [proof[0]] + proof),
        (first, second, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 4)
        probes.append((first, second, r1, r2, bad))
    for probe in probes:
        assert not m.verify_consistency(*probe), probe[:2]


# ---------------------------------------------------------------------------
# Roots
# ---------------------------------------------------------------------------


def test_roots_match_reference_for_all_sizes():
    for n in range(MAX_SIZE + 1):
        assert m.root_from_leaf_hashes(LEAVES[:n]) == ROOTS[n], n
        # Generators work too: the root is computed in one streaming pass.
        assert m.root_from_leaf_hashes(iter(LEAVES[:n])) == ROOTS[n]


def test_compact_range_is_incremental_and_resumable():
    cr = m.CompactRange()
    for n, h in enumerate(LEAVES, start=1):
        cr.append(h)
        assert cr.size == n
        assert len(cr.peaks) == bin(n).count("1")
        if n % 37 == 0:
            # Persist and resume: only (size, peaks) are needed.
            cr = m.CompactRange(cr.size, cr.peaks)
        assert cr.root() == ROOTS[n]
    with pytest.raises(ValueError):
        m.CompactRange(3, [LEAVES[0]])
    with pytest.raises(ValueError):
        m.CompactRange().append(b"short")


def test_subtree_root_matches_reference():
    rng = random.Random(1)
    for _ in range(200):
        a = rng.randrange(0, MAX_SIZE)
        b = rng.randrange(a, MAX_SIZE + 1)
        assert m.subtree_root(LEAVES, a, b) == ref_mth(LEAVES[a:b])
    with pytest.raises(ValueError):
        m.subtree_root(LEAVES, 5, MAX_SIZE + 1)


def test_million_leaves_root():
    # Identical leaves make every perfect subtree of height j the j-fold
    # self-hash of the leaf, which gives an O(log n) independent check.
    n = 1_000_000
    leaf = m.leaf_hash(b"x")
    perfect = [leaf]
    while len(perfect) < 21:
        perfect.append(m.node_hash(perfect[-1], perfect[-1]))

    def subtree_hash(start: int, end: int) -> bytes:
        assert m.is_perfect_subtree(start, end)
        return perfect[(end - start).bit_length() - 1]

    expected = m.range_hash_from_subtrees(subtree_hash)(0, n)
    assert m.root_from_leaf_hashes([leaf] * n) == expected


# ---------------------------------------------------------------------------
# Proof generation vs. reference, and round trips, for every size up to 300
# ---------------------------------------------------------------------------


def cached_range_hash(leaves: list[bytes], calls: list[tuple[int, int]]):
    """A range hash built the way a database-backed caller would build one."""

    cache: dict[tuple[int, int], bytes] = {}

    def subtree_hash(start: int, end: int) -> bytes:
        # The whole point: only immutable, aligned subtrees are ever requested.
        assert m.is_perfect_subtree(start, end), (start, end)
        calls.append((start, end))
        if (start, end) not in cache:
            cache[(start, end)] = m.subtree_root(leaves, start, end)
        return cache[(start, end)]

    return m.range_hash_from_subtrees(subtree_hash)


def test_inclusion_every_size_first_last_and_random():
    rng = random.Random(6962)
    calls: list[tuple[int, int]] = []
    range_hash = cached_range_hash(LEAVES, calls)
    for size in range(1, MAX_SIZE + 1):
        indices = {0, size - 1} | {rng.randrange(size) for _ in range(3)}
        for index in indices:
            proof = m.inclusion_proof(LEAVES, index, size)
            assert proof == ref_path(index, LEAVES[:size])
            assert m.inclusion_proof_from(range_hash, index, size) == proof
            assert len(proof) <= (size - 1).bit_length()
            assert m.verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])
            assert m.root_from_inclusion_proof(LEAVES[index], index, size, proof) == ROOTS[size]
    assert calls  # the cached path was exercised


def test_inclusion_tampering_sampled_sizes():
    rng = random.Random(9162)
    for size in list(range(1, 40)) + rng.sample(range(40, MAX_SIZE + 1), 20):
        index = rng.randrange(size)
        proof = m.inclusion_proof(LEAVES, index, size)
        assert_inclusion_probes_fail(LEAVES[index], index, size, proof, ROOTS[size])
        # The proof must not verify for any other leaf of the same tree.
        other = (index + 1) % size
        if other != index:
            assert not m.verify_inclusion(LEAVES[other], index, size, proof, ROOTS[size])


def test_consistency_all_pairs_small():
    for second in range(1, 65):
        for first in range(0, second + 1):
            proof = m.consistency_proof(LEAVES, first, second)
            if 0 < first < second:
                assert proof == ref_subproof(first, LEAVES[:second], True)
            else:
                assert proof == []
            assert m.verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)
            if proof:
                assert_consistency_probes_fail(first, second, ROOTS[first], ROOTS[second], proof)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_inclusion_property(data):
    size = data.draw(st.integers(1, MAX_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = m.inclusion_proof(LEAVES, index, size)
    root = ROOTS[size]
    assert m.verify_inclusion(LEAVES[index], index, size, proof, root)
    # Any single-bit change anywhere must be caught.
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        bad = list(proof)
        e = bytearray(bad[which])
        e[bit // 8] ^= 1 << (bit % 8)
        bad[which] = bytes(e)
        assert not m.verify_inclusion(LEAVES[index], index, size, bad, root)
    assert not m.verify_inclusion(flip(LEAVES[index]), index, size, proof, root)
    assert not m.verify_inclusion(LEAVES[index], index, size, proof, flip(root))
    # Only sizes that change the path's shape are detectable: e.g. leaf 0 has
    # the same audit path and hash order in trees of 65 and 66 leaves. The
    # root, from a signed checkpoint, is what binds the size.
    for wrong_size in (size * 2, size // 2):
        assert not m.verify_inclusion(LEAVES[index], index, wrong_size, proof, root)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_consistency_property(data):
    second = data.draw(st.integers(1, MAX_SIZE), label="second")
    first = data.draw(st.integers(0, second), label="first")
    proof = m.consistency_proof(LEAVES, first, second)
    r1, r2 = ROOTS[first], ROOTS[second]
    assert m.verify_consistency(first, second, r1, r2, proof)
    if 0 < first < second:
        assert proof == ref_subproof(first, LEAVES[:second], True)
        assert_consistency_probes_fail(first, second, r1, r2, proof)
        # A different history of the same length is detected.
        forked = LEAVES[:first - 1] + [m.leaf_hash(b"fork")] + LEAVES[first:second]
        assert not m.verify_consistency(first, second, r1, ref_mth(forked), proof)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.data())
def test_proof_generation_makes_few_range_calls(size, data):
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size))
    seen: list[tuple[int, int]] = []

    def range_hash(start: int, end: int) -> bytes:
        assert 0 <= start < end <= size
        # Every requested range is a tree node: perfect-aligned or on the right edge.
        assert m.is_perfect_subtree(start, end) or end == size
        seen.append((start, end))
        return SOME_HASH

    depth = (size - 1).bit_length()
    m.inclusion_proof_from(range_hash, index, size)
    assert len(seen) <= depth
    seen.clear()
    m.consistency_proof_from(range_hash, first, size)
    assert len(seen) <= depth + 1


# ---------------------------------------------------------------------------
# Bad input never raises from verifiers
# ---------------------------------------------------------------------------

BAD_INCLUSION_INPUTS = [
    (None, 0, 1, [], ROOTS[1]),
    (LEAVES[0], 0, 1, [], None),
    (LEAVES[0], -1, 1, [], ROOTS[1]),
    (LEAVES[0], 0, 0, [], m.EMPTY_ROOT),
    (LEAVES[0], 1, 1, [], ROOTS[1]),
    (LEAVES[0], 0, -1, [], ROOTS[1]),
    (LEAVES[0], True, 2, [LEAVES[1]], ROOTS[2]),
    (LEAVES[0], 0, 2, None, ROOTS[2]),
    (LEAVES[0], 0, 2, [None], ROOTS[2]),
    (LEAVES[0], 0, 2, "ab" * 32, ROOTS[2]),
    (LEAVES[0].hex(), 0, 1, [], ROOTS[1].hex()),
    (LEAVES[0], 0.0, 1, [], ROOTS[1]),
    (LEAVES[0], 0, 1, [], ROOTS[1] + b"\x00"),
    (LEAVES[0] + b"\x00", 0, 1, [], ROOTS[1]),
]


@pytest.mark.parametrize("args", BAD_INCLUSION_INPUTS)
def test_verify_inclusion_bad_input_is_false(args):
    assert m.verify_inclusion(*args) is False


BAD_CONSISTENCY_INPUTS = [
    (2, 1, ROOTS[2], ROOTS[1], []),
    (-1, 1, ROOTS[0], ROOTS[1], []),
    (1, 1, ROOTS[1], ROOTS[2], []),
    (0, 1, SOME_HASH, ROOTS[1], []),
    (0, 1, ROOTS[0], ROOTS[1], [ROOTS[0]]),
    (1, 1, ROOTS[1], ROOTS[1], [ROOTS[1]]),
    (1, 2, ROOTS[1], ROOTS[2], []),
    (1, 2, None, ROOTS[2], [LEAVES[1]]),
    (1, 2, ROOTS[1], ROOTS[2], None),
    (1, 2, ROOTS[1], ROOTS[2], [LEAVES[1][:31]]),
    (1, 2, ROOTS[1], ROOTS[2], [LEAVES[1].hex()]),
    ("1", 2, ROOTS[1], ROOTS[2], [LEAVES[1]]),
    (1, 2.0, ROOTS[1], ROOTS[2], [LEAVES[1]]),
]


@pytest.mark.parametrize("args", BAD_CONSISTENCY_INPUTS)
def test_verify_consistency_bad_input_is_false(args):
    assert m.verify_consistency(*args) is False


def test_trivial_consistency_cases():
    assert m.verify_consistency(0, 0, m.EMPTY_ROOT, m.EMPTY_ROOT, [])
    assert m.verify_consistency(0, 5, m.EMPTY_ROOT, ROOTS[5], [])
    assert m.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert m.verify_consistency(1, 2, ROOTS[1], ROOTS[2], [LEAVES[1]])


def test_generators_reject_bad_arguments():
    for index, size in [(0, 0), (1, 1), (-1, 3), (5, 3)]:
        with pytest.raises(ValueError):
            m.inclusion_proof(LEAVES, index, size)
    with pytest.raises(ValueError):
        m.inclusion_proof(LEAVES[:3], 0, 4)
    for first, second in [(2, 1), (-1, 2)]:
        with pytest.raises(ValueError):
            m.consistency_proof(LEAVES, first, second)
    with pytest.raises(ValueError):
        m.consistency_proof(LEAVES[:3], 1, 4)


def test_hex_helpers():
    h = LEAVES[7]
    assert m.to_hex(h) == h.hex() and m.to_hex(h).islower()
    assert m.from_hex(m.to_hex(h)) == h
    assert m.from_hex(m.to_hex(h).upper()) == h
    assert m.from_hex("abcd", length=None) == b"\xab\xcd"
    for bad in ["", "abc", "zz" * 32, " " + "00" * 31 + "0", "00" * 31 + " 0", "00" * 33, None]:
        with pytest.raises(ValueError):
            m.from_hex(bad)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

ORIGIN = "example.org/ledger"


def test_checkpoint_body_format_and_roundtrip():
    root = ROOTS[8]
    body = cp.format_checkpoint_body(ORIGIN, 8, root)
    assert body == ORIGIN + "\n8\n" + base64.b64encode(root).decode() + "\n"
    assert cp.parse_checkpoint_body(body) == (ORIGIN, 8, root)
    empty = cp.format_checkpoint_body(ORIGIN, 0, m.EMPTY_ROOT)
    assert cp.parse_checkpoint_body(empty) == (ORIGIN, 0, m.EMPTY_ROOT)


@given(
    st.text(
        alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
    ),
    st.integers(0, 2**63),
    st.binary(min_size=32, max_size=32),
)
def test_checkpoint_body_roundtrip_property(origin, size, root):
    body = cp.format_checkpoint_body(origin, size, root)
    assert cp.parse_checkpoint_body(body) == (origin, size, root)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{ORIGIN}\n8\n",
        f"{ORIGIN}\n8\n{'A' * 43}=",  # no trailing newline
        f"\n8\n{'A' * 43}=\n",  # empty origin
        f"{ORIGIN}\n08\n{'A' * 43}=\n",  # leading zero
        f"{ORIGIN}\n-1\n{'A' * 43}=\n",
        f"{ORIGIN}\n+8\n{'A' * 43}=\n",
        f"{ORIGIN}\n８\n{'A' * 43}=\n",  # full-width digit
        f"{ORIGIN}\n 8\n{'A' * 43}=\n",
        f"{ORIGIN}\n8\n{'A' * 44}\n",  # 33 bytes
        f"{ORIGIN}\n8\n{'A' * 42}==\n",  # 31 bytes
        f"{ORIGIN}\n8\n{'A' * 42}B=\n",  # non-canonical padding bits
        f"{ORIGIN}\n8\n{'A' * 43}\n",  # missing padding
        f"{ORIGIN}\n8\n{'A' * 43}=\nextension\n",
        f"{ORIGIN}\n8\n{'A' * 43}=\n\n",
        f"{ORIGIN}\r\n8\n{'A' * 43}=\n",
        f"{ORIGIN}\n8\r\n{'A' * 43}=\n",
        f"{ORIGIN}\n8\n{'A' * 43}=\r\n",
    ],
)
def test_parse_checkpoint_body_rejects(text):
    with pytest.raises(ValueError):
        cp.parse_checkpoint_body(text)


def test_format_checkpoint_body_rejects():
    for args in [
        ("", 1, ROOTS[1]),
        ("a\nb", 1, ROOTS[1]),
        (ORIGIN, -1, ROOTS[1]),
        (ORIGIN, True, ROOTS[1]),
        (ORIGIN, 1, ROOTS[1][:31]),
        (ORIGIN, 1, ROOTS[1].hex()),
    ]:
        with pytest.raises(ValueError):
            cp.format_checkpoint_body(*args)


def test_sign_and_verify(tmp_path):
    key = cp.generate_key()
    pub = cp.raw_public_key(key)
    assert len(pub) == 32
    assert cp.raw_public_key(key.public_key()) == pub
    body = cp.format_checkpoint_body(ORIGIN, 300, ROOTS[300])
    sig = cp.sign_note(key, body)
    assert len(sig) == 64
    assert cp.verify_note(pub, body, sig)

    # A one-byte change anywhere in the body or the signature must fail.
    assert body.isascii()
    for i, ch in enumerate(body):
        tampered = body[:i] + ("x" if ch != "x" else "y") + body[i + 1 :]
        assert not cp.verify_note(pub, tampered, sig), i
    for i in range(len(sig)):
        bad = bytearray(sig)
        bad[i] ^= 1
        assert not cp.verify_note(pub, body, bytes(bad)), i
    assert not cp.verify_note(pub, body + "\n", sig)
    assert not cp.verify_note(cp.raw_public_key(cp.generate_key()), body, sig)

    # Garbage never raises.
    assert not cp.verify_note(pub[:31], body, sig)
    assert not cp.verify_note(pub, body, sig[:63])
    assert not cp.verify_note(pub, body.encode(), sig)  # type: ignore[arg-type]
    assert not cp.verify_note(None, body, sig)  # type: ignore[arg-type]
    assert not cp.verify_note(pub, "\ud800", sig)


def test_key_id_is_stable_and_matches_spec():
    pub = bytes(range(32))
    kid = cp.key_id(ORIGIN, pub)
    assert len(kid) == 8 and kid == kid.lower() and int(kid, 16) >= 0
    assert cp.key_id(ORIGIN, pub) == kid
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    assert cp.key_id_bytes(ORIGIN, pub) == expected
    assert kid == expected.hex()
    assert cp.key_id(ORIGIN + "x", pub) != kid
    assert cp.key_id(ORIGIN, bytes(31) + b"\x01") != kid
    with pytest.raises(ValueError):
        cp.key_id(ORIGIN, pub[:31])


def test_signed_note_text():
    key = cp.generate_key()
    pub = cp.raw_public_key(key)
    body = cp.format_checkpoint_body(ORIGIN, 3, ROOTS[3])
    sig = cp.sign_note(key, body)
    kid = cp.key_id_bytes(ORIGIN, pub)
    note = cp.signed_note_text(ORIGIN, body, kid, sig)
    text, sig_line = note.split("\n\n")
    assert text + "\n" == body
    assert sig_line.startswith("\u2014 " + ORIGIN + " ")
    assert note.endswith("\n")
    blob = base64.b64decode(sig_line.rstrip("\n").split(" ")[2])
    assert blob[:4] == kid and blob[4:] == sig
    with pytest.raises(ValueError):
        cp.signed_note_text("has space", body, kid, sig)
    with pytest.raises(ValueError):
        cp.signed_note_text("a+b", body, kid, sig)
    with pytest.raises(ValueError):
        cp.signed_note_text(ORIGIN, body.rstrip("\n"), kid, sig)
    with pytest.raises(ValueError):
        cp.signed_note_text(ORIGIN, body, kid[:3], sig)


def test_private_key_file_roundtrip(tmp_path):
    key = cp.generate_key()
    path = tmp_path / "log.pem"
    cp.save_private_key(key, path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = cp.load_private_key(path)
    assert cp.raw_public_key(loaded) == cp.raw_public_key(key)

    # Never silently replace a signing key.
    with pytest.raises(FileExistsError):
        cp.save_private_key(cp.generate_key(), path)
    assert cp.raw_public_key(cp.load_private_key(path)) == cp.raw_public_key(key)
    os.chmod(path, 0o644)
    other = cp.generate_key()
    cp.save_private_key(other, path, overwrite=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert cp.raw_public_key(cp.load_private_key(path)) == cp.raw_public_key(other)


def test_load_private_key_rejects_other_key_types(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "ec.pem"
    path.write_bytes(pem)
    with pytest.raises(ValueError):
        cp.load_private_key(path)
