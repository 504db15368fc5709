"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

This module is pure: no database, no web framework, no global state. Hashes are
32-byte ``bytes`` everywhere; :func:`to_hex` and :func:`from_hex` convert at the
edges (lowercase hex on output).

The tree
========

The Merkle Tree Hash (MTH) of a list of leaves ``D[0:n]`` is defined in
RFC 9162 section 2.1.1 (identical to RFC 6962 section 2.1)::

    MTH({})      = SHA-256()                              (empty tree)
    MTH({d0})    = SHA-256(0x00 || d0)                    (leaf hash)
    MTH(D[0:n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
                   where k is the largest power of two smaller than n

The 0x00 / 0x01 prefixes give domain separation, so a leaf can never be passed
off as an interior node (second-preimage resistance). Functions here take *leaf
hashes* (the output of :func:`leaf_hash`), never raw leaf data, so that callers
can store leaf hashes and never need the leaf bytes again.

Because ``k`` is always the largest power of two below ``n``, the tree is
"left-balanced": it consists of perfect (complete, power-of-two sized)
subtrees, and only the nodes on the right edge can be imperfect. In an
append-only log a perfect subtree that starts at a multiple of its own size
never changes once its last leaf is written, which is what makes caching work.

Computing roots
===============

:func:`root_from_leaf_hashes` accepts any iterable and streams it through a
:class:`CompactRange` (a stack of at most ~log2(n) perfect-subtree hashes), so it
is O(n) time and O(log n) memory; a million leaves is a few seconds of SHA-256
and no recursion.

Generating proofs without holding every leaf
============================================

Proof generation is written against a *range hash* function
``range_hash(start, end) -> MTH(D[start:end])`` (see :data:`RangeHash`). The
generators :func:`inclusion_proof_from` and :func:`consistency_proof_from` call
it O(log n) times, and only for ranges that are nodes of the tree, i.e.

* either a perfect, aligned subtree (``end - start`` is a power of two and
  ``start`` is a multiple of it) -- immutable, safe to cache forever; or
* a node on the right edge of the tree (``end == tree_size``).

A database-backed caller therefore does not need to implement ``range_hash``
from scratch: :func:`range_hash_from_subtrees` turns a function that returns
the hash of a *perfect aligned* subtree (which the caller may cache in a table
keyed by ``(level, index)``) into a full ``range_hash``, by splitting any tree
node into its perfect pieces.

The list-based :func:`inclusion_proof`, :func:`consistency_proof` and
:func:`subtree_root` are thin wrappers for callers that do hold all leaf hashes
(tests, small trees, offline tools).

Verification
============

:func:`verify_inclusion` and :func:`verify_consistency` implement RFC 9162
sections 2.1.3.2 and 2.1.4.2 step by step. They never raise: any malformed
input (wrong types, wrong hash lengths, negative sizes, impossible indices)
simply yields ``False``, so that request handlers and third-party verifiers can
feed them untrusted data directly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "RangeHash",
    "SubtreeHash",
    "CompactRange",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "subtree_root",
    "is_perfect_subtree",
    "range_hash_from_subtrees",
    "inclusion_proof",
    "inclusion_proof_from",
    "consistency_proof",
    "consistency_proof_from",
    "root_from_inclusion_proof",
    "verify_inclusion",
    "verify_consistency",
    "to_hex",
    "from_hex",
]

HASH_SIZE = 32
#: MTH of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHash = Callable[[int, int], bytes]
"""``range_hash(start, end)`` must return MTH(D[start:end]) for ``start < end``."""

SubtreeHash = Callable[[int, int], bytes]
"""``subtree_hash(start, end)`` must return MTH(D[start:end]) for a perfect
aligned range (``end - start`` a power of two, ``start % (end - start) == 0``)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


# --------------------------------------------------------------------------
# Hashing primitives
# --------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def to_hex(h: bytes) -> str:
    """Lowercase hex of ``h``."""
    return bytes(h).hex()


def from_hex(text: str, length: int | None = HASH_SIZE) -> bytes:
    """Decode hex (either case) into bytes, strictly.

    Unlike :meth:`bytes.fromhex` this rejects white space, so that two different
    strings never decode to the same hash. ``length`` is the required number of
    bytes (``None`` for any length). Raises :class:`ValueError`.
    """
    if not isinstance(text, str) or not _HEX_RE.fullmatch(text) or len(text) % 2:
        raise ValueError("not a hex string")
    raw = bytes.fromhex(text)
    if length is not None and len(raw) != length:
        raise ValueError(f"expected {length} bytes, got {len(raw)}")
    return raw


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    # bool is a subclass of int; True as a tree size is always a caller bug.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --------------------------------------------------------------------------
# Roots
# --------------------------------------------------------------------------


class CompactRange:
    """The roots of the perfect subtrees that make up a tree of ``size`` leaves.

    A tree of size ``n`` decomposes into one perfect subtree per set bit of
    ``n``, largest (leftmost) first; :attr:`peaks` holds their hashes. Appending
    a leaf is O(1) amortised and the whole state is O(log n) hashes, so a log
    can keep its current root up to date without re-reading old leaves, or
    persist ``(size, peaks)`` and resume with ``CompactRange(size, peaks)``.
    """

    __slots__ = ("_size", "_peaks")

    def __init__(self, size: int = 0, peaks: Iterable[bytes] = ()) -> None:
        peaks = list(peaks)
        if not _is_size(size):
            raise ValueError("size must be a non-negative int")
        if len(peaks) != bin(size).count("1") or not all(_is_hash(p) for p in peaks):
            raise ValueError("peaks must be one 32-byte hash per set bit of size")
        self._size = size
        self._peaks = peaks

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> list[bytes]:
        """Perfect-subtree hashes, left to right (largest subtree first)."""
        return list(self._peaks)

    def append(self, leaf_hash_value: bytes) -> None:
        """Add one leaf hash to the right edge of the tree."""
        if not _is_hash(leaf_hash_value):
            raise ValueError("leaf hash must be 32 bytes")
        peaks = self._peaks
        peaks.append(leaf_hash_value)
        # Each trailing 1 bit of the old size is a perfect subtree of the same
        # height as the carry, so they merge exactly like binary addition.
        size = self._size
        while size & 1:
            right = peaks.pop()
            peaks[-1] = node_hash(peaks[-1], right)
            size >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the whole tree.

        The left-balanced tree hashes the peaks together right to left: the
        rightmost, smallest peaks form the imperfect right edge.
        """
        if not self._peaks:
            return EMPTY_ROOT
        acc = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH of the given leaf hashes, in O(n) time and O(log n) memory.

    Accepts any iterable, e.g. a database cursor, so the leaves never need to
    be in memory at once.
    """
    cr = CompactRange()
    cr.extend(hashes)
    return cr.root()


def subtree_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) of an in-memory sequence of leaf hashes."""
    if not (0 <= start <= end <= len(leaf_hashes)):
        raise ValueError(f"range [{start}, {end}) outside 0..{len(leaf_hashes)}")
    return root_from_leaf_hashes(leaf_hashes[i] for i in range(start, end))


def is_perfect_subtree(start: int, end: int) -> bool:
    """True if ``[start, end)`` is a perfect subtree aligned to its own size.

    Such a node's hash never changes once the log holds ``end`` leaves, so it
    may be cached permanently.
    """
    size = end - start
    return start >= 0 and size > 0 and size & (size - 1) == 0 and start % size == 0


def range_hash_from_subtrees(subtree_hash: SubtreeHash) -> RangeHash:
    """Build a :data:`RangeHash` out of a perfect-subtree hash function.

    MTH(D[start:end]) is the right-to-left fold of the perfect subtrees given
    by the binary expansion of ``end - start`` (largest first). For every range
    the proof generators ask for (nodes of the tree), each piece is aligned to
    its own size, so ``subtree_hash`` only ever sees cacheable ranges; a caller
    can keep them in a table keyed by ``(level, start >> level)``.
    """

    def range_hash(start: int, end: int) -> bytes:
        if not (0 <= start < end):
            raise ValueError(f"empty or invalid range [{start}, {end})")
        pieces = []
        pos, remaining = start, end - start
        while remaining:
            width = 1 << (remaining.bit_length() - 1)
            pieces.append(subtree_hash(pos, pos + width))
            pos += width
            remaining -= width
        acc = pieces[-1]
        for piece in reversed(pieces[:-1]):
            acc = node_hash(piece, acc)
        return acc

    return range_hash


# --------------------------------------------------------------------------
# Proof generation
# --------------------------------------------------------------------------


def inclusion_proof_from(range_hash: RangeHash, index: int, tree_size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:tree_size]), using ``range_hash`` for subtrees.

    Walks from the root down to the leaf; at each node the sibling of the
    branch containing ``index`` goes into the proof. The RFC lists the path
    leaf-first, so the collected hashes are reversed at the end. Makes
    exactly one ``range_hash`` call per proof element (at most
    ceil(log2(tree_size))).
    """
    if not (_is_size(index) and _is_size(tree_size) and index < tree_size):
        raise ValueError(f"leaf index {index!r} not in a tree of size {tree_size!r}")
    path: list[bytes] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof_from(range_hash: RangeHash, first: int, second: int) -> list[bytes]:
    """RFC 6962 PROOF(first, D[0:second]) via SUBPROOF, using ``range_hash``.

    An iterative rendering of SUBPROOF(m, D[lo:hi], b) from RFC 9162 section
    2.1.4.1: ``m`` is kept relative to ``lo`` and ``b`` records whether the
    current subtree is still a prefix of the old tree's left edge (in which case
    the old root itself need not be sent). Returns ``[]`` when
    ``first == second`` or ``first == 0``: such trees are trivially consistent.
    """
    if not (_is_size(first) and _is_size(second) and first <= second):
        raise ValueError(f"need 0 <= first <= second, got {first!r}, {second!r}")
    if first == 0 or first == second:
        return []
    path: list[bytes] = []
    lo, hi, m, whole_old_tree = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not whole_old_tree:
                path.append(range_hash(lo, hi))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo += k
            m -= k
            whole_old_tree = False
    path.reverse()
    return path


def _list_range_hash(leaf_hashes: Sequence[bytes]) -> RangeHash:
    return lambda start, end: subtree_root(leaf_hashes, start, end)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of the first ``tree_size`` leaves.

    O(tree_size) hashing; for large logs use :func:`inclusion_proof_from` with a
    cached range hash instead.
    """
    if not _is_size(tree_size) or tree_size > len(leaf_hashes):
        raise ValueError(f"tree_size {tree_size!r} exceeds the {len(leaf_hashes)} leaves given")
    return inclusion_proof_from(_list_range_hash(leaf_hashes), index, tree_size)


def consistency_proof(leaf_hashes: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """Consistency proof between the trees of the first ``first`` and ``second`` leaves."""
    if not _is_size(second) or second > len(leaf_hashes):
        raise ValueError(f"second {second!r} exceeds the {len(leaf_hashes)} leaves given")
    return consistency_proof_from(_list_range_hash(leaf_hashes), first, second)


# --------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2)
# --------------------------------------------------------------------------


def root_from_inclusion_proof(
    leaf_hash_value: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root implied by an inclusion proof, or ``None`` if it is malformed.

    Useful when the root to compare against is not known yet (e.g. to show
    which root a server's proof actually commits to).
    """
    if not (_is_hash(leaf_hash_value) and _is_size(index) and _is_size(tree_size)):
        return None
    if not isinstance(proof, (list, tuple)) or not all(_is_hash(p) for p in proof):
        return None
    if index >= tree_size:
        return None
    fn, sn = index, tree_size - 1
    r = leaf_hash_value
    for p in proof:
        if sn == 0:
            return None  # proof longer than the path to the root
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Climbing a right edge: levels where this node has no right
            # sibling contribute no proof element, so skip them.
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None  # proof shorter than the path to the root
    return r


def verify_inclusion(
    leaf_hash_value: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``proof`` shows leaf ``index`` with this hash is in the tree ``root``.

    The proof binds the leaf to ``root``; it does not on its own pin
    ``tree_size`` (leaf 0 has the same audit path in trees of 65 and 66
    leaves, say). Take ``root`` and ``tree_size`` together from a verified
    checkpoint.
    """
    if not _is_hash(root):
        return False
    computed = root_from_inclusion_proof(leaf_hash_value, index, tree_size, proof)
    return computed is not None and computed == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff ``proof`` shows the tree (first, first_root) is a prefix of (second, second_root).

    Edge cases, which RFC 9162 leaves to the caller: ``first == second``
    needs an empty proof and equal roots; ``first == 0`` needs an empty proof
    and ``first_root`` equal to the empty-tree hash (the empty tree is a prefix
    of every tree).

    As with inclusion proofs, the sizes are bound through the roots, not the
    proof alone (a proof from 7 to 23 leaves also passes as 7 to 24 with the
    same roots), so take each size and root together from a verified checkpoint.
    """
    if not (_is_size(first) and _is_size(second) and first <= second):
        return False
    if not (_is_hash(first_root) and _is_hash(second_root)):
        return False
    if not isinstance(proof, (list, tuple)) or not all(_is_hash(p) for p in proof):
        return False
    if first == 0:
        return len(proof) == 0 and first_root == EMPTY_ROOT
    if first == second:
        return len(proof) == 0 and first_root == second_root
    if len(proof) == 0:
        return False

    path = list(proof)
    # When the old tree is itself a perfect subtree its root is a node of the
    # new tree, so the prover omits it and the verifier starts from it.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
