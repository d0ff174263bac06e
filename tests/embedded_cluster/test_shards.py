"""The shard map (ids, cover, splitting as data grows) and range locks (1242, 1247, 1248)."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from fdbcore import errors
from fdbcore.keys import ALL_END, KeyRange
from fdbcore.mutations import clear_range, set_value
from tests.fdbcore.cluster.util import wait_for_splits
from tests.fixtures.cluster import EmbeddedCluster


def assert_covers_key_space(shards) -> None:
    assert shards[0].range.begin == b"" and shards[-1].range.end == ALL_END
    for a, b in pairwise(shards):
        assert a.range.end == b.range.begin
    assert all(re.fullmatch(r"[0-9a-f]{32}", s.id) for s in shards)
    assert len({s.id for s in shards}) == len(shards)
    assert shards[-1].range == KeyRange(b"\xff", ALL_END)  # system keys are their own shard


def test_shards_split_as_data_grows(embedded_cluster_factory) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(shard_count=2, shard_target_bytes=40_000)
    db = cluster.driver
    initial = db.shard_map()
    assert len(initial) == 3
    assert_covers_key_space(initial)

    for i in range(10):
        db.commit([set_value(b"s/%05d" % (i * 100 + j), b"v" * 200) for j in range(100)])
    shards = wait_for_splits(db, 40_000)
    assert_covers_key_space(shards)
    inside = [s for s in shards if b"s/" <= s.range.begin < b"s0"]
    assert len(inside) >= 4  # about 210 KB of data in shards of at most 40 KB
    assert not {s.id for s in shards} & {s.id for s in initial if s.range.contains(b"s/")}
    sizes = db.status().extra["shard_bytes"]
    data_bytes = 1000 * (len(b"s/00000") + 200)
    assert sum(sizes.values()) == data_bytes

    # Clearing gives the bytes back to the shards' counts.
    db.commit([clear_range(b"s/", b"s0")])
    assert sum(db.status().extra["shard_bytes"].values()) == 0


def test_overwrites_are_recounted_before_splitting(embedded_cluster_factory) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(shard_count=1, shard_target_bytes=30_000)
    db = cluster.driver
    for _ in range(10):  # 10 x 10 KB of overwrites of the same 10 KB
        db.commit([set_value(b"w/%03d" % j, b"v" * 100) for j in range(100)])
    shards = wait_for_splits(db, 30_000)
    assert len(shards) == 2  # recounted to its true 10 KB, not split
    assert db.status().extra["shard_bytes"][shards[0].id] == 100 * (len(b"w/000") + 100)


def test_range_locks(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    db.lock_range(KeyRange(b"r/b", b"r/d"), "BulkLoad")
    with pytest.raises(errors.TransactionRejectedRangeLocked) as rejected:
        db.commit([set_value(b"r/c", b"x")])
    assert rejected.value.code == 1242
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        db.commit([clear_range(b"r/a", b"r/z")])
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        db.commit([set_value(b"r/c", b"x")], lock_owner="someone-else")
    v = db.commit([set_value(b"r/c", b"owner")], lock_owner="BulkLoad")
    assert db.get(b"r/c", v) == b"owner"
    db.commit([set_value(b"r/a", b"free"), set_value(b"r/d", b"free")])  # outside the lock

    with pytest.raises(errors.RangeLockReject) as overlap:
        db.lock_range(KeyRange(b"r/c", b"r/e"), "other")
    assert overlap.value.code == 1247
    db.lock_range(KeyRange(b"r/c", b"r/e"), "BulkLoad")  # the same owner extends its lock
    assert [(lk.range, lk.owner) for lk in db.status().locks] == [(KeyRange(b"r/b", b"r/e"), "BulkLoad")]

    with pytest.raises(errors.RangeUnlockReject) as unlock:
        db.unlock_range(KeyRange(b"r/b", b"r/e"), "other")
    assert unlock.value.code == 1248
    db.unlock_range(KeyRange(b"r/c", b"r/d"), "BulkLoad")  # a partial unlock keeps the rest
    assert [lk.range for lk in db.status().locks] == [KeyRange(b"r/b", b"r/c"), KeyRange(b"r/d", b"r/e")]
    db.commit([set_value(b"r/c", b"unlocked")])
    db.unlock_range(KeyRange(b"", b"\xff"), "BulkLoad")
    assert db.status().locks == []
    db.commit([clear_range(b"r/", b"r0")])
