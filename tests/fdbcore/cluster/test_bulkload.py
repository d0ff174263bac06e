"""BulkLoad through the driver: sub-ranges and prefixes give exactly the expected keys; the knobs it
needs, range locks, corrupt or missing files, the mutation log and older-version reads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from fdbcore import errors
from fdbcore.bulkdump_dataset import in_root
from fdbcore.container import open_container
from fdbcore.formats.bulkdump_manifest import BatchManifest
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from tests.fdbcore.cluster.bulk import ALL, KNOBS, Dataset, dump_dataset
from tests.fdbcore.cluster.conftest import HARNESSES, ClusterFactory, ClusterUnderTest
from tests.fdbcore.cluster.util import digest_at, drain, read_all


@pytest.fixture(scope="module")
def source(driver_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A dataset dumped once from a cluster of the driver under test, whose server is stopped again."""
    root = tmp_path_factory.mktemp("bulkload-source")
    with HARNESSES[driver_kind](root) as make:
        return dump_dataset(make, root)


@pytest.fixture
def dest(cluster_factory: ClusterFactory) -> ClusterUnderTest:
    return cluster_factory(name="dest", **KNOBS)


def copy_dataset(source: Dataset, tmp_path: Path) -> tuple[Dataset, Path]:
    """A private copy of the dataset, to damage; and its folder."""
    src = Path(source.url.removeprefix("file://"))
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return Dataset(f"file://{dst}", source.job_id, source.entries, source.pairs), dst


def test_sub_ranges_and_prefixes_give_exactly_the_expected_keys(source: Dataset, dest: ClusterUnderTest) -> None:
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
def test_refused_without_each_knob(source: Dataset, cluster_factory: ClusterFactory, missing: str) -> None:
    cluster = cluster_factory(**{**KNOBS, missing: 0})
    db = cluster.driver
    db.commit([set_value(b"a/0001", b"mine")])
    before = digest_at(db, b"", b"\xff", db.get_read_version())
    with pytest.raises(errors.BulkloadInvalidConfiguration) as info:
        db.bulk_load(source.job_id, ALL, source.url, source.paths())
    assert info.value.code == 1250
    assert info.value.message == f"BulkLoad requires --knob_{missing}=1. Restart cluster with this knob enabled."
    assert digest_at(db, b"", b"\xff", db.get_read_version()) == before and db.status().locks == []


def test_range_locks_of_other_owners(source: Dataset, dest: ClusterUnderTest) -> None:
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
    source: Dataset, dest: ClusterUnderTest, tmp_path: Path, damage: Callable[[Path], None], checksum: bool
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
    assert db.status().locks == [] and dest.scratch_files() == []


def test_loads_bypass_the_mutation_log_and_end_older_reads(source: Dataset, dest: ClusterUnderTest) -> None:
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
