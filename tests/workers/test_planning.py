from fdbcore.cluster.interface import Shard
from fdbcore.keys import KeyRange, normalize_ranges
from workers.backup.job import BulkDumpSnapshot
from workers.backup.planning import choose_partitions, estimated_bytes, split_by_shards

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


def test_bulkdump_tasks_go_out_largest_first() -> None:
    """The fleet should end on small tasks, not idle beside one large one; ties keep key order."""
    sized = [Shard(s.id, s.range, n) for s, n in zip(SHARDS, [10, 300, 0, 300], strict=True)]
    pieces = split_by_shards([KeyRange(b"b", b"\xff")], sized)
    sizes = estimated_bytes(pieces, sized)
    assert sizes == [10, 300, 0, 300]
    snap = BulkDumpSnapshot(seq=1, tasks=pieces, job_id="0" * 32, deadline_at=0.0, estimated_bytes=sizes)
    assert snap.dispatch_order == [1, 3, 0, 2]
    assert BulkDumpSnapshot(seq=1, tasks=pieces, job_id="0" * 32, deadline_at=0.0).dispatch_order == [0, 1, 2, 3]
