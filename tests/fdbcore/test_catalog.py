"""The catalog over a real local container holding real range files, logs and manifests."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from fdbcore import errors, naming
from fdbcore.catalog import LOG_CHECKSUM_ALGORITHM, Catalog, encode_partition_map, expire
from fdbcore.container.local import LocalContainer
from fdbcore.formats.partitioned_log import PartitionedLogWriter
from fdbcore.formats.rangefile import write_range_file
from fdbcore.formats.snapshot_manifest import BulkDumpSnapshotManifest, SnapshotManifest
from fdbcore.keys import USER_KEYS, KeyRange
from fdbcore.modes import RestoreMode, SnapshotKind
from fdbcore.mutations import set_value

UID = "0123456789abcdef0123456789abcdef"
JOB = "fedcba9876543210fedcba9876543210"
A, M = KeyRange(b"", b"m"), KeyRange(b"m", b"\xff")


def put_range_file(c: LocalContainer, snap: int, idx: int, version: int, r: KeyRange) -> str:
    path = naming.range_file_path(snap, idx, version, UID, 4096)
    buf = io.BytesIO()
    write_range_file(buf, r.begin, [(r.begin + b"k", b"v")], r.end, 4096)
    c.write(path, buf.getvalue())
    return path


def put_plog(c: LocalContainer, begin: int, end: int, tag: int, total: int = 2, uid: str = UID) -> str:
    """A one-mutation log file and, as our backups write them, the record of its SHA-256."""
    buf = io.BytesIO()
    w = PartitionedLogWriter(buf, 4096)
    w.add(begin, 0, set_value(b"a" if tag == 0 else b"n", b"x"))
    w.finish()
    path = naming.log_file_path(begin, end, uid, 4096, tag=tag, total_tags=total)
    c.write(path, buf.getvalue())
    c.write(naming.log_checksum_path(path), f"{hashlib.sha256(buf.getvalue()).hexdigest()}\n".encode())
    return path


def put_range_snapshot(c: LocalContainer, snap: int, versions: tuple[int, int]) -> None:
    files = {put_range_file(c, snap, 0, versions[0], A): A, put_range_file(c, snap, 1, versions[1], M): M}
    total = sum(c.size(p) for p in files)
    m = SnapshotManifest(min(versions), max(versions), tuple(files), files, total)
    c.write(naming.snapshot_manifest_path(min(versions), max(versions), total), m.to_json())


def put_bulk_snapshot(c: LocalContainer, begin: int, end: int) -> None:
    m = BulkDumpSnapshotManifest(begin, end, JOB, (USER_KEYS,), 1000, 10)
    c.write(naming.snapshot_manifest_path(begin, end, 1000), m.to_json())


@pytest.fixture
def container(tmp_path: Path) -> LocalContainer:
    c = LocalContainer(str(tmp_path / "backup"))
    c.create()
    c.write(naming.property_path(naming.LOG_PARTITION_MAP), encode_partition_map({0: A, 1: M}))
    c.write(naming.property_path(naming.LOG_CHECKSUMS), LOG_CHECKSUM_ALGORITHM)
    # logs: [100, 200) and [200, 300) for both tags
    for tag in (0, 1):
        put_plog(c, 100, 200, tag)
        put_plog(c, 200, 300, tag)
    put_range_snapshot(c, 110, (120, 150))
    put_bulk_snapshot(c, 130, 160)
    return c


def test_describe_types_and_restorable_versions(container: LocalContainer) -> None:
    desc = Catalog(container).describe()
    assert [(s.kind, s.begin_version, s.end_version) for s in desc.snapshots] == [
        (SnapshotKind.RANGEFILE, 120, 150),
        (SnapshotKind.BULKDUMP, 130, 160),
    ]
    assert (desc.min_log_begin, desc.contiguous_log_end, desc.max_log_end) == (100, 300, 300)
    assert desc.restorable_range() == (150, 299)
    assert desc.restorable_range(SnapshotKind.BULKDUMP) == (160, 299)
    assert desc.mutation_log_type == 1
    assert desc.partitions == {0: A, 1: M}


def test_log_gap_in_one_tag_limits_restorability(container: LocalContainer) -> None:
    put_plog(container, 300, 400, 0)  # tag 1 stops at 300
    desc = Catalog(container).describe()
    assert desc.contiguous_log_end == 300 and desc.max_log_end == 400


def test_rangefile_restore_never_selects_a_bulkdump_snapshot(container: LocalContainer) -> None:
    rs = Catalog(container).restore_set(170, [USER_KEYS], RestoreMode.RANGEFILE)
    assert rs.snapshot.kind == SnapshotKind.RANGEFILE
    assert [f.version for f in rs.range_files] == [120, 150]
    assert (rs.begin_version, rs.end_version, rs.target_version) == (120, 150, 170)
    assert {(f.begin, f.tag) for f in rs.log_files} == {(100, 0), (100, 1)}


def test_bulkload_restore_selects_the_bulkdump_dataset(container: LocalContainer) -> None:
    rs = Catalog(container).restore_set(None, [USER_KEYS], RestoreMode.BULKLOAD)
    assert rs.snapshot.kind == SnapshotKind.BULKDUMP and rs.target_version == 299
    assert rs.range_files == [] and (rs.begin_version, rs.end_version) == (130, 160)
    assert len(rs.log_files) == 4


def test_key_filter_narrows_files_and_versions(container: LocalContainer) -> None:
    rs = Catalog(container).restore_set(150, [KeyRange(b"a", b"b")], RestoreMode.RANGEFILE)
    assert [f.key_range for f in rs.range_files] == [A]
    assert (rs.begin_version, rs.end_version) == (120, 120)


@pytest.mark.parametrize(
    ("target", "mode", "error", "text"),
    [
        (149, "rangefile", errors.RestoreInvalidVersion, "150 through 299"),
        (300, "rangefile", errors.RestoreInvalidVersion, "150 through 299"),
        (155, "bulkload", errors.RestoreInvalidVersion, "160 through 299"),
    ],
)
def test_versions_outside_the_range_are_named_errors(
    container: LocalContainer, target: int, mode: str, error: type[errors.FDBError], text: str
) -> None:
    with pytest.raises(error, match=text):
        Catalog(container).restore_set(target, [USER_KEYS], RestoreMode(mode))


def test_bulkload_without_dataset_points_to_rangefile(tmp_path: Path) -> None:
    c = LocalContainer(str(tmp_path / "b"))
    c.create()
    c.write(naming.property_path(naming.LOG_CHECKSUMS), LOG_CHECKSUM_ALGORITHM)
    for tag in (0, 1):
        put_plog(c, 100, 200, tag)
    put_range_snapshot(c, 110, (120, 150))
    with pytest.raises(errors.RestoreBulkloadDatasetIncomplete, match="Use --mode rangefile"):
        Catalog(c).restore_set(None, [USER_KEYS], RestoreMode.BULKLOAD)


def test_missing_range_file_and_uncovered_range(container: LocalContainer) -> None:
    with pytest.raises(errors.RestoreMissingData, match="does not contain key range"):
        Catalog(container).restore_set(150, [KeyRange(b"", b"\xff\x01")], RestoreMode.RANGEFILE)
    victim = next(f.path for f in Catalog(container).range_files() if f.version == 150)
    container.delete(victim)
    with pytest.raises(errors.RestoreMissingData, match="is missing"):
        Catalog(container).restore_set(150, [USER_KEYS], RestoreMode.RANGEFILE)


def test_empty_container_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(errors.BackupDoesNotExist):
        Catalog(LocalContainer(str(tmp_path / "none"))).describe()


def test_expire_refuses_to_break_restorability_and_moves_back_inside_a_log(container: LocalContainer) -> None:
    with pytest.raises(errors.BackupCannotExpire, match="no restorable snapshot"):
        expire(container, 200)
    with pytest.raises(errors.BackupCannotExpire, match="impossible"):
        expire(container, 200, restorable_after=150)
    result = expire(container, 110)  # inside the [100, 200) logs: moves back to 100
    assert (result.requested_end, result.actual_end, result.deleted_files) == (110, 100, 0)
    assert Catalog(container).describe().restorable_range() == (150, 299)


def test_a_deleted_log_file_is_named_instead_of_lowering_the_restorable_version(container: LocalContainer) -> None:
    rs = Catalog(container).restore_set(None, [USER_KEYS], RestoreMode.RANGEFILE)
    assert rs.target_version == 299 and rs.log_checksums
    container.delete(naming.log_file_path(200, 300, UID, 4096, tag=1, total_tags=2))
    assert Catalog(container).describe().restorable_range() == (150, 199)  # all the listing alone can see
    with pytest.raises(errors.RestoreMissingData, match=r"log,200,300,.*is missing.*\[200, 300\)"):
        Catalog(container).restore_set(None, [USER_KEYS], RestoreMode.RANGEFILE)
    with pytest.raises(errors.RestoreMissingData, match="is missing"):
        Catalog(container).restore_set(250, [USER_KEYS], RestoreMode.RANGEFILE)
    assert (
        Catalog(container).restore_set(180, [USER_KEYS], RestoreMode.RANGEFILE).target_version == 180
    )  # before the hole


def test_the_log_checksums_property_cannot_be_lost_quietly(container: LocalContainer) -> None:
    container.delete(naming.property_path(naming.LOG_CHECKSUMS))
    with pytest.raises(errors.RestoreCorruptedData, match="log_checksums is missing"):
        Catalog(container).restore_set(None, [USER_KEYS], RestoreMode.RANGEFILE)
    container.write(naming.property_path(naming.LOG_CHECKSUMS), b"md5")
    with pytest.raises(errors.RestoreCorruptedData, match="unknown checksum"):
        Catalog(container).restore_set(None, [USER_KEYS], RestoreMode.RANGEFILE)


def test_a_crashed_writers_leftover_record_is_covered_by_its_successor(container: LocalContainer) -> None:
    """A round that lost its race deletes its file, then its record; a crash between leaves the record."""
    loser = put_plog(container, 200, 250, 0, uid="f" * 32)
    container.delete(loser)
    catalog = Catalog(container)
    assert catalog.lost_log_files(catalog.log_files()) == []
    assert catalog.restore_set(None, [USER_KEYS], RestoreMode.RANGEFILE).target_version == 299


def test_forced_expire_deletes_old_data_and_bulkdump_datasets(container: LocalContainer) -> None:
    container.write(f"bulkdump_data/{JOB}/job-manifest.txt", b"x")
    result = expire(container, 200, force=True)
    assert result.actual_end == 200 and result.deleted_files == 2 + 2 + 2 + 1  # logs, range files, manifests, dataset
    desc = Catalog(container).describe()
    assert desc.snapshots == [] and desc.restorable_range() is None
    assert (desc.expired_end, desc.unreliable_end, desc.min_log_begin) == (200, 200, 200)
    assert not list(container.list("bulkdump_data/"))
    assert [naming.parse_log_checksum_path(i.path).begin for i in container.list("logsums/")] == [200, 200]  # type: ignore[union-attr]
    assert expire(container, 150, force=True).deleted_files == 0  # already expired further
