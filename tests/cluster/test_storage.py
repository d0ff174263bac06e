"""The storage engine in-process: SST ingestion, large clears, and rocksdict pitfalls it guards against."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rocksdict import Options, SstFileWriter

from fdbcore import errors
from fdbcore.cluster.embedded.faults import Fault, FaultRegistry
from fdbcore.cluster.embedded.knobs import Knobs, parse_knob_args
from fdbcore.cluster.embedded.storage import RangeIterator, Storage
from fdbcore.cluster.embedded.wire import mutations_out
from fdbcore.keys import KeyRange
from fdbcore.mutations import clear_range, set_value


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage(tmp_path / "data", Knobs(mvcc_clear_range_keys_max=50, idle_commit_interval_ms=0))
    yield s
    s.close()


def commit(s: Storage, *mutations) -> int:
    return s.commit(mutations_out(list(mutations)))


def read(s: Storage, begin: bytes, end: bytes, version: int) -> list[tuple[bytes, bytes]]:
    flat = s.get_range(begin, end, version, limit=0, limit_bytes=0, reverse=False).flat
    return list(zip(flat[::2], flat[1::2], strict=True))


def write_sst(path: Path, pairs: list[tuple[bytes, bytes]]) -> str:
    writer = SstFileWriter(options=Options(raw_mode=True))
    writer.open(str(path))
    for k, v in pairs:
        writer[k] = v
    writer.finish()
    return str(path)


def test_range_iterator_keeps_its_bounds_alive(storage: Storage) -> None:
    """rocksdict iterators point at their ReadOptions' bounds; freed options made scans come back empty."""
    commit(storage, *(set_value(b"it/%03d" % i, b"v") for i in range(10)))
    it = RangeIterator(storage._db, b"it/", b"it0")
    garbage = [bytes(12) for _ in range(1000)]  # reuse freed memory, as the bug needed
    assert [k for k, _ in it.pairs()] == [b"it/%03d" % i for i in range(10)]
    assert len(garbage) == 1000


def test_ingest_replaces_a_range_and_cuts_history(storage: Storage, tmp_path: Path) -> None:
    commit(storage, *(set_value(b"b/%03d" % i, b"old") for i in range(20)), set_value(b"a", b"keep"))
    capture = storage.start_log_capture("bk", [KeyRange(b"", b"\xff")])
    before = storage.latest_version
    sst = write_sst(tmp_path / "batch.sst", [(b"b/%03d" % i, b"new") for i in range(5, 30)])

    v = storage.ingest(KeyRange(b"b/", b"b0"), [sst], lock_owner=None)
    assert v > before
    assert not Path(sst).exists()  # moved, not copied
    assert read(storage, b"", b"\xff", v) == [
        (b"a", b"keep"),
        *((b"b/%03d" % i, b"new") for i in range(5, 30)),
    ]
    assert storage.get(b"a", before) == b"keep"  # outside the range, history is intact
    with pytest.raises(errors.TransactionTooOld):
        read(storage, b"b/", b"b0", before)
    with pytest.raises(errors.NotCommitted):
        storage.commit(mutations_out([]), read_version=before, read_conflicts=[KeyRange(b"b/010", b"b/011")])
    later = commit(storage, set_value(b"b/005", b"newer"))
    assert storage.get(b"b/005", v) == b"new" and storage.get(b"b/005", later) == b"newer"
    assert storage.read_log("bk", capture, 0).entries[-1][0] == later  # ingestion bypasses the log
    # Recounted at ingestion; the later overwrite of b/005 counts as new bytes until the splitter recounts.
    assert sum(s.nbytes for s in storage.shards.states()) == (1 + 4) + 25 * (5 + 3) + (5 + 5)

    storage.lock_range(KeyRange(b"b/", b"b0"), "BulkLoad")
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        storage.ingest(KeyRange(b"b/", b"b0"), [], lock_owner="other")
    storage.ingest(KeyRange(b"b/", b"b0"), [], lock_owner="BulkLoad")
    assert read(storage, b"b/", b"b0", storage.latest_version) == []


def test_huge_clears_keep_no_history(storage: Storage) -> None:
    commit(storage, *(set_value(b"h/%03d" % i, b"v") for i in range(200)), set_value(b"s/1", b"v"))
    v0 = storage.latest_version
    commit(storage, clear_range(b"s/", b"s0"))  # small: older reads still work
    assert read(storage, b"s/", b"s0", v0) == [(b"s/1", b"v")]
    v2 = commit(storage, clear_range(b"h/", b"h0"))  # 200 keys > the knob's 50
    assert read(storage, b"h/", b"h0", v2) == []
    with pytest.raises(errors.TransactionTooOld):
        read(storage, b"h/050", b"h/060", v0)
    assert sum(s.nbytes for s in storage.shards.states()) == 0


def test_knob_parsing() -> None:
    args = [
        "--knob_shard_count=8",
        "--knob-Commit-Fsync",
        "true",
        "--knob_max_read_transaction_life_versions",
        "1e6",
    ]
    with pytest.raises(errors.InvalidOptionValue):
        Knobs.from_strings(parse_knob_args(args))
    knobs = Knobs.from_strings(parse_knob_args([*args[:3], "--knob_max_read_transaction_life_versions=1_000_000"]))
    assert (knobs.shard_count, knobs.commit_fsync, knobs.max_read_transaction_life_versions) == (
        8,
        1,
        1_000_000,
    )
    with pytest.raises(errors.InvalidOption):
        Knobs.from_strings({"knob_no_such_thing": "1"})
    assert Knobs().as_strings()["shard_encode_location_metadata"] == "0"


def test_fault_registry() -> None:
    off = FaultRegistry(enabled=False)
    with pytest.raises(errors.ClientInvalidOperation):
        off.inject(Fault("bulk_dump", KeyRange(b"a", b"b"), "fail", 1))
    faults = FaultRegistry(enabled=True)
    faults.inject(Fault("bulk_load", KeyRange(b"a", b"c"), "stall", 2, 0.5))
    with pytest.raises(errors.InvalidOptionValue):
        faults.inject(Fault("bulk_load", KeyRange(b"a", b"c"), "explode", 1))
    assert faults.take("bulk_dump", KeyRange(b"a", b"z")) is None
    assert faults.take("bulk_load", KeyRange(b"x", b"z")) is None
    first = faults.take("bulk_load", KeyRange(b"b", b"z"))
    assert first is not None and first.action == "stall" and first.stall_seconds == 0.5
    assert faults.take("bulk_load", KeyRange(b"b", b"z")) is not None
    assert faults.take("bulk_load", KeyRange(b"b", b"z")) is None
