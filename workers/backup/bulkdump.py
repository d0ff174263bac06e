"""BulkDump snapshots inside a backup: the cluster's BulkDump is a black box called per shard.

Each task asks the cluster to dump one piece into ``bulkdump_data/<job>/<task>/`` and then proves
what came back: every batch manifest parses and agrees with the batch, and every data file hashes
to its recorded SHA-256 (tasks run in parallel, so this costs no wall time at the end). The callback
checks existence, exact coverage of the backup ranges, and only then writes ``job-manifest.txt`` and
the snapshot manifest. Nothing claims a BulkDump snapshot that is not complete (FDB's #13873 defect).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.cluster.interface import BulkDumpBatch, ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.encryption import EncryptionSettings
from fdbcore.formats.bulkdump_manifest import JobManifestEntry, format_job_manifest
from fdbcore.formats.snapshot_manifest import BulkDumpSnapshotManifest
from fdbcore.keys import KeyRange


def dump_piece(
    driver: ClusterDriver,
    container: BackupContainer,
    container_url: str,
    job_id: str,
    index: int,
    piece: KeyRange,
    timeout: float | None,
    *,
    content_check: bool = False,
    encryption: EncryptionSettings | None = None,
) -> list[BulkDumpBatch]:
    """Dump one piece through the cluster and verify every batch it reports: its manifest parses and
    agrees with the batch, its data file exists with the size written, and (``content_check``) the data
    file hashes to the manifest's SHA-256.

    Every attempt dumps into a task folder of its own: the cluster empties a task's folder before it
    dumps, so two copies of one task sharing a folder (a redelivery while the first copy still runs)
    would delete each other's batches between dump and verify. The folders no recorded result names
    are removed by :func:`delete_unused_task_folders`.
    """
    batches = driver.bulk_dump(
        job_id, naming.new_uid(), piece, container_url, root=ds.ROOT, timeout=timeout, encryption=encryption
    )
    try:
        ds.check_batches_cover(batches, [piece])
    except errors.BulkloadDatasetNotCoverRequiredRange as exc:
        raise errors.BulkdumpTaskFailed(f"BulkDump of {piece}: {exc.message}") from None
    for b in batches:
        entry = JobManifestEntry(b.range.begin, b.range.end, b.manifest_path, b.version, b.bytes)
        verified = ds.verify_entry(container, entry, checksum=content_check)
        if verified.manifest.key_count != b.key_count or verified.manifest.checksum_value != b.checksum:
            raise errors.BulkdumpTaskFailed(f"batch manifest {b.manifest_path} disagrees with what BulkDump reported")
        if verified.data_path and container.size(verified.data_path) != b.data_file_size:
            raise errors.BulkdumpTaskFailed(f"data file {verified.data_path} is not the size BulkDump wrote")
    return batches


def delete_unused_task_folders(container: BackupContainer, job_id: str, batches: list[BulkDumpBatch]) -> int:
    """Remove the job's task folders that no batch of the snapshot is in (attempts that were killed,
    failed, or lost the race to record their result); returns how many files went."""
    used = {b.manifest_path.split("/", 2)[1] for b in batches}
    job_dir = ds.in_root(naming.bulkdump_job_dir(job_id)) + "/"
    removed = 0
    for info in list(container.list(job_dir)):
        task_dir, _, rest = info.path[len(job_dir) :].partition("/")
        if rest and task_dir not in used:
            container.delete(info.path)
            removed += 1
    return removed


def manifest_checksums(container: BackupContainer, batches: list[BulkDumpBatch]) -> dict[str, str]:
    """SHA-256 of each batch manifest as it is now (just verified), by container path: the snapshot
    manifest records them, so a restore proves every manifest unchanged before it loads anything."""
    return {
        ds.in_root(b.manifest_path): hashlib.sha256(container.read(ds.in_root(b.manifest_path))).hexdigest()
        for b in batches
    }


def assemble(
    container: BackupContainer,
    job_id: str,
    batches: list[BulkDumpBatch],
    backup_ranges: list[KeyRange],
    manifest_sums: Mapping[str, str] | None = None,
) -> tuple[str, BulkDumpSnapshotManifest]:
    """Write ``job-manifest.txt`` after checking the whole job; return the snapshot manifest to write.

    With ``manifest_sums`` (every batch manifest's SHA-256), the snapshot manifest records those and
    the job manifest's, sealing the whole dataset: the SSTs' own SHA-256 are in the batch manifests.
    """
    if not batches:
        raise errors.BackupBulkdumpFailed("BulkDump produced no batches")
    try:
        entries = ds.write_job_manifest(container, job_id, batches, backup_ranges)
    except (errors.BulkloadDatasetNotCoverRequiredRange, errors.BulkdumpTaskFailed) as exc:
        raise errors.BackupBulkdumpFailed(exc.message) from None
    checksums: dict[str, str] = {}
    if manifest_sums is not None and all(ds.in_root(b.manifest_path) in manifest_sums for b in batches):
        job_text = format_job_manifest(entries).encode()
        checksums = {ds.job_manifest_path(job_id): hashlib.sha256(job_text).hexdigest(), **manifest_sums}
    manifest = BulkDumpSnapshotManifest(
        begin_version=min(b.version for b in batches),
        end_version=max(b.version for b in batches),
        job_id=job_id,
        ranges=tuple(backup_ranges),
        total_bytes=sum(b.data_file_size for b in batches),
        total_keys=sum(b.key_count for b in batches),
        checksums=checksums,
    )
    path = naming.snapshot_manifest_path(manifest.begin_version, manifest.end_version, manifest.total_bytes)
    if container.exists(path) and container.read(path) != manifest.to_json():
        # A range-file manifest has the same name: FDB 8.0 then adds the ",bulk" suffix.
        path = naming.snapshot_manifest_path(manifest.begin_version, manifest.end_version, manifest.total_bytes, "bulk")
    return path, manifest
