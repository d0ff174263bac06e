"""Proving everything a restore will read intact before anything touches the destination.

The plan cuts the work into verify units, one ``restore.verify`` task each, run as a chord before the
snapshot phase of either mode (a unit's failure aborts the restore with the destination untouched):

- ``["range", i, sha256]``: range file ``i`` hashes to the SHA-256 its snapshot manifest records; a
  manifest without checksums (FDB's, or older) gets the file decoded whole instead, its blocks
  chained from the key range the manifest gives it to that range's end.
- ``["group", i, {path: sha256}]``: BulkLoad group ``i``: each batch manifest hashes to its recorded
  SHA-256 (when recorded), then :func:`workers.restore.bulkload.verify_group` (manifests agree with
  the job manifest, every SST hashes to its manifest's SHA-256).
- ``["logs", stream, first, end]``: log files ``[first, end)`` of a replay stream hash to the SHA-256
  the backup recorded for each (``logsums/``); in a backup without those records (FDB's), each file
  decodes whole, every mutation inside its name's version range and in order (that cannot see a
  flipped byte inside a key or value).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.catalog import LogFileRef, RangeFileRef
from fdbcore.container.base import BackupContainer
from fdbcore.formats.io import ContainerSource
from fdbcore.formats.partitioned_log import iter_partitioned_log
from fdbcore.formats.rangefile import iter_range_file
from fdbcore.formats.v1_log import iter_v1_log
from fdbcore.keys import printable

#: One verify task reads at most about this much of a stream's logs.
LOG_UNIT_BYTES = 256 << 20
LOG_UNIT_FILES = 64

Unit = list[object]
_SHA256_LINE = re.compile(rb"([0-9a-f]{64})\n?")


def log_units(streams: Sequence[Sequence[LogFileRef]]) -> list[Unit]:
    """Consecutive slices of each stream's files, bounded in bytes and count."""
    out: list[Unit] = []
    for s, files in enumerate(streams):
        first = size = 0
        for i, f in enumerate(files):
            if i > first and (size + f.size > LOG_UNIT_BYTES or i - first >= LOG_UNIT_FILES):
                out.append(["logs", s, first, i])
                first, size = i, 0
            size += f.size
        if files:
            out.append(["logs", s, first, len(files)])
    return out


def check_sha256(container: BackupContainer, path: str, expected: str, what: str) -> None:
    """``path`` hashes to ``expected``, else ``restore_corrupted_data`` (missing: ``restore_missing_data``)."""
    try:
        actual = container.sha256(path)
    except errors.FileNotFound:
        raise errors.RestoreMissingData(f"{what} {path} is missing") from None
    if actual != expected:
        raise errors.RestoreCorruptedData(f"{what} {path} has SHA-256 {actual}; the backup recorded {expected}")


def check_dataset_file(container: BackupContainer, path: str, checksums: dict[str, str], what: str) -> None:
    """A BulkDump dataset file the snapshot manifest records is unchanged (else 2390, naming it)."""
    if path not in checksums:
        raise ds.incomplete(f"the snapshot manifest records no SHA-256 for {what} {path}")
    try:
        check_sha256(container, path, checksums[path], what)
    except (errors.RestoreCorruptedData, errors.RestoreMissingData) as exc:
        raise ds.incomplete(exc.message) from None


def verify_range_file(container: BackupContainer, ref: RangeFileRef, sha256: str) -> None:
    if sha256:
        check_sha256(container, ref.path, sha256, "range file")
        return
    assert ref.key_range is not None
    begin = end = None
    try:
        for block in iter_range_file(ContainerSource(container, ref.path), ref.block_size):
            begin = block.range.begin if begin is None else begin
            end = block.range.end
    except errors.FileNotFound:
        raise errors.RestoreMissingData(f"range file {ref.path} is missing") from None
    if (begin, end) != (ref.key_range.begin, ref.key_range.end):
        shown = "nothing" if begin is None or end is None else f"{printable(begin)}..{printable(end)}"
        raise errors.RestoreCorruptedData(f"range file {ref.path} holds {shown}, its snapshot manifest {ref.key_range}")


def verify_log_files(container: BackupContainer, files: Sequence[LogFileRef], *, checksummed: bool) -> None:
    for f in files:
        if checksummed:
            check_sha256(container, f.path, recorded_log_sha256(container, f.path), "log file")
        else:
            _decode_log_file(container, f)


def recorded_log_sha256(container: BackupContainer, path: str) -> str:
    record = naming.log_checksum_path(path)
    try:
        text = container.read(record)
    except errors.FileNotFound:
        raise errors.RestoreCorruptedData(f"log file {path}: the record of its SHA-256, {record}, is missing") from None
    if not (m := _SHA256_LINE.fullmatch(text)):
        raise errors.RestoreCorruptedData(f"{record} is corrupt: not a SHA-256 digest")
    return m[1].decode()


def _decode_log_file(container: BackupContainer, f: LogFileRef) -> None:
    if f.size == 0:
        return
    last = (f.begin, -1)
    try:
        source = ContainerSource(container, f.path)
        if f.partitioned:
            records = ((m.version, m.subsequence) for m in iter_partitioned_log(source, f.block_size))
        else:
            records = ((version, 0) for version, _ in iter_v1_log(source, f.block_size))
        for version, sub in records:
            if not f.begin <= version < f.end or (version, sub) < last:
                raise errors.RestoreCorruptedData(
                    f"log file {f.path}: a mutation at version {version}.{sub} follows {last[0]}.{last[1]} "
                    f"in a file for versions [{f.begin}, {f.end})"
                )
            last = (version, sub)
    except errors.FileNotFound:
        raise errors.RestoreMissingData(f"log file {f.path} is missing") from None
