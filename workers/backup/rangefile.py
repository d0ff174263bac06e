"""Range-file snapshots: the traditional (V1/V2) snapshot method, through snapshot reads.

Each task reads one shard-sized piece of the backup ranges at a single read version and streams it
into range files. When the read version falls out of the MVCC window (``transaction_too_old``) the
current file ends after its last key and a new file starts at a fresh read version, as FDB's
``BackupRangeTaskFunc`` does. The callback checks every file and the exact coverage before it writes
the snapshot manifest, so no manifest ever names a missing or partial file.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from fdbcore import errors, naming
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.formats.framing import DEFAULT_BLOCK_SIZE
from fdbcore.formats.io import HashingSink
from fdbcore.formats.rangefile import RangeFileWriter
from fdbcore.formats.snapshot_manifest import SnapshotManifest
from fdbcore.keys import KeyRange, covers_exactly, key_after

#: Start a new file once this many bytes are written (keeps a retried task's rework bounded).
FILE_TARGET_BYTES = 64 << 20
#: Bytes asked for per snapshot read.
READ_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RangeFileResult:
    path: str
    size: int
    version: int
    begin: str  # hex
    end: str  # hex
    keys: int
    kv_bytes: int
    sha256: str = ""  # of the whole file, as written

    @property
    def range(self) -> KeyRange:
        return KeyRange(bytes.fromhex(self.begin), bytes.fromhex(self.end))


def write_range_files(
    driver: ClusterDriver,
    container: BackupContainer,
    task_range: KeyRange,
    snapshot_version: int,
    file_index: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    file_target_bytes: int = FILE_TARGET_BYTES,
) -> list[RangeFileResult]:
    """Write ``task_range`` into one or more range files; returns what was written, in key order."""
    files: list[RangeFileResult] = []
    cursor = task_range.begin
    while True:
        version = driver.get_read_version()
        result = _write_one_file(
            driver,
            container,
            KeyRange(cursor, task_range.end),
            version,
            snapshot_version,
            file_index,
            block_size,
            file_target_bytes,
        )
        if result is None:  # too old before a single key was read: retry at a new version
            continue
        files.append(result)
        cursor = result.range.end
        if cursor >= task_range.end:
            return files


def _write_one_file(
    driver: ClusterDriver,
    container: BackupContainer,
    want: KeyRange,
    version: int,
    snapshot_version: int,
    file_index: int,
    block_size: int,
    file_target_bytes: int,
) -> RangeFileResult | None:
    path = naming.range_file_path(snapshot_version, file_index, version, naming.new_uid(), block_size)
    keys = kv_bytes = 0
    last_key: bytes | None = None
    with container.open_write(path) as out:
        hashed = HashingSink(out)
        writer = RangeFileWriter(hashed, want.begin, block_size)
        cursor = want.begin
        while True:
            try:
                chunk = driver.get_range(cursor, want.end, version, limit_bytes=READ_CHUNK_BYTES)
            except errors.TransactionTooOld:
                if last_key is None:
                    out.abort()
                    return None
                end = key_after(last_key)
                break
            for k, v in chunk.kvs:
                writer.add(k, v)
                kv_bytes += len(k) + len(v)
            keys += len(chunk.kvs)
            if chunk.kvs:
                last_key = chunk.kvs[-1][0]
                cursor = key_after(last_key)
            if not chunk.more:
                end = want.end
                break
            if last_key is not None and writer.bytes_written >= file_target_bytes:
                end = key_after(last_key)
                break
        writer.finish(end)
        size = out.bytes_written
    return RangeFileResult(path, size, version, want.begin.hex(), end.hex(), keys, kv_bytes, hashed.hexdigest())


def build_manifest(
    container: BackupContainer, results: list[RangeFileResult], backup_ranges: list[KeyRange]
) -> tuple[str, SnapshotManifest]:
    """Check every file and the coverage, then return the manifest path and content to write."""
    if not results:
        raise errors.BackupError("range-file snapshot has no files")
    for r in results:
        actual = container.size(r.path)
        if actual != r.size:
            raise errors.RestoreCorruptedData(f"range file {r.path} is {actual} bytes, written as {r.size}")
    pieces = [r.range for r in results]
    if not covers_exactly(pieces, backup_ranges) or _overlaps(pieces):
        raise errors.BackupError("range files do not cover the backup ranges exactly")
    ordered = sorted(results, key=lambda r: r.path)
    manifest = SnapshotManifest(
        begin_version=min(r.version for r in results),
        end_version=max(r.version for r in results),
        files=tuple(r.path for r in ordered),
        key_ranges={r.path: r.range for r in ordered},
        total_bytes=sum(r.size for r in results),
        checksums={r.path: r.sha256 for r in ordered} if all(r.sha256 for r in ordered) else {},
    )
    path = naming.snapshot_manifest_path(manifest.begin_version, manifest.end_version, manifest.total_bytes)
    return path, manifest


def _overlaps(pieces: list[KeyRange]) -> bool:
    ordered = sorted(pieces)
    return any(a.end > b.begin for a, b in itertools.pairwise(ordered))


def result_to_json(r: RangeFileResult) -> dict[str, object]:
    return asdict(r)
