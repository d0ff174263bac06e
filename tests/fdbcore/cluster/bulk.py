"""BulkDump and BulkLoad helpers shared by the contract suite and the embedded cluster's own bulk tests:
checking a dump's batches against its manifests and SSTs, and a dataset dumped once for loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedded_cluster.bulkjobs import dump_job
from fdbcore.bulkdump_dataset import check_batches_cover, in_root, read_job_manifest, verify_entry
from fdbcore.cluster.interface import BulkDumpBatch, ClusterDriver
from fdbcore.container import BackupContainer, open_container
from fdbcore.formats.bulkdump_manifest import BatchManifest, JobManifestEntry
from fdbcore.formats.sst import read_sst
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fdbcore.cluster.conftest import ClusterFactory
from tests.fdbcore.cluster.util import read_all

#: BulkLoad's knobs (FDB's names), both needed before a cluster loads anything.
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


def dump_dataset(make: ClusterFactory, root: Path) -> Dataset:
    """A source cluster of several shards, made with ``make``, dumped once (small batches) into a
    file:// container under ``root``."""
    db = make("src", shard_count=3).driver
    db.commit([set_value(b"%c/%04d" % (c, i), value(i)) for c in b"abt" for i in range(400)])
    url = f"file://{root}/backup"
    job_id = new_uid()
    dump_job(db, open_container(url), url, ALL, job_id, batch_bytes=3_000)
    pairs = read_all(db, b"", b"\xff", db.get_read_version())
    entries = read_job_manifest(open_container(url), job_id)
    return Dataset(url, job_id, entries, pairs)


W = KeyRange(b"w/", b"w0")  # the Writer's keys


def fill(db: ClusterDriver, n: int = 6000) -> None:
    db.commit([set_value(b"w/%05d" % i, b"x" * 50) for i in range(n)])


def check_batches(container: BackupContainer, batches: list[BulkDumpBatch], piece: KeyRange) -> list[BatchManifest]:
    """The batches cover ``piece`` exactly, in order; each manifest parses and agrees; each SST hashes to it."""
    check_batches_cover(batches, [piece])
    assert [b.range for b in batches] == sorted(b.range for b in batches)
    manifests = []
    for b in batches:
        m = BatchManifest.parse(container.read(in_root(b.manifest_path)))
        assert (m.range, m.version, m.total_bytes, m.key_count, m.checksum_value) == (
            b.range,
            b.version,
            b.bytes,
            b.key_count,
            b.checksum,
        )
        assert m.manifest_file_name == f"{b.version}-manifest.txt"
        assert b.data_path == (f"{m.relative_path}/{b.version}-data.sst" if b.key_count else "")
        verify_entry(container, JobManifestEntry.of(m))  # SHA-256 of the data file
        if b.data_path:
            assert container.size(in_root(b.data_path)) == b.data_file_size
        manifests.append(m)
    return manifests


def sst_pairs(container: BackupContainer, b: BulkDumpBatch, tmp_path: Path) -> list[tuple[bytes, bytes]]:
    if not b.data_path:
        return []
    local = tmp_path / "batch.sst"
    container.download_file(in_root(b.data_path), str(local))
    try:
        return list(read_sst(local, expected_key_count=b.key_count, expected_bytes=b.bytes))
    finally:
        local.unlink()
