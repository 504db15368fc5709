"""The DB-cached Merkle tree (ledger/tree.py) gives exactly the roots and proofs of ledger.merkle
computed over all leaves, for every size, and its cache is checked from the leaves alone."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

import ledger
from ledger import merkle
from ledger.models import Transaction
from ledger.tree import MerkleNode, MerkleTree, scan
from timebank.core.extensions import db


def _post(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        ledger.post(db.session, [ledger.Leg("test:source", -(i + 1)), ledger.Leg("test:sink", i + 1)],
                    kind="test", memo=f"t{i}")


def _open():
    ledger.open_account(db.session, "test:source", "points", allow_negative=True)
    ledger.open_account(db.session, "test:sink", "points", allow_negative=True)


def _leaves() -> list[bytes]:
    return [bytes.fromhex(h) for h in db.session.execute(
        select(Transaction.leaf_hash).order_by(Transaction.id)).scalars()]


@pytest.mark.slow
def test_every_size_matches_reference(ctx):
    _open()
    _post(300)
    db.session.commit()
    leaves = _leaves()
    assert len(leaves) == 300
    for min_level in (1, 3, 4):
        tree = MerkleTree(db.session, min_level=min_level)
        assert tree.root(0) == merkle.EMPTY_ROOT
        for size in range(1, 301):
            assert tree.root(size) == merkle.root_from_leaf_hashes(leaves[:size]), (min_level, size)
        # Every leaf of a few awkward sizes, exhaustively.
        for size in (1, 2, 3, 7, 16, 17, 63, 64, 65, 129, 255, 256, 257, 300):
            for index in range(size):
                assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(leaves[:size], index, size)
        for second in range(0, 70):
            for first in range(0, second + 1):
                assert tree.consistency_proof(first, second) == merkle.consistency_proof(leaves, first, second)
    db.session.commit()
    assert db.session.execute(select(MerkleNode).where(MerkleNode.level < 1)).first() is None

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
           st.integers(0, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
    def check(inclusion, consistency):
        size, index = inclusion
        first, second = consistency
        tree = MerkleTree(db.session)
        path = tree.inclusion_proof(index, size)
        assert path == merkle.inclusion_proof(leaves[:size], index, size)
        assert merkle.verify_inclusion(leaves[index], index, size, path, merkle.root_from_leaf_hashes(leaves[:size]))
        proof = tree.consistency_proof(first, second)
        assert proof == merkle.consistency_proof(leaves, first, second)
        assert merkle.verify_consistency(first, second, merkle.root_from_leaf_hashes(leaves[:first]),
                                         merkle.root_from_leaf_hashes(leaves[:second]), proof)

    check()


def test_cache_grows_incrementally(ctx):
    """The cache is extended one transaction at a time and stays right (resume from the peaks)."""
    _open()
    rng = random.Random(7)
    for size in range(1, 140):
        _post(1, size - 1)
        leaves = _leaves()
        tree = MerkleTree(db.session, min_level=2)
        assert tree.root() == merkle.root_from_leaf_hashes(leaves)
        index = rng.randrange(size)
        assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(leaves, index, size)
        if size % 10 == 0:
            db.session.commit()
    assert MerkleTree(db.session, min_level=2).covered() == 136
    db.session.commit()


def test_root_lookups_are_logarithmic(ctx):
    """A root of a cached tree reads O(log n) rows, not the leaves."""
    _open()
    _post(200)
    tree = MerkleTree(db.session)
    tree.sync()
    db.session.commit()
    statements = []
    from sqlalchemy import event

    def count(*_args):
        statements.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        fresh = MerkleTree(db.session)
        fresh.root(192)  # 128 + 64: two cached nodes and the size
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) <= 4


def _node_rows():
    return db.session.execute(select(MerkleNode.level, MerkleNode.position, MerkleNode.hash)
                              .order_by(MerkleNode.level, MerkleNode.position)).all()


def test_a_read_only_tree_gives_the_same_answers_and_writes_nothing(ctx):
    """Readers (GET requests) never write: nodes the cache lacks are computed into memory."""
    _open()
    _post(40)
    tree = MerkleTree(db.session)
    tree.sync()  # leaves [0, 32) cached
    _post(60, 40)  # 100 leaves; [32, 96) complete but not cached
    db.session.commit()
    leaves = _leaves()
    cached = _node_rows()
    reader = MerkleTree(db.session, read_only=True)
    for size in (1, 17, 32, 33, 64, 95, 96, 100):
        assert reader.root(size) == merkle.root_from_leaf_hashes(leaves[:size]), size
    for index, size in ((0, 100), (40, 100), (70, 96), (99, 100), (5, 33)):
        assert reader.inclusion_proof(index, size) == merkle.inclusion_proof(leaves[:size], index, size)
    for first, second in ((1, 100), (32, 64), (33, 97), (64, 100)):
        assert reader.consistency_proof(first, second) == merkle.consistency_proof(leaves, first, second)
    assert reader.sync() == 96
    assert _node_rows() == cached
    # A hole in the cache (a row removed by hand) is computed too, and not written back.
    db.session.execute(text("DELETE FROM ledger_merkle_nodes WHERE level = 5 AND position = 0"))
    db.session.commit()
    cached = _node_rows()
    assert MerkleTree(db.session, read_only=True).root(100) == merkle.root_from_leaf_hashes(leaves)
    assert _node_rows() == cached
    # A writer fills what the readers computed.
    MerkleTree(db.session).sync()
    assert len(_node_rows()) > len(cached)
    assert scan(db.session).bad_nodes == []
    db.session.commit()


def test_scan_rederives_roots_and_finds_bad_cache_rows(ctx):
    _open()
    _post(100)
    leaves = _leaves()
    tree = MerkleTree(db.session)
    tree.sync()
    db.session.commit()
    report = scan(db.session, [0, 1, 50, 100, 101])
    assert report.size == 100 and report.bad_nodes == []
    assert report.roots[50] == merkle.root_from_leaf_hashes(leaves[:50])
    assert report.roots[100] == merkle.root_from_leaf_hashes(leaves)
    assert 101 not in report.roots and report.roots[0] == merkle.EMPTY_ROOT

    db.session.execute(update(MerkleNode).where(MerkleNode.level == 5, MerkleNode.position == 1)
                       .values(hash="00" * 32))
    db.session.execute(text("INSERT INTO ledger_merkle_nodes (level, position, hash) VALUES (4, 99, :h)"),
                       {"h": "11" * 32})
    db.session.commit()
    report = scan(db.session)
    assert (5, 1) in report.bad_nodes and (4, 99) in report.bad_nodes
    # A missing row is rebuilt from its children.
    db.session.execute(text("DELETE FROM ledger_merkle_nodes WHERE level = 5 AND position = 1"))
    db.session.execute(text("DELETE FROM ledger_merkle_nodes WHERE level = 4 AND position = 99"))
    assert MerkleTree(db.session).root(100) == merkle.root_from_leaf_hashes(leaves)
    db.session.commit()
    assert scan(db.session).bad_nodes == []


def test_sizes_beyond_the_ledger_are_refused(ctx):
    _open()
    _post(5)
    tree = MerkleTree(db.session)
    for call in (lambda: tree.root(6), lambda: tree.inclusion_proof(0, 6), lambda: tree.consistency_proof(1, 6),
                 lambda: tree.inclusion_proof(5, 5)):
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("accepted a size beyond the ledger")
