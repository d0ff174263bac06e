"""Dataset verification over a real local container with real SST files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.container.local import LocalContainer
from fdbcore.formats.bulkdump_manifest import (
    CHECKSUM_SHA256,
    BatchManifest,
    JobManifestEntry,
    format_job_manifest,
)
from fdbcore.formats.sst import write_sst
from fdbcore.keys import KeyRange

JOB, TASK = "1" * 32, "2" * 32


def add_batch(
    c: LocalContainer, tmp: Path, batch: int, r: KeyRange, version: int, checksum: bool = True
) -> JobManifestEntry:
    kvs = [(r.begin + b"%03d" % i, b"v" * 10) for i in range(5)]
    rel = naming.bulkdump_batch_dir(JOB, TASK, batch)
    info = write_sst(tmp / f"b{batch}.sst", kvs)
    assert info is not None
    c.upload_file(ds.in_root(f"{rel}/{naming.bulkdump_data_name(version)}"), str(info.path))
    m = BatchManifest(
        root_path="file:///x/bulkdump_data",
        relative_path=rel,
        manifest_file_name=naming.bulkdump_manifest_name(version),
        data_file_name=naming.bulkdump_data_name(version),
        byte_sample_file_name="",
        checksum_value=info.sha256 if checksum else "",
        checksum_method=CHECKSUM_SHA256 if checksum else "",
        begin_key=r.begin,
        end_key=r.end,
        version=version,
        total_bytes=info.total_bytes,
        key_count=info.key_count,
    )
    c.write(ds.in_root(m.manifest_relative_path), m.to_text().encode())
    return JobManifestEntry.of(m)


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[LocalContainer, list[JobManifestEntry]]:
    c = LocalContainer(str(tmp_path / "backup"))
    c.create()
    entries = [
        add_batch(c, tmp_path, 0, KeyRange(b"a", b"m"), 100),
        add_batch(c, tmp_path, 1, KeyRange(b"m", b"z"), 105),
    ]
    c.write(ds.job_manifest_path(JOB), format_job_manifest(entries).encode())
    return c, entries


def test_complete_dataset_verifies(dataset: tuple[LocalContainer, list[JobManifestEntry]]) -> None:
    c, _ = dataset
    entries = ds.read_job_manifest(c, JOB)
    chosen = ds.select_entries(entries, [KeyRange(b"b", b"n")])
    batches = [ds.verify_entry(c, e) for e in chosen]
    assert [b.manifest.version for b in batches] == [100, 105]
    assert batches[0].data_path.startswith("bulkdump_data/")


def test_flipped_byte_is_named(dataset: tuple[LocalContainer, list[JobManifestEntry]]) -> None:
    c, entries = dataset
    victim = ds.verify_entry(c, entries[1]).data_path
    data = bytearray(c.read(victim))
    data[len(data) // 2] ^= 0x01
    c.write(victim, bytes(data))
    with pytest.raises(errors.RestoreBulkloadDatasetIncomplete, match="SHA-256") as err:
        ds.verify_entry(c, entries[1])
    assert "Use --mode rangefile" in str(err.value) and victim in str(err.value)


def test_missing_pieces_are_named(dataset: tuple[LocalContainer, list[JobManifestEntry]]) -> None:
    c, entries = dataset
    with pytest.raises(errors.RestoreBulkloadDatasetIncomplete, match=r"no dataset entry|covers"):
        ds.select_entries(entries, [KeyRange(b"0", b"b")])
    c.delete(ds.in_root(entries[0].manifest_relative_path))
    with pytest.raises(errors.RestoreBulkloadDatasetIncomplete, match=r"batch manifest .* is missing"):
        ds.verify_entry(c, entries[0])
    c.delete(ds.job_manifest_path(JOB))
    with pytest.raises(errors.RestoreBulkloadDatasetIncomplete, match=r"job-manifest\.txt is missing"):
        ds.read_job_manifest(c, JOB)


def test_fdb_made_batch_without_checksum_is_read_through(tmp_path: Path) -> None:
    c = LocalContainer(str(tmp_path / "backup"))
    c.create()
    entry = add_batch(c, tmp_path, 0, KeyRange(b"a", b"m"), 100, checksum=False)
    assert ds.verify_entry(c, entry).manifest.checksum_value == ""
    path = ds.verify_entry(c, entry, checksum=False).data_path
    c.write(path, c.read(path)[:-100])  # truncated SST
    with pytest.raises(errors.RestoreBulkloadDatasetIncomplete, match="data file"):
        ds.verify_entry(c, entry)
