"""A BulkDump dataset inside a backup container, and the proof that it is complete.

FDB 8.0 only checks that ``bulkdump_data/<job>/`` is non-empty, so a partial dump passes as a
backup and a BulkLoad restore silently misses data (#13873). Here a dataset is complete only when:

- ``job-manifest.txt`` parses and its entries cover the requested ranges without gap or overlap;
- every listed batch manifest exists, parses, and agrees with its job entry (range, version, bytes);
- every data file exists and hashes to the SHA-256 its manifest records. Datasets written by FDB
  carry no checksum; their SSTs are instead read through and their key count and bytes compared.

Any failure is ``restore_bulkload_dataset_incomplete`` (2390) naming what is missing or wrong.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fdbcore import errors, naming
from fdbcore.cluster.interface import BulkDumpBatch
from fdbcore.container.base import BackupContainer
from fdbcore.formats.bulkdump_manifest import (
    CHECKSUM_SHA256,
    BatchManifest,
    JobManifestEntry,
    entries_covering,
    format_job_manifest,
    iter_job_manifest,
)
from fdbcore.formats.io import ContainerSource
from fdbcore.formats.sst import verify_sst
from fdbcore.keys import KeyRange, covers_exactly, normalize_ranges

ROOT = naming.BULKDUMP_ROOT
INCOMPLETE = "BulkDump dataset incomplete. Use --mode rangefile"


def incomplete(detail: str) -> errors.FDBError:
    return errors.RestoreBulkloadDatasetIncomplete(f"{INCOMPLETE}: {detail}")


def job_manifest_path(job_id: str) -> str:
    return naming.within_root(ROOT, naming.bulkdump_job_manifest_path(job_id))


def in_root(relative: str) -> str:
    """A path relative to the dataset root (as manifests store them) as a container path."""
    return naming.within_root(ROOT, relative)


@dataclass(frozen=True)
class VerifiedBatch:
    entry: JobManifestEntry
    manifest: BatchManifest

    @property
    def data_path(self) -> str:
        """Container path of the SST, or "" for a batch without keys."""
        m = self.manifest
        return in_root(f"{m.relative_path}/{m.data_file_name}") if m.data_file_name else ""


def read_job_manifest(container: BackupContainer, job_id: str) -> list[JobManifestEntry]:
    path = job_manifest_path(job_id)
    try:
        return list(iter_job_manifest(ContainerSource(container, path)))
    except errors.FileNotFound:
        raise incomplete(f"{path} is missing") from None
    except errors.FDBError as exc:
        if exc.category in (errors.Category.TRANSIENT, errors.Category.UNAVAILABLE):
            raise
        raise incomplete(f"{path}: {exc.message}") from None


def select_entries(entries: Sequence[JobManifestEntry], ranges: Iterable[KeyRange]) -> list[JobManifestEntry]:
    """The entries needed for ``ranges``; each range must be covered exactly, with no gap or overlap."""
    chosen: dict[str, JobManifestEntry] = {}
    for r in normalize_ranges(ranges):
        try:
            for e in entries_covering(entries, r):
                chosen[e.manifest_relative_path] = e
        except errors.BulkloadDatasetNotCoverRequiredRange as exc:
            raise incomplete(exc.message) from None
    return sorted(chosen.values(), key=lambda e: e.begin_key)


def verify_entry(container: BackupContainer, entry: JobManifestEntry, *, checksum: bool = True) -> VerifiedBatch:
    """Read the entry's batch manifest and prove its data file intact."""
    path = in_root(entry.manifest_relative_path)
    try:
        manifest = BatchManifest.parse(container.read(path), path)
    except errors.FileNotFound:
        raise incomplete(f"batch manifest {path} is missing") from None
    except (errors.BulkloadManifestDecodeError, errors.BulkloadFilesetInvalidFilepath) as exc:
        raise incomplete(f"batch manifest {path} is corrupt: {exc.message}") from None
    if manifest.manifest_relative_path != entry.manifest_relative_path:
        raise incomplete(f"batch manifest {path} names itself {manifest.manifest_relative_path}")
    mismatch = [
        name
        for name, ours, theirs in (
            ("range", manifest.range, entry.range),
            ("version", manifest.version, entry.version),
            ("bytes", manifest.total_bytes, entry.total_bytes),
        )
        if ours != theirs
    ]
    if mismatch:
        raise incomplete(f"batch manifest {path} disagrees with the job manifest on {', '.join(mismatch)}")
    batch = VerifiedBatch(entry, manifest)
    if manifest.data_file_name:
        _verify_data(container, batch, checksum)
    return batch


def _verify_data(container: BackupContainer, batch: VerifiedBatch, checksum: bool) -> None:
    path, m = batch.data_path, batch.manifest
    if not container.exists(path):
        raise incomplete(f"data file {path} is missing")
    if not checksum:
        return
    if m.checksum_method == CHECKSUM_SHA256:
        try:
            actual = container.sha256(path)
        except errors.RestoreCorruptedData as exc:  # an encrypted block that does not authenticate
            raise incomplete(f"data file {path}: {exc.message}") from None
        if actual != m.checksum_value:
            raise incomplete(f"data file {path} has SHA-256 {actual}; its manifest says {m.checksum_value}")
        return
    if m.checksum_method:
        raise incomplete(f"data file {path} uses unknown checksum method {m.checksum_method!r}")
    # An FDB-made dataset: no checksum, so read the SST through and compare counts.
    with tempfile.TemporaryDirectory(prefix="bulkdump-verify-") as tmp:
        local = f"{tmp}/data.sst"
        container.download_file(path, local)
        try:
            stats = verify_sst(local, expected_key_count=m.key_count, expected_bytes=m.total_bytes)
        except errors.FileCorrupt as exc:
            raise incomplete(f"data file {path}: {exc.message}") from None
        keys = [k for k in (stats.first_key, stats.last_key) if k is not None]
        if not all(m.range.contains(k) for k in keys):
            raise incomplete(f"data file {path} holds keys outside its batch range {m.range}")


# --- assembling a job --------------------------------------------------------------------------------


def check_batches_cover(batches: Sequence[BulkDumpBatch], ranges: Sequence[KeyRange]) -> None:
    """The batches cover ``ranges`` exactly: no gap, no overlap, nothing outside."""
    pieces = sorted(b.range for b in batches)
    overlap = any(a.end > b.begin for a, b in itertools.pairwise(pieces))
    if not pieces or overlap or not covers_exactly(pieces, ranges):
        raise errors.BulkloadDatasetNotCoverRequiredRange(
            f"{len(pieces)} BulkDump batches do not cover {', '.join(map(str, normalize_ranges(ranges)))} exactly"
        )


def write_job_manifest(
    container: BackupContainer, job_id: str, batches: Sequence[BulkDumpBatch], ranges: Sequence[KeyRange]
) -> list[JobManifestEntry]:
    """Check a finished job (coverage, every manifest present, every data file at its size), then write
    ``job-manifest.txt``. Writing it last is what marks the job complete."""
    check_batches_cover(batches, ranges)
    for b in batches:
        path = in_root(b.manifest_path)
        if not container.exists(path):
            raise errors.BulkdumpTaskFailed(f"batch manifest {path} is missing")
        if b.data_path and container.size(in_root(b.data_path)) != b.data_file_size:
            raise errors.BulkdumpTaskFailed(f"data file {in_root(b.data_path)} does not have its recorded size")
    entries = sorted(
        (JobManifestEntry(b.range.begin, b.range.end, b.manifest_path, b.version, b.bytes) for b in batches),
        key=lambda e: e.begin_key,
    )
    container.write(job_manifest_path(job_id), format_job_manifest(entries).encode())
    return entries
