"""BulkDump snapshots inside a backup: the cluster's BulkDump is a black box called per shard.

Each task asks the cluster to dump one piece into ``bulkdump_data/<job>/<task>/`` and then proves
what came back: every batch manifest parses and agrees with the batch, and every data file hashes
to its recorded SHA-256 (tasks run in parallel, so this costs no wall time at the end). The callback
checks existence, exact coverage of the backup ranges, and only then writes ``job-manifest.txt`` and
the snapshot manifest. Nothing claims a BulkDump snapshot that is not complete (FDB's #13873 defect).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict, dataclass

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.cluster.interface import BulkDumpBatch, ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.formats.bulkdump_manifest import JobManifestEntry, format_job_manifest
from fdbcore.formats.snapshot_manifest import BulkDumpSnapshotManifest
from fdbcore.keys import KeyRange, covers_exactly


def task_uid(job_id: str, index: int) -> str:
    """Deterministic task id, so a redelivered task replaces its own folder instead of adding one."""
    return hashlib.md5(f"{job_id}/{index}".encode()).hexdigest()


@dataclass(frozen=True)
class DumpedBatch:
    begin: str  # hex
    end: str
    version: int
    manifest_path: str  # relative to the dataset root
    data_path: str
    bytes: int
    keys: int
    file_size: int
    checksum: str

    @property
    def range(self) -> KeyRange:
        return KeyRange(bytes.fromhex(self.begin), bytes.fromhex(self.end))

    def entry(self) -> JobManifestEntry:
        return JobManifestEntry(self.range.begin, self.range.end, self.manifest_path, self.version, self.bytes)


def dump_piece(
    driver: ClusterDriver,
    container: BackupContainer,
    container_url: str,
    job_id: str,
    index: int,
    piece: KeyRange,
    timeout: float | None,
) -> list[DumpedBatch]:
    """Dump one piece through the cluster and verify every batch it reports."""
    batches = driver.bulk_dump(job_id, task_uid(job_id, index), piece, container_url, root=ds.ROOT, timeout=timeout)
    out = [_verify(container, b) for b in batches]
    if not covers_exactly([b.range for b in out], [piece]) or _overlapping(out):
        raise errors.BulkdumpTaskFailed(f"BulkDump of {piece} returned batches that do not cover it exactly")
    return out


def _verify(container: BackupContainer, b: BulkDumpBatch) -> DumpedBatch:
    entry = JobManifestEntry(b.range.begin, b.range.end, b.manifest_path, b.version, b.bytes)
    verified = ds.verify_entry(container, entry)
    if verified.manifest.key_count != b.key_count:
        raise errors.BulkdumpTaskFailed(f"batch {b.manifest_path} manifest disagrees on the key count")
    return DumpedBatch(
        b.range.begin.hex(),
        b.range.end.hex(),
        b.version,
        b.manifest_path,
        verified.data_path,
        b.bytes,
        b.key_count,
        b.data_file_size,
        verified.manifest.checksum_value,
    )


def _overlapping(batches: list[DumpedBatch]) -> bool:
    ordered = sorted(b.range for b in batches)
    return any(a.end > b.begin for a, b in itertools.pairwise(ordered))


def assemble(
    container: BackupContainer, job_id: str, batches: list[DumpedBatch], backup_ranges: list[KeyRange]
) -> tuple[str, BulkDumpSnapshotManifest]:
    """Check the whole job, write ``job-manifest.txt``, and return the snapshot manifest to write."""
    if not batches:
        raise errors.BackupBulkdumpFailed("BulkDump produced no batches")
    if not covers_exactly([b.range for b in batches], backup_ranges) or _overlapping(batches):
        raise errors.BackupBulkdumpFailed("BulkDump batches do not cover the backup ranges exactly")
    for b in batches:
        path = ds.in_root(b.manifest_path)
        if not container.exists(path):
            raise errors.BackupBulkdumpFailed(f"batch manifest {path} is missing")
        if b.data_path and container.size(b.data_path) != b.file_size:
            raise errors.BackupBulkdumpFailed(f"data file {b.data_path} does not have its recorded size")
    entries = sorted((b.entry() for b in batches), key=lambda e: e.begin_key)
    container.write(ds.job_manifest_path(job_id), format_job_manifest(entries).encode())
    manifest = BulkDumpSnapshotManifest(
        begin_version=min(b.version for b in batches),
        end_version=max(b.version for b in batches),
        job_id=job_id,
        ranges=tuple(backup_ranges),
        total_bytes=sum(b.file_size for b in batches),
        total_keys=sum(b.keys for b in batches),
    )
    path = naming.snapshot_manifest_path(manifest.begin_version, manifest.end_version, manifest.total_bytes)
    if container.exists(path) and not _is_ours(container, path, manifest):
        # A range-file manifest has the same name: FDB 8.0 then adds the ",bulk" suffix.
        path = naming.snapshot_manifest_path(manifest.begin_version, manifest.end_version, manifest.total_bytes, "bulk")
    return path, manifest


def _is_ours(container: BackupContainer, path: str, manifest: BulkDumpSnapshotManifest) -> bool:
    """True when ``path`` already holds this job's manifest (the callback ran before)."""
    return container.read(path) == manifest.to_json()


def batch_to_json(b: DumpedBatch) -> dict[str, object]:
    return asdict(b)
