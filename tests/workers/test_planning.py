from fdbcore.cluster.interface import Shard
from fdbcore.keys import KeyRange, normalize_ranges
from workers.backup.planning import choose_partitions, split_by_shards

SHARDS = [
    Shard("0" * 32, KeyRange(b"", b"d")),
    Shard("1" * 32, KeyRange(b"d", b"k")),
    Shard("2" * 32, KeyRange(b"k", b"t")),
    Shard("3" * 32, KeyRange(b"t", b"\xff")),
]


def test_split_by_shards_cuts_at_boundaries() -> None:
    pieces = split_by_shards([KeyRange(b"b", b"m"), KeyRange(b"u", b"v")], SHARDS)
    assert pieces == [KeyRange(b"b", b"d"), KeyRange(b"d", b"k"), KeyRange(b"k", b"m"), KeyRange(b"u", b"v")]


def test_partitions_are_disjoint_cover_the_ranges_and_respect_the_limit() -> None:
    ranges = [KeyRange(b"b", b"m"), KeyRange(b"u", b"v")]
    parts = choose_partitions(ranges, SHARDS, limit=2)
    assert len(parts) == 2
    assert parts[0].span.end <= parts[1].span.begin
    assert normalize_ranges([r for p in parts for r in p.ranges]) == normalize_ranges(ranges)
    for p in parts:
        assert all(p.span.contains_range(r) for r in p.ranges)
    assert len(choose_partitions(ranges, SHARDS, limit=16)) == 4
    assert choose_partitions([], SHARDS) == []
