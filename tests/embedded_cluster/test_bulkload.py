"""BulkLoad against real servers: a dump loaded into a second cluster is identical; sub-ranges and
prefixes give exactly the expected keys; knobs, range locks, corrupt or missing files, the mutation
log, older-version reads, injected faults and timeouts."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from embedded_cluster.bulkjobs import dump_job
from fdbcore import errors
from fdbcore.bulkdump_dataset import in_root, read_job_manifest
from fdbcore.container import open_container
from fdbcore.formats.bulkdump_manifest import BatchManifest, JobManifestEntry
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fdbcore.cluster.util import digest_at, drain, read_all
from tests.fixtures.cluster import EmbeddedCluster

KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}
ALL = KeyRange(b"", b"\xff")


def value(i: int) -> bytes:
    return b"v%d-" % i * 4


@dataclass
class Dataset:
    url: str
    job_id: str
    entries: list[JobManifestEntry]
    pairs: list[tuple[bytes, bytes]]  # everything the dump holds, in key order

    def paths(self, r: KeyRange = ALL) -> list[str]:
        return [e.manifest_relative_path for e in self.entries if e.range.intersects(r)]

    def expect(self, r: KeyRange) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.pairs if r.contains(k)]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Dataset:
    """A source cluster of several shards dumped once (small batches) into a file:// container."""
    root = tmp_path_factory.mktemp("bulkload-source")
    cluster = EmbeddedCluster(root / "src", {"shard_count": 3})
    cluster.root.mkdir()
    cluster.start()
    try:
        db = cluster.driver
        db.commit([set_value(b"%c/%04d" % (c, i), value(i)) for c in b"abt" for i in range(400)])
        url = f"file://{root}/backup"
        job_id = new_uid()
        dump_job(db, open_container(url), url, ALL, job_id, batch_bytes=3_000)
        pairs = read_all(db, b"", b"\xff", db.get_read_version())
    finally:
        cluster.close()
    entries = read_job_manifest(open_container(url), job_id)
    return Dataset(url, job_id, entries, pairs)


@pytest.fixture
def dest(embedded_cluster_factory) -> EmbeddedCluster:
    return embedded_cluster_factory(name="dest", enable_fault_injection=1, **KNOBS)


def copy_dataset(source: Dataset, tmp_path: Path) -> tuple[Dataset, Path]:
    """A private copy of the dataset, to damage; and its folder."""
    src = Path(source.url.removeprefix("file://"))
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return Dataset(f"file://{dst}", source.job_id, source.entries, source.pairs), dst


def test_load_job_gives_an_identical_checksum(source: Dataset, embedded_cluster_factory, tmp_path) -> None:
    """The operator commands: ``bulkdump`` from one cluster, ``bulkload`` into another."""
    src: EmbeddedCluster = embedded_cluster_factory(name="src", shard_count=3)
    dst: EmbeddedCluster = embedded_cluster_factory(name="dst", shard_count=2, **KNOBS)
    src.driver.commit([set_value(k, v) for k, v in source.pairs])
    url = f"file://{tmp_path}/backup"

    out = src.cli("bulkdump", "--url", url, "--batch-bytes", "5000").stdout.splitlines()
    job_id = re.fullmatch(r"Received Job ID: ([0-9a-f]{32})", out[0])[1]  # type: ignore[index]
    dumped = json.loads(out[1])
    assert dumped["job_id"] == job_id and dumped["tasks"] == 3 and dumped["keys"] == len(source.pairs)
    assert dumped["batches"] > 4 and set(dumped) >= {"bytes", "seconds", "mb_per_s"}

    loaded = json.loads(dst.cli("bulkload", "--url", url, "--job", job_id).stdout)
    assert (loaded["keys"], loaded["bytes"]) == (dumped["keys"], dumped["bytes"])
    entries = read_job_manifest(open_container(url), job_id)
    assert len(entries) == dumped["batches"] and loaded["files"] == sum(1 for e in entries if e.total_bytes)

    def checksum(c: EmbeddedCluster) -> dict[str, object]:
        return {k: v for k, v in json.loads(c.cli("checksum").stdout).items() if k != "version"}

    assert checksum(src) == checksum(dst)
    status = dst.driver.status()
    assert sum(status.extra["shard_bytes"].values()) == dumped["bytes"] and status.locks == []
    assert not os.listdir(dst.data_dir / "bulk")

    # A sub-range of the same job, into a third cluster.
    sub: EmbeddedCluster = embedded_cluster_factory(name="sub", **KNOBS)
    sub.cli("bulkload", "--url", url, "--job", job_id, "--begin", b"a/0100".hex(), "--end", b"b/0200".hex())
    assert read_all(sub.driver, b"", b"\xff", sub.driver.get_read_version()) == source.expect(
        KeyRange(b"a/0100", b"b/0200")
    )


def test_sub_ranges_and_prefixes_give_exactly_the_expected_keys(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    db.commit([set_value(b"a/0150x", b"old"), set_value(b"a/9", b"outside"), set_value(b"u/0005", b"old")])
    part = KeyRange(b"a/0100", b"a/0200")  # narrower than the batches around its ends
    r = db.bulk_load(source.job_id, part, source.url, source.paths(part))
    assert (r.range, r.keys_loaded) == (part, 100)
    now = read_all(db, b"", b"\xff", db.get_read_version())
    assert now == [(k, v) for k, v in source.expect(part)] + [(b"a/9", b"outside"), (b"u/0005", b"old")]

    # t/... loaded as u/...: remove_prefix then add_prefix, replacing everything under u/.
    t = KeyRange(b"t/", b"t0")
    r = db.bulk_load(source.job_id, t, source.url, source.paths(t), remove_prefix=b"t/", add_prefix=b"u/")
    assert (r.range, r.keys_loaded) == (KeyRange(b"u/", b"u0"), 400)
    got = read_all(db, b"u/", b"u0", db.get_read_version())
    assert got == [(b"u/" + k[2:], v) for k, v in source.expect(t)]

    with pytest.raises(errors.InvalidOptionValue, match="remove_prefix"):
        db.bulk_load(source.job_id, KeyRange(b"a/", b"b0"), source.url, source.paths(), remove_prefix=b"a/")
    with pytest.raises(errors.KeyOutsideLegalRange):
        db.bulk_load(source.job_id, t, source.url, source.paths(t), add_prefix=b"\xff")
    with pytest.raises(errors.BulkloadDatasetNotCoverRequiredRange):
        db.bulk_load(source.job_id, KeyRange(b"a/", b"b0"), source.url, source.paths(KeyRange(b"a/", b"a0")))
    assert db.status().locks == []


@pytest.mark.parametrize("missing", ["shard_encode_location_metadata", "enable_read_lock_on_range"])
def test_refused_without_each_knob(source: Dataset, embedded_cluster_factory, missing: str) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(**{**KNOBS, missing: 0})
    db = cluster.driver
    db.commit([set_value(b"a/0001", b"mine")])
    before = digest_at(db, b"", b"\xff", db.get_read_version())
    with pytest.raises(errors.BulkloadInvalidConfiguration) as info:
        db.bulk_load(source.job_id, ALL, source.url, source.paths())
    assert info.value.code == 1250
    assert info.value.message == f"BulkLoad requires --knob_{missing}=1. Restart cluster with this knob enabled."
    assert digest_at(db, b"", b"\xff", db.get_read_version()) == before and db.status().locks == []


def load_in_background(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except errors.FDBError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wait_for_lock(db, owner: str) -> None:
    deadline = time.monotonic() + 10
    while not any(lk.owner == owner for lk in db.status().locks):
        assert time.monotonic() < deadline, "the BulkLoad never took its lock"
        time.sleep(0.05)


def test_commits_into_a_loading_range_are_rejected(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    b = KeyRange(b"b/", b"b0")
    db.inject_fault("bulk_load", b, "stall", stall_seconds=1.5)
    thread, outcome = load_in_background(lambda: db.bulk_load(source.job_id, b, source.url, source.paths(b)))
    wait_for_lock(db, "BulkLoad")
    with pytest.raises(errors.TransactionRejectedRangeLocked) as info:
        db.commit([set_value(b"b/0007", b"racing")])
    assert info.value.code == 1242
    db.commit([set_value(b"c", b"elsewhere")])
    with pytest.raises(errors.RangeLockReject):  # a second load into the same range meanwhile
        db.bulk_load(source.job_id, b, source.url, source.paths(b))
    thread.join()
    assert outcome[0].keys_loaded == 400  # type: ignore[union-attr]
    assert db.status().locks == []
    assert read_all(db, b"b/", b"b0", db.get_read_version()) == source.expect(b)


def test_range_locks_of_other_owners(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    a = KeyRange(b"a/", b"a0")
    db.lock_range(KeyRange(b"a/0300", b"b/"), "restore-1")
    with pytest.raises(errors.RangeLockReject) as info:
        db.bulk_load(source.job_id, a, source.url, source.paths(a))
    assert info.value.code == 1247 and read_all(db, b"", b"\xff", db.get_read_version()) == []
    with pytest.raises(errors.RangeLockFailed):  # restore-1 holds only part of the range
        db.bulk_load(source.job_id, a, source.url, source.paths(a), lock_owner="restore-1")

    # Under the caller's own lock: it must cover the range, and it stays held afterwards.
    db.lock_range(a, "restore-1")
    r = db.bulk_load(source.job_id, a, source.url, source.paths(a), lock_owner="restore-1")
    assert r.keys_loaded == 400
    assert [(lk.range, lk.owner) for lk in db.status().locks] == [(KeyRange(b"a/", b"b/"), "restore-1")]
    with pytest.raises(errors.RangeLockFailed):
        db.bulk_load(source.job_id, a, source.url, source.paths(a), lock_owner="someone-else")
    assert read_all(db, b"a/", b"a0", db.get_read_version()) == source.expect(a)


def damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize("damage", [damage_flip, damage_truncate, Path.unlink])
@pytest.mark.parametrize("checksum", [True, False])
def test_damaged_or_missing_files_are_rejected_before_anything_changes(
    source: Dataset, dest: EmbeddedCluster, tmp_path: Path, damage: Callable[[Path], None], checksum: bool
) -> None:
    """With the manifest's SHA-256, and for FDB-made datasets without one (a verified read-through)."""
    data, folder = copy_dataset(source, tmp_path)
    container = open_container(data.url)
    b = KeyRange(b"b/", b"b0")
    paths = data.paths(b)
    if not checksum:
        for p in paths:
            m = BatchManifest.parse(container.read(in_root(p)))
            fdb_made = replace(m, checksum_value="", checksum_method="")  # FDB leaves both empty
            container.write(in_root(p), fdb_made.to_text().encode())
    victim = BatchManifest.parse(container.read(in_root(paths[len(paths) // 2])))
    victim_path = folder / in_root(f"{victim.relative_path}/{victim.data_file_name}")
    db = dest.driver
    db.commit([set_value(b"b/0001", b"mine"), set_value(b"b/zzz", b"mine too")])
    before = digest_at(db, b"", b"\xff", db.get_read_version())
    damage(victim_path)
    with pytest.raises(errors.BulkloadTaskFailed) as info:
        db.bulk_load(data.job_id, b, data.url, paths)
    assert info.value.code == 1238 and victim.data_file_name in info.value.message
    assert digest_at(db, b"", b"\xff", db.get_read_version()) == before
    assert db.status().locks == [] and not os.listdir(dest.data_dir / "bulk")


def test_loads_bypass_the_mutation_log_and_end_older_reads(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    db.commit([set_value(b"a/0001", b"old"), set_value(b"c", b"kept")])
    begin = db.start_log_capture("backup", [ALL])
    before = db.get_read_version()
    a = KeyRange(b"a/", b"a0")
    db.bulk_load(source.job_id, a, source.url, source.paths(a))
    mutations, _ = drain(db, "backup", begin)
    assert mutations == []
    with pytest.raises(errors.TransactionTooOld):
        db.get_range(b"a/", b"a0", before)
    assert db.get(b"c", before) == b"kept"  # outside the loaded range, history is intact
    with pytest.raises(errors.NotCommitted):
        db.commit([set_value(b"c", b"x")], read_version=before, read_conflict_ranges=[KeyRange(b"a/0005", b"a/0006")])


def test_injected_failure_then_success_and_stall_past_a_timeout(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    a = KeyRange(b"a/", b"a0")
    db.inject_fault("bulk_load", KeyRange(b"a/0010", b"a/0011"), "fail", times=1)
    with pytest.raises(errors.BulkloadTaskFailed, match="injected"):
        db.bulk_load(source.job_id, a, source.url, source.paths(a))
    assert db.status().locks == [] and read_all(db, b"", b"\xff", db.get_read_version()) == []
    assert db.bulk_load(source.job_id, a, source.url, source.paths(a)).keys_loaded == 400

    db.inject_fault("bulk_load", a, "stall", stall_seconds=0)  # until the caller gives up
    started = time.monotonic()
    with pytest.raises(errors.TimedOut):
        db.bulk_load(source.job_id, a, source.url, source.paths(a), timeout=1.0)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while db.status().locks:  # the server noticed, stopped, and let go of the range
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert db.bulk_load(source.job_id, a, source.url, source.paths(a), timeout=30).keys_loaded == 400
