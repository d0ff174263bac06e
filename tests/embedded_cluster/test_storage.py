"""The storage engine in-process: SST ingestion, large clears, and rocksdict pitfalls it guards against."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rocksdict import IngestExternalFileOptions, Options, Rdict, SstFileWriter

from embedded_cluster.faults import Fault, FaultRegistry
from embedded_cluster.ingest import IngestFile
from embedded_cluster.knobs import Knobs, parse_knob_args
from embedded_cluster.rocks import ChunkedScan, RangeIterator
from embedded_cluster.storage import Storage
from embedded_cluster.wire import mutations_out
from fdbcore import errors
from fdbcore.keys import KeyRange
from fdbcore.mutations import clear_range, set_value


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage(tmp_path / "data", Knobs(mvcc_clear_range_keys_max=50, idle_commit_interval_ms=0))
    yield s
    s.close()


def commit(s: Storage, *mutations) -> int:
    return s.commits.commit(mutations_out(list(mutations)))


def read(s: Storage, begin: bytes, end: bytes, version: int) -> list[tuple[bytes, bytes]]:
    flat = s.reads.get_range(begin, end, version, limit=0, limit_bytes=0, reverse=False).flat
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
    it = RangeIterator(storage.store.db, b"it/", b"it0")
    garbage = [bytes(12) for _ in range(1000)]  # reuse freed memory, as the bug needed
    assert [k for k, _ in it.pairs()] == [b"it/%03d" % i for i in range(10)]
    assert len(garbage) == 1000


def test_ingest_replaces_a_range_and_cuts_history(storage: Storage, tmp_path: Path) -> None:
    commit(storage, *(set_value(b"b/%03d" % i, b"old") for i in range(20)), set_value(b"a", b"keep"))
    capture = storage.captures.start("bk", [KeyRange(b"", b"\xff")])
    before = storage.reads.latest_version
    sst = write_sst(tmp_path / "batch.sst", [(b"b/%03d" % i, b"new") for i in range(5, 30)])

    v = storage.ingest.replace(
        KeyRange(b"b/", b"b0"), [IngestFile(sst, KeyRange(b"b/", b"b0"), 25 * 8)], lock_owner=None
    )
    assert v > before
    assert not Path(sst).exists()  # moved, not copied
    assert read(storage, b"", b"\xff", v) == [
        (b"a", b"keep"),
        *((b"b/%03d" % i, b"new") for i in range(5, 30)),
    ]
    assert storage.reads.get(b"a", before) == b"keep"  # outside the range, history is intact
    with pytest.raises(errors.TransactionTooOld):
        read(storage, b"b/", b"b0", before)
    with pytest.raises(errors.NotCommitted):
        storage.commits.commit(mutations_out([]), read_version=before, read_conflicts=[KeyRange(b"b/010", b"b/011")])
    later = commit(storage, set_value(b"b/005", b"newer"))
    assert storage.reads.get(b"b/005", v) == b"new" and storage.reads.get(b"b/005", later) == b"newer"
    assert storage.captures.read("bk", capture, 0).entries[-1][0] == later  # ingestion bypasses the log
    # Counted at ingestion; the later overwrite of b/005 counts as new bytes until the splitter recounts.
    assert sum(s.nbytes for s in storage.distributor.map.states()) == (1 + 4) + 25 * (5 + 3) + (5 + 5)

    storage.locks.lock(KeyRange(b"b/", b"b0"), "BulkLoad")
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        storage.ingest.replace(KeyRange(b"b/", b"b0"), [], lock_owner="other")
    storage.ingest.replace(KeyRange(b"b/", b"b0"), [], lock_owner="BulkLoad")
    assert read(storage, b"b/", b"b0", storage.reads.latest_version) == []


def _levels(storage: Storage, prefix: bytes) -> set[int]:
    """The LSM levels of the live files whose keys all start with ``prefix``."""
    return {f["level"] for f in storage.store.db.live_files() if f["start_key"].startswith(prefix)}


def test_loads_into_empty_ranges_land_on_the_bottom_level(storage: Storage, tmp_path: Path) -> None:
    """A load in many calls must not pile its files into level 0 (each flush would then wait for a
    compaction of everything loaded so far); only a range that held keys needs the clear above them."""
    commit(storage, set_value(b"", b""), set_value(b"z", b"v"))  # the empty key counts 0 bytes
    storage.store.db.flush()
    for i, prefix in enumerate((b"c/", b"d/", b"e/")):
        sst = write_sst(tmp_path / f"{i}.sst", [(prefix + b"%03d" % k, b"new") for k in range(10)])
        storage.ingest.replace(
            KeyRange(prefix, prefix[:1] + b"0"),
            [IngestFile(sst, KeyRange(prefix, prefix[:1] + b"0"), 80)],
            lock_owner=None,
        )
        assert _levels(storage, prefix) == {6}
    # A range that held keys is cleared first; the files go above the clear.
    sst = write_sst(tmp_path / "again.sst", [(b"d/%03d" % k, b"newer") for k in range(5)])
    v = storage.ingest.replace(KeyRange(b"d/", b"d0"), [IngestFile(sst, KeyRange(b"d/", b"d0"), 60)], lock_owner=None)
    assert read(storage, b"d/", b"d0", v) == [(b"d/%03d" % k, b"newer") for k in range(5)]
    assert 0 in _levels(storage, b"d/")
    # The empty key with an empty value is a key: a load over it clears it.
    sst = write_sst(tmp_path / "low.sst", [(b"a", b"1")])
    v = storage.ingest.replace(KeyRange(b"", b"b"), [IngestFile(sst, KeyRange(b"", b"b"), 2)], lock_owner=None)
    assert read(storage, b"", b"\xff", v)[:2] == [(b"a", b"1"), (b"c/000", b"new")]


def test_huge_clears_keep_no_history(storage: Storage) -> None:
    commit(storage, *(set_value(b"h/%03d" % i, b"v") for i in range(200)), set_value(b"s/1", b"v"))
    v0 = storage.reads.latest_version
    commit(storage, clear_range(b"s/", b"s0"))  # small: older reads still work
    assert read(storage, b"s/", b"s0", v0) == [(b"s/1", b"v")]
    v2 = commit(storage, clear_range(b"h/", b"h0"))  # 200 keys > the knob's 50
    assert read(storage, b"h/", b"h0", v2) == []
    with pytest.raises(errors.TransactionTooOld):
        read(storage, b"h/050", b"h/060", v0)
    assert sum(s.nbytes for s in storage.distributor.map.states()) == 0


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


def test_chunked_scan_notices_that_it_stopped_early(tmp_path: Path) -> None:
    """rocksdict's items() ends quietly at a corrupt block; the scan must not pass that off as the end."""
    sst = write_sst(tmp_path / "x.sst", [(b"k%07d" % i, b"v" * 50) for i in range(50_000)])
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    opts = IngestExternalFileOptions()
    opts.set_move_files(True)
    db.ingest_external_file([sst], opts)
    db.close()
    (ingested,) = (tmp_path / "db").glob("*.sst")
    data = bytearray(ingested.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ingested.write_bytes(bytes(data))
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    try:
        scan = ChunkedScan(db, b"", b"\xff")
        seen = 0
        with pytest.raises(errors.IoError, match="checksum mismatch"):
            while chunk := scan.next_chunk(1024):
                seen += len(chunk)
        assert 0 < seen < 50_000
    finally:
        del scan
        db.close()


def test_ingest_counts_bytes_per_shard(tmp_path: Path) -> None:
    """A file inside one shard counts whole; one across a shard boundary is counted on each side."""
    s = Storage(tmp_path / "data", Knobs(shard_count=2, idle_commit_interval_ms=0))
    try:
        boundary = s.distributor.map[1].begin  # b"\x7f"
        commit(s, set_value(b"\x10old", b"x" * 100), set_value(b"\x90old", b"y" * 10))
        across = [(b"\x20%03d" % i, b"a" * 10) for i in range(30)] + [(boundary + b"%03d" % i, b"b") for i in range(5)]
        inside = [(b"\xa0%03d" % i, b"c" * 20) for i in range(7)]
        files = [
            IngestFile(write_sst(tmp_path / "1.sst", across), KeyRange(b"\x20", b"\x90"), 30 * 14 + 5 * 5),
            IngestFile(write_sst(tmp_path / "2.sst", inside), KeyRange(b"\x90", b"\xb0"), 7 * 24),
        ]
        s.ingest.replace(KeyRange(b"\x00", b"\xb0"), files, lock_owner=None)
        assert [st.nbytes for st in s.distributor.map.states()] == [30 * 14, 5 * 5 + 7 * 24, 0]
    finally:
        s.close()
