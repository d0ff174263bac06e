"""Mutations through the driver: every atomic op, versionstamps, in-transaction ordering, FDB's limits."""

from __future__ import annotations

import struct

import pytest

from fdbcore import errors
from fdbcore.atomic import apply_atomic, versionstamp
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.cluster.limits import KEY_SIZE_LIMIT, SYSTEM_KEY_SIZE_LIMIT, VALUE_SIZE_LIMIT
from fdbcore.mutations import Mutation, MutationType, clear, clear_range, set_value
from tests.fdbcore.test_atomic import VALUE_OPS

T = MutationType
OLDS: list[bytes | None] = [None, b"", b"\x05", b"\xff\x01\x00", b"\x02\x00\x00\x00\x00\x00\x00\x00"]
PARAMS = [b"\x03", b"\x01\x02", b"\x05", b"\x02\x00\x00\x00\x00\x00\x00\x00"]


def test_every_atomic_op_matches_fdb_semantics(driver: ClusterDriver) -> None:
    cases = []
    setup = []
    for op in VALUE_OPS:
        for i, old in enumerate(OLDS):
            for j, param in enumerate(PARAMS):
                key = b"atomic/%02d/%d/%d" % (op, i, j)
                if old is not None:
                    setup.append(set_value(key, old))
                cases.append((key, op, old, param))
    driver.commit(setup)
    v = driver.commit([Mutation(op, key, param) for key, op, _, param in cases])
    for key, op, old, param in cases:
        assert driver.get(key, v) == apply_atomic(op, old, param), (op, old, param)


def test_mutations_apply_in_order_within_a_transaction(driver: ClusterDriver) -> None:
    one = struct.pack("<q", 1)
    v = driver.commit(
        [
            set_value(b"o/a", b"x"),
            Mutation(T.APPEND_IF_FITS, b"o/a", b"y"),  # xy
            clear_range(b"o/", b"o0"),  # clears o/a
            Mutation(T.APPEND_IF_FITS, b"o/a", b"z"),  # z (after the clear, the key is absent)
            Mutation(T.ADD_VALUE, b"o/n", one),
            Mutation(T.ADD_VALUE, b"o/n", one),
            set_value(b"o/c", b"1"),
            clear(b"o/c"),
            Mutation(T.COMPARE_AND_CLEAR, b"o/n", struct.pack("<q", 2)),  # equal -> cleared
            Mutation(T.BYTE_MAX, b"o/m", b"b"),
            Mutation(T.BYTE_MAX, b"o/m", b"a"),
        ]
    )
    assert driver.get_range(b"o/", b"o0", v).kvs == [(b"o/a", b"z"), (b"o/m", b"b")]


def test_versionstamps_are_resolved_at_commit(driver: ClusterDriver) -> None:
    placeholder = b"\x00" * 10
    v = driver.commit(
        [
            Mutation(T.SET_VERSIONSTAMPED_KEY, b"vs/" + placeholder + b"/k" + struct.pack("<i", 3), b"val"),
            Mutation(T.SET_VERSIONSTAMPED_VALUE, b"vs-value", b"pre" + placeholder + struct.pack("<i", 3)),
        ]
    )
    stamp = versionstamp(v)
    assert stamp[:8] == struct.pack(">Q", v) and stamp[8:] == b"\x00\x00"
    assert driver.get(b"vs/" + stamp + b"/k", v) == b"val"
    assert driver.get(b"vs-value", v) == b"pre" + stamp
    with pytest.raises(errors.ClientInvalidOperation) as info:
        driver.commit([Mutation(T.SET_VERSIONSTAMPED_KEY, b"short" + struct.pack("<i", 0), b"")])
    assert info.value.code == 2000
    with pytest.raises(errors.ClientInvalidOperation):
        driver.commit([Mutation(T.SET_VERSIONSTAMPED_VALUE, b"k", b"abc")])


def test_limits_and_legal_key_range(driver: ClusterDriver) -> None:
    driver.commit([set_value(b"k" * KEY_SIZE_LIMIT, b"v" * VALUE_SIZE_LIMIT)])
    with pytest.raises(errors.KeyTooLarge) as too_large:
        driver.commit([set_value(b"k" * (KEY_SIZE_LIMIT + 1), b"")])
    assert too_large.value.code == 2102
    driver.commit([set_value(b"\xff\x02/" + b"k" * (SYSTEM_KEY_SIZE_LIMIT - 3), b"")])  # system keys may be longer
    with pytest.raises(errors.ValueTooLarge):
        driver.commit([set_value(b"k", b"v" * (VALUE_SIZE_LIMIT + 1))])
    with pytest.raises(errors.ValueTooLarge):
        driver.commit([Mutation(T.ADD_VALUE, b"k", b"v" * (VALUE_SIZE_LIMIT + 1))])
    with pytest.raises(errors.TransactionTooLarge) as txn:
        driver.commit([set_value(b"big/%03d" % i, b"v" * 90_000) for i in range(120)])
    assert txn.value.code == 2101
    with pytest.raises(errors.KeyOutsideLegalRange) as outside:
        driver.commit([set_value(b"\xff\xff/x", b"")])
    assert outside.value.code == 2004
    with pytest.raises(errors.InvertedRange):
        driver.commit([clear_range(b"b", b"a")])
    with pytest.raises(errors.KeyOutsideLegalRange):
        driver.commit([clear_range(b"a", b"\xff\xff\x00")])
    with pytest.raises(errors.InvalidMutationType):
        driver.commit([Mutation(T.DEBUG_KEY, b"k", b"")])
    # Nothing of the refused transactions was applied; system keys are writable.
    v = driver.commit([set_value(b"\xff\x02/restore/applied", b"1"), clear_range(b"\xff\x02/z", b"\xff\xff")])
    assert driver.get(b"\xff\x02/restore/applied", v) == b"1"
    assert driver.get_range(b"big/", b"big0", v).kvs == []
