"""The per-key version rule, clipped clears and prefix rewriting (pure logic)."""

import pytest

from fdbcore import errors
from fdbcore.keys import KeyRange, VersionedRange
from fdbcore.mutations import Mutation, MutationType, clear_range, set_value
from workers.restore.job import Rewrite
from workers.restore.replay import VersionMap, translate

VMAP = VersionMap([VersionedRange(KeyRange(b"a", b"m"), 100), VersionedRange(KeyRange(b"m", b"t"), 150)])
NONE = Rewrite()


def test_sets_apply_only_after_their_pieces_version() -> None:
    assert translate(set_value(b"b", b"1"), 100, VMAP, NONE) == []
    assert translate(set_value(b"b", b"1"), 101, VMAP, NONE) == [set_value(b"b", b"1")]
    assert translate(set_value(b"n", b"1"), 120, VMAP, NONE) == []  # the batch at 150 already has it
    assert translate(set_value(b"n", b"1"), 151, VMAP, NONE) == [set_value(b"n", b"1")]
    assert translate(set_value(b"z", b"1"), 999, VMAP, NONE) == []  # outside the restore ranges


def test_atomic_ops_between_batch_versions_apply_once() -> None:
    add = Mutation(MutationType.ADD_VALUE, b"n", b"\x01")
    assert translate(add, 120, VMAP, NONE) == []  # at 120 the key's batch (150) already includes it
    assert translate(add, 160, VMAP, NONE) == [add]


def test_clears_are_clipped_to_pieces_newer_than_their_version() -> None:
    m = clear_range(b"c", b"z")
    assert translate(m, 120, VMAP, NONE) == [clear_range(b"c", b"m")]
    assert translate(m, 200, VMAP, NONE) == [clear_range(b"c", b"m"), clear_range(b"m", b"t")]
    assert translate(m, 90, VMAP, NONE) == []


def test_prefixes_rewrite_keys_and_clears() -> None:
    rw = Rewrite(remove=b"a", add=b"X/")
    vmap = VersionMap([VersionedRange(KeyRange(b"a", b"b"), 10)])
    assert translate(set_value(b"abc", b"v"), 11, vmap, rw) == [set_value(b"X/bc", b"v")]
    assert translate(clear_range(b"a", b"b"), 11, vmap, rw) == [clear_range(b"X/", b"X0")]


def test_prefix_validation() -> None:
    assert Rewrite(add=b"p").check([KeyRange(b"a", b"b")]) == [KeyRange(b"pa", b"pb")]
    with pytest.raises(errors.InvalidOptionValue, match="remove-prefix"):
        Rewrite(remove=b"a").check([KeyRange(b"", b"\xff")])
    with pytest.raises(errors.KeyOutsideLegalRange):
        Rewrite(add=b"\xff").check([KeyRange(b"a", b"b")])
