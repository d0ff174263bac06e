"""Container naming: FDB's exact examples, format/parse round trips, and names parsers must refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import naming
from fdbcore.errors import BulkloadFilesetInvalidFilepath

versions = st.integers(0, naming.MAX_VERSION)
uids = st.text(st.characters(blacklist_characters=",/", blacklist_categories=["Cs"]), min_size=1, max_size=40)
block_sizes = st.integers(1, 2**31 - 1)
hex_uids = st.binary(min_size=16, max_size=16).map(bytes.hex)

UID = "0123456789abcdef0123456789abcdef"
UID2 = "fedcba9876543210fedcba9876543210"


@pytest.mark.parametrize(
    ("version", "folder"),
    [
        (78_655_645, "logs/0000/0000/"),
        (1_234_567_890_123, "logs/0000/0012/"),
        (0, "logs/0000/0000/"),
        (99_999_999_999, "logs/0000/0000/"),
        (100_000_000_000, "logs/0000/0001/"),
        (naming.MAX_VERSION, "logs/9223/3720/"),
    ],
)
def test_log_folders_match_fdb(version: int, folder: str) -> None:
    assert naming.log_folder(version, partitioned=False) == folder
    assert naming.log_folder(version, partitioned=True) == "p" + folder


def test_version_folder_string() -> None:
    assert naming.version_folder_string(78_655_645, 11) == "0000/0000"
    assert naming.version_folder_string(1_234_567_890_123, 8) == "0000001/2345"  # legacy ranges/ folders
    with pytest.raises(ValueError):
        naming.version_folder_string(-1, 11)


def test_range_file_paths_match_fdb() -> None:
    assert (
        naming.range_file_path(78_994_177, 0, 78_994_177, UID, 1_048_576)
        == f"kvranges/snapshot.000000000078994177/0/range,78994177,{UID},1048576"
    )
    assert naming.range_file_path(5, 4999, 7, "u", 100).startswith("kvranges/snapshot.000000000000000005/0/")
    assert naming.range_file_path(5, 5000, 7, "u", 100).startswith("kvranges/snapshot.000000000000000005/1/")


def test_legacy_range_files_parse() -> None:
    path = f"ranges/0000000/0000/range,78994177,{UID},1048576"
    assert naming.parse_range_file_path(path) == naming.RangeFileName(path, 78_994_177, UID, 1_048_576)


def test_log_file_paths_match_fdb() -> None:
    assert naming.log_file_path(100, 200, UID, 1024) == f"logs/0000/0000/log,100,200,{UID},1024"
    assert (
        naming.log_file_path(1_234_567_890_123, 1_234_567_990_123, UID, 1024, tag=2, total_tags=3)
        == f"plogs/0000/0012/log,1234567890123,1234567990123,{UID},2-of-3,1024"
    )


def test_snapshot_manifest_and_property_paths() -> None:
    assert naming.snapshot_manifest_path(10, 20, 300) == "snapshots/snapshot,10,20,300"
    assert naming.snapshot_manifest_path(10, 20, 300, "bulk") == "snapshots/snapshot,10,20,300,bulk"
    parsed = naming.parse_snapshot_manifest_path("snapshots/snapshot,10,20,300,range")
    assert parsed == naming.SnapshotManifestName("snapshots/snapshot,10,20,300,range", 10, 20, 300, "range")
    assert naming.property_path(naming.LOG_BEGIN_VERSION) == "properties/log_begin_version"
    assert naming.property_path(naming.ENCRYPTION_METADATA) == "properties/encryption_metadata"
    with pytest.raises(ValueError):
        naming.property_path("log_begin")


@given(versions, st.integers(0, 10**6), versions, uids, block_sizes)
def test_range_file_round_trip(begin: int, index: int, version: int, uid: str, block_size: int) -> None:
    path = naming.range_file_path(begin, index, version, uid, block_size)
    assert naming.parse_range_file_path(path) == naming.RangeFileName(path, version, uid, block_size)
    assert naming.parse_log_file_path(path) is None
    assert naming.parse_snapshot_manifest_path(path) is None


@given(
    versions,
    versions,
    uids,
    block_sizes,
    st.none() | st.integers(1, 1000).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))),
)
def test_log_file_round_trip(a: int, b: int, uid: str, block_size: int, tagging: tuple[int, int] | None) -> None:
    begin, end = min(a, b), max(a, b)
    tag, total = tagging if tagging else (None, None)
    path = naming.log_file_path(begin, end, uid, block_size, tag=tag, total_tags=total)
    expected = naming.LogFileName(path, begin, end, uid, block_size, tag, total, tagging is not None)
    assert naming.parse_log_file_path(path) == expected
    assert path.startswith(naming.log_folder(begin, partitioned=tagging is not None))
    assert naming.parse_range_file_path(path) is None


@given(versions, versions, versions, st.sampled_from(["", "bulk", "range"]))
def test_snapshot_manifest_round_trip(begin: int, end: int, total: int, suffix: str) -> None:
    path = naming.snapshot_manifest_path(begin, end, total, suffix)
    assert naming.parse_snapshot_manifest_path(path) == naming.SnapshotManifestName(path, begin, end, total, suffix)


@pytest.mark.parametrize(
    "name",
    [
        "range,1,uid,1024,extra",
        "range,1,,1024",
        "range,x,uid,1024",
        "range,1,uid,-5",
        "range,1,uid,4294967296",  # block size beyond uint32
        "range,9223372036854775808,uid,1",  # version beyond int64
        "range,1,uid,1024 ",
        "range,\u0661,uid,1024",  # a non-ASCII digit
        "prefix-range,1,uid,1024",
    ],
)
def test_range_parser_refuses(name: str) -> None:
    assert naming.parse_range_file_path(f"kvranges/snapshot.000000000000000001/0/{name}") is None


@pytest.mark.parametrize(
    "name",
    [
        "log,1,2,uid",
        "log,1,2,uid,1024,5",
        "log,1,2,uid,-1-of-3,1024",
        "log,1,2,,1024",
        "log,a,2,uid,1024",
        "logs,1,2,uid,1024",
    ],
)
def test_log_parser_refuses(name: str) -> None:
    assert naming.parse_log_file_path(f"logs/0000/0000/{name}") is None


def test_parsers_read_only_the_base_name() -> None:
    # As FDB's pathToLogFile: the folder does not decide the kind.
    assert naming.parse_log_file_path("anywhere/log,1,2,u,3") is not None
    assert naming.parse_snapshot_manifest_path("snapshot,1,2,3") is not None
    assert naming.parse_snapshot_manifest_path("snapshots/snapshot,1,2") is None
    assert naming.parse_snapshot_manifest_path("snapshots/snapshot,1,2,3,a,b") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: naming.range_file_path(-1, 0, 1, "u", 1),
        lambda: naming.range_file_path(1, -1, 1, "u", 1),
        lambda: naming.range_file_path(1, 0, 1, "a,b", 1),
        lambda: naming.range_file_path(1, 0, 1, "a/b", 1),
        lambda: naming.range_file_path(1, 0, 1, "", 1),
        lambda: naming.range_file_path(1, 0, 1, "u", 0),
        lambda: naming.log_file_path(2, 1, "u", 1),
        lambda: naming.log_file_path(1, 2, "u", 1, tag=1),
        lambda: naming.log_file_path(1, 2, "u", 1, tag=3, total_tags=3),
        lambda: naming.snapshot_manifest_path(1, 2, 3, "a,b"),
        lambda: naming.snapshot_manifest_path(1, 2, -3),
        lambda: naming.bulkdump_job_dir("not-a-uid"),
        lambda: naming.bulkdump_task_dir(UID, UID.upper()),
        lambda: naming.bulkdump_batch_dir(UID, UID2, -1),
        lambda: naming.bulkdump_manifest_name(-1),
    ],
)
def test_formatters_refuse_bad_arguments(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_bulkdump_layout() -> None:
    assert naming.BULKDUMP_ROOT == "bulkdump_data"
    assert naming.bulkdump_job_manifest_path(UID) == f"{UID}/job-manifest.txt"
    assert naming.bulkdump_batch_dir(UID, UID2, 3) == f"{UID}/{UID2}/3"
    assert naming.bulkdump_manifest_name(42) == "42-manifest.txt"
    assert naming.bulkdump_data_name(42) == "42-data.sst"
    assert naming.bulkdump_sample_name(42) == "42-sample.sst"
    rel = naming.within_root(naming.bulkdump_batch_dir(UID, UID2, 3), naming.bulkdump_data_name(42))
    assert naming.within_root(naming.BULKDUMP_ROOT, rel) == f"bulkdump_data/{UID}/{UID2}/3/42-data.sst"
    assert naming.within_root("", rel) == rel
    assert naming.within_root("root/", rel) == f"root/{rel}"


@given(hex_uids, hex_uids, st.integers(0, 10**6), versions, st.sampled_from(list(naming.BulkDumpFileKind)))
def test_bulkdump_round_trip(job: str, task: str, batch: int, version: int, kind: naming.BulkDumpFileKind) -> None:
    name = {
        naming.BulkDumpFileKind.MANIFEST: naming.bulkdump_manifest_name,
        naming.BulkDumpFileKind.DATA: naming.bulkdump_data_name,
        naming.BulkDumpFileKind.SAMPLE: naming.bulkdump_sample_name,
    }[kind](version)
    rel = naming.within_root(naming.bulkdump_batch_dir(job, task, batch), name)
    for path in (rel, naming.within_root(naming.BULKDUMP_ROOT, rel)):
        assert naming.parse_bulkdump_path(path) == naming.BulkDumpFileName(path, job, task, batch, version, kind)


@pytest.mark.parametrize(
    "path",
    [
        f"{UID}/job-manifest.txt",
        f"{UID}/{UID2}/0/42-manifest.json",
        f"{UID}/{UID2}/x/42-data.sst",
        f"{UID}/nope/0/42-data.sst",
        f"{UID2}/0/42-data.sst",
        f"{UID}/{UID2}/0/-data.sst",
    ],
)
def test_bulkdump_parser_refuses(path: str) -> None:
    assert naming.parse_bulkdump_path(path) is None


@pytest.mark.parametrize("rel", ["", "/abs", "../x", "a/../../x", "a//b", "./a", "a/"])
def test_within_root_refuses_escapes(rel: str) -> None:
    with pytest.raises(BulkloadFilesetInvalidFilepath):
        naming.within_root("bulkdump_data", rel)


def test_blobstore_keys_match_fdb() -> None:
    assert naming.blobstore_data_prefix("nightly") == "data/nightly/"
    assert naming.blobstore_data_prefix("team/nightly/") == "data/team/nightly/"
    assert naming.blobstore_index_key("team/nightly") == "backups/team/nightly"


def test_local_temp_names_are_hidden() -> None:
    temp = naming.local_temp_path("/d/kvranges/range,1,u,2")
    head, uid, suffix = temp.rsplit(".", 2)
    assert head == "/d/kvranges/range,1,u,2" and naming.is_uid(uid) and suffix == "temp"
    assert naming.is_partial_name(temp)
    assert naming.is_partial_name("x.part")
    assert not naming.is_partial_name("range,1,u,2")


def test_uids() -> None:
    a, b = naming.new_uid(), naming.new_uid()
    assert a != b and naming.is_uid(a) and naming.is_uid(b)
    assert not naming.is_uid(UID.upper())
    assert not naming.is_uid(UID[:-1])


def test_backup_folder_name() -> None:
    naive = datetime(2026, 11, 25, 7, 8, 9, 12)
    assert naming.backup_folder_name(naive) == "backup-2026-11-25-07-08-09.000012"
    aware = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    local = aware.astimezone()
    expected = f"backup-{local:%Y-%m-%d-%H-%M-%S}.600000"
    assert naming.backup_folder_name(aware) == expected
    other = aware.astimezone(timezone(timedelta(hours=5)))
    assert naming.backup_folder_name(other) == expected  # the same instant, in local time


def test_log_checksum_records_pair_with_their_log_files() -> None:
    log = naming.log_file_path(100, 200, UID, 1024, tag=1, total_tags=2)
    record = naming.log_checksum_path(log)
    assert record == f"logsums/plogs/0000/0000/log,100,200,{UID},1-of-2,1024.sha256"
    parsed = naming.parse_log_checksum_path(record)
    assert parsed is not None and parsed.path == log and (parsed.begin, parsed.end, parsed.tag) == (100, 200, 1)
    for other in (log, f"logsums/{log}", f"logsums/kvranges/x/{UID}.sha256", "logsums/plogs/0000/0000/log.sha256"):
        assert naming.parse_log_checksum_path(other) is None
    with pytest.raises(ValueError, match="not a log file"):
        naming.log_checksum_path("snapshots/snapshot,1,2,3")
