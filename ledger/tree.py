"""The ledger's Merkle tree (RFC 6962 / RFC 9162), backed by a cache of complete subtrees.

Design overview
===============

The tree's leaves are the transactions in id order: leaf ``i`` is transaction ``i + 1`` and its
leaf hash is the ``leaf_hash`` column (SHA-256(0x00 || canonical bytes), see
:mod:`ledger.encoding`). Hashing rules and proof shapes are those of :mod:`ledger.merkle`; this
module only decides where subtree hashes come from.

* A *perfect aligned* subtree -- ``2**level`` leaves starting at a multiple of ``2**level`` --
  never changes once its last leaf is written, because the log is append-only. Its hash is kept in
  ``ledger_merkle_nodes(level, position, hash)`` for every ``level >= min_level`` (default 4, so
  a node covers at least 16 leaves and the table holds about one row per eight transactions).
  Smaller subtrees are hashed from at most ``2**min_level`` leaf hashes read straight from the
  transactions.
* The cache is filled incrementally by :meth:`MerkleTree.sync`: it resumes from the last complete
  block of ``2**min_level`` leaves it covered, rebuilds the O(log n) peaks on that boundary from
  the table, streams only the new leaf hashes and writes every newly completed node. Concurrent
  fillers compute identical rows; inserts use ``ON CONFLICT DO NOTHING``.
* A tree opened with ``read_only=True`` never writes: nodes missing from the table (those completed
  since the cache was last filled, or rows removed by hand) are computed the same way and kept in
  the instance's memory only. Readers (an HTTP GET, which must not write) use it; whoever writes
  anyway (a new checkpoint) fills the table.
* The root at any size, an inclusion proof and a consistency proof each need O(log n) subtree
  hashes (:func:`ledger.merkle.range_hash_from_subtrees`). Their shape does not depend on hash
  values, so the needed cached nodes are read in one query, plus at most a few blocks of leaves.
* The cache is derived data. :func:`scan` re-derives everything from the leaf hashes alone in one
  streaming pass, returning the roots at the requested sizes and any cached node that disagrees, so
  a verifier never has to trust the cache.

Like the rest of :mod:`ledger`, nothing here commits: the caller owns the database transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from ledger import driver, merkle
from ledger.driver import Bind
from ledger.models import Base, Transaction

#: Subtrees of fewer than ``2**DEFAULT_MIN_LEVEL`` leaves are hashed from the leaves, not cached.
DEFAULT_MIN_LEVEL = 4
_BATCH = 10_000


class MerkleNode(Base):
    """The hash of one perfect, aligned subtree of the transaction tree (a cache; see module doc)."""

    __tablename__ = "ledger_merkle_nodes"
    __table_args__ = (
        CheckConstraint("level >= 1", name="level_positive"),
        CheckConstraint("position >= 0", name="position_not_negative"),
    )

    #: Height of the subtree: it covers ``2**level`` leaves.
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: Which subtree of that height: it covers leaves ``[position * 2**level, (position + 1) * 2**level)``.
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: RFC 6962 hash of the subtree, lowercase hex.
    hash: Mapped[str] = mapped_column(String(64))


def ledger_size(session: Bind) -> int:
    """Number of transactions, i.e. leaves (ids are 1..n without gaps)."""
    return int(session.execute(select(func.coalesce(func.max(Transaction.id), 0))).scalar_one())


def iter_leaf_hashes(session: Bind, start: int = 0, end: int | None = None, batch: int = _BATCH) -> Iterator[bytes]:
    """Leaf hashes of leaves ``[start, end)`` in order, streamed in batches."""
    last_id = start  # leaf i is transaction i + 1
    while end is None or last_id < end:
        limit = batch if end is None else min(batch, end - last_id)
        rows = session.execute(
            select(Transaction.id, Transaction.leaf_hash)
            .where(Transaction.id > last_id).order_by(Transaction.id).limit(limit)
        ).all()
        if not rows:
            return
        for row in rows:
            if row.id != last_id + 1:
                raise ValueError(f"gap in transaction ids before {row.id}")
            last_id = row.id
            yield bytes.fromhex(row.leaf_hash)


def _insert_nodes(session: Bind, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = driver.dialect_name(session)
    for i in range(0, len(rows), 2000):
        insert = postgresql.insert(MerkleNode) if dialect == "postgresql" else sqlite.insert(MerkleNode)
        session.execute(
            insert.values(rows[i:i + 2000]).on_conflict_do_nothing(index_elements=["level", "position"])
        )


class _Stack:
    """Binary-counter stack of perfect subtrees; reports every node completed at ``>= min_level``."""

    def __init__(self, min_level: int):
        self.min_level = min_level
        self.items: list[tuple[int, int, bytes]] = []  # (level, position, hash)

    def push(self, level: int, position: int, value: bytes) -> list[tuple[int, int, bytes]]:
        done = []
        self.items.append((level, position, value))
        while len(self.items) >= 2 and self.items[-1][0] == self.items[-2][0]:
            lvl, _, right = self.items.pop()
            _, pos, left = self.items.pop()
            node = (lvl + 1, pos >> 1, merkle.node_hash(left, right))
            self.items.append(node)
            if node[0] >= self.min_level:
                done.append(node)
        return done

    def root(self) -> bytes:
        if not self.items:
            return merkle.EMPTY_ROOT
        acc = self.items[-1][2]
        for _, _, peak in reversed(self.items[:-1]):
            acc = merkle.node_hash(peak, acc)
        return acc


class MerkleTree:
    """Roots and proofs over the ledger's transactions, using (and filling) the node cache.

    One instance per unit of work: it memoises the hashes it has read. With ``read_only`` it never
    writes the cache: what the cache lacks is computed into the instance's memory.
    """

    def __init__(self, session: Bind, min_level: int = DEFAULT_MIN_LEVEL, *, read_only: bool = False):
        if min_level < 1:
            raise ValueError("min_level must be at least 1")
        self.session = session
        self.min_level = min_level
        self.read_only = read_only
        #: Read-only trees: leaves ``[0, n)`` whose complete nodes are in ``_memo`` though not in the table.
        self._computed = 0
        self._memo: dict[tuple[int, int], bytes] = {}
        self._blocks: dict[int, list[bytes]] = {}  # block of 2**min_level leaves -> their leaf hashes
        self._size: int | None = None

    # -- sizes ----------------------------------------------------------------------------------

    def size(self) -> int:
        """Current number of leaves (read once per instance: a consistent view for its proofs)."""
        if self._size is None:
            self._size = ledger_size(self.session)
        return self._size

    def covered(self) -> int:
        """Leaves ``[0, covered)`` have every complete node at ``>= min_level`` in the cache."""
        top = self.session.execute(
            select(func.max(MerkleNode.position)).where(MerkleNode.level == self.min_level)
        ).scalar_one()
        return 0 if top is None else (int(top) + 1) << self.min_level

    # -- cache ----------------------------------------------------------------------------------

    def _lookup(self, level: int, position: int) -> bytes | None:
        key = (level, position)
        if key in self._memo:
            return self._memo[key]
        value = self.session.execute(
            select(MerkleNode.hash).where(MerkleNode.level == level, MerkleNode.position == position)
        ).scalar_one_or_none()
        if value is not None:
            self._memo[key] = bytes.fromhex(value)
            return self._memo[key]
        return None

    def _leaf_block(self, block: int) -> list[bytes]:
        """Leaf hashes of the aligned block of ``2**min_level`` leaves (fewer at the ledger's end)."""
        if block not in self._blocks:
            start = block << self.min_level
            self._blocks[block] = list(iter_leaf_hashes(self.session, start, min(start + (1 << self.min_level),
                                                                                  self.size())))
        return self._blocks[block]

    def _prefetch(self, plan: Callable[[merkle.RangeHash], object]) -> None:
        """Run ``plan(range_hash)`` with dummy hashes to learn which subtrees it needs (proof shapes
        never depend on hash values), then read all cached ones in one query."""
        wanted: dict[int, set[int]] = {}
        dummy = bytes(merkle.HASH_SIZE)

        def record(start: int, end: int) -> bytes:
            level = (end - start).bit_length() - 1
            if level >= self.min_level and (level, start >> level) not in self._memo:
                wanted.setdefault(level, set()).add(start >> level)
            return dummy

        plan(merkle.range_hash_from_subtrees(record))
        if not wanted:
            return
        clauses = [(MerkleNode.level == level) & MerkleNode.position.in_(sorted(positions))
                   for level, positions in wanted.items()]
        for row in self.session.execute(
            select(MerkleNode.level, MerkleNode.position, MerkleNode.hash).where(or_(*clauses))
        ):
            self._memo[(row.level, int(row.position))] = bytes.fromhex(row.hash)

    def sync(self, upto: int | None = None) -> int:
        """Cache every complete node at ``>= min_level`` within the first ``upto`` leaves
        (default: the whole ledger). Returns how many leaves are now covered. A read-only tree
        keeps the new nodes in its memory instead of the table."""
        size = self.size()
        upto = size if upto is None else min(upto, size)
        block = 1 << self.min_level
        target = upto - upto % block
        start = max(self.covered(), self._computed)
        if target <= start:
            return start
        stack = _Stack(self.min_level)
        # The peaks on the boundary `start` (a multiple of the block size), largest first.
        pos = 0
        for level in range(start.bit_length() - 1, self.min_level - 1, -1):
            if start & (1 << level):
                stack.items.append((level, pos >> level, self.subtree_hash(pos, pos + (1 << level))))
                pos += 1 << level
        rows: list[dict[str, Any]] = []
        for offset, leaf in enumerate(iter_leaf_hashes(self.session, start, target)):
            for level, position, value in stack.push(0, start + offset, leaf):
                self._memo[(level, position)] = value
                if not self.read_only:
                    rows.append({"level": level, "position": position, "hash": value.hex()})
            if len(rows) >= _BATCH:
                _insert_nodes(self.session, rows)
                rows = []
        _insert_nodes(self.session, rows)
        if self.read_only:
            self._computed = target
        return target

    # -- hashes ---------------------------------------------------------------------------------

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH of the perfect aligned subtree ``[start, end)`` (see :data:`ledger.merkle.SubtreeHash`)."""
        width = end - start
        if not merkle.is_perfect_subtree(start, end):
            raise ValueError(f"[{start}, {end}) is not a perfect aligned subtree")
        if end > self.size():
            raise ValueError(f"the ledger has only {self.size()} transactions")
        level = width.bit_length() - 1
        if level < self.min_level:
            block = self._leaf_block(start >> self.min_level)
            offset = start - ((start >> self.min_level) << self.min_level)
            return merkle.root_from_leaf_hashes(block[offset:offset + width])
        position = start >> level
        value = self._lookup(level, position)
        if value is None:
            self.sync(end)
            value = self._lookup(level, position)
        if value is None:  # a hole in the cache (rows removed by hand): rebuild from the children
            half = start + width // 2
            value = merkle.node_hash(self.subtree_hash(start, half), self.subtree_hash(half, end))
            if not self.read_only:
                _insert_nodes(self.session, [{"level": level, "position": position, "hash": value.hex()}])
            self._memo[(level, position)] = value
        return value

    def _check_size(self, tree_size: int) -> None:
        if not isinstance(tree_size, int) or isinstance(tree_size, bool) or tree_size < 0:
            raise ValueError("tree size must be a non-negative integer")
        if tree_size > self.size():
            raise ValueError(f"tree size {tree_size} is beyond the ledger's {self.size()} transactions")

    def root(self, tree_size: int | None = None) -> bytes:
        """MTH of the first ``tree_size`` leaves (default: all)."""
        tree_size = self.size() if tree_size is None else tree_size
        self._check_size(tree_size)
        if tree_size == 0:
            return merkle.EMPTY_ROOT
        self._prefetch(lambda rh: rh(0, tree_size))
        return merkle.range_hash_from_subtrees(self.subtree_hash)(0, tree_size)

    def leaf_hash(self, index: int) -> bytes:
        return self.subtree_hash(index, index + 1)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 6962 audit path of leaf ``index`` in the tree of ``tree_size`` leaves."""
        self._check_size(tree_size)
        self._prefetch(lambda rh: merkle.inclusion_proof_from(rh, index, tree_size))
        return merkle.inclusion_proof_from(merkle.range_hash_from_subtrees(self.subtree_hash), index, tree_size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 6962 proof that the tree of ``first`` leaves is a prefix of that of ``second``."""
        self._check_size(second)
        self._prefetch(lambda rh: merkle.consistency_proof_from(rh, first, second))
        return merkle.consistency_proof_from(merkle.range_hash_from_subtrees(self.subtree_hash), first, second)


# ------------------------------------------------------------------------------------------------
# Independent re-derivation (for verification)
# ------------------------------------------------------------------------------------------------


@dataclass
class ScanReport:
    size: int
    #: Root at each requested size (sizes beyond the ledger are absent).
    roots: dict[int, bytes] = field(default_factory=dict)
    #: Cached nodes whose hash differs from the leaves', or that cover leaves that do not exist.
    bad_nodes: list[tuple[int, int]] = field(default_factory=list)


def scan(session: Bind, sizes: Iterable[int] = (), min_level: int = DEFAULT_MIN_LEVEL) -> ScanReport:
    """Re-derive roots at ``sizes`` and check every cached node, from the leaf hashes alone.

    One streaming pass over the transactions: O(n) time, O(log n) memory plus the cached nodes.
    """
    wanted = sorted({s for s in sizes if isinstance(s, int) and s >= 0})
    cached = {
        (row.level, int(row.position)): row.hash
        for row in session.execute(select(MerkleNode.level, MerkleNode.position, MerkleNode.hash))
    }
    report = ScanReport(size=0)
    if 0 in wanted:
        report.roots[0] = merkle.EMPTY_ROOT
    want = set(wanted)
    stack = _Stack(1)  # report every interior node, so any cached level can be checked
    seen: set[tuple[int, int]] = set()
    n = 0
    for leaf in iter_leaf_hashes(session):
        for level, position, value in stack.push(0, n, leaf):
            key = (level, position)
            if key in cached:
                seen.add(key)
                if cached[key] != value.hex():
                    report.bad_nodes.append(key)
        n += 1
        if n in want:
            report.roots[n] = stack.root()
    report.size = n
    report.bad_nodes.extend(sorted(k for k in cached if k not in seen))
    return report
