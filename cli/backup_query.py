"""``fdbbackup query``: which files a restore to a version reads, and their sizes, as FDB's JSON.

FDB prints ``key_ranges_filter``, ``destination_container``, ``restore_version`` (and, when asked,
``snapshot_version`` and the resolved timestamp), ``total_range_files_size``,
``total_log_files_size`` and the ``ranges``/``logs`` arrays. A ``--mode bulkload`` query (ours)
lists the BulkDump dataset's files instead, as ``bulkdump_files`` with ``total_bulkdump_files_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fdbcore import bulkdump_dataset as ds
from fdbcore import naming
from fdbcore.catalog import Catalog, RestoreSet
from fdbcore.formats.snapshot_manifest import BulkDumpSnapshotManifest
from fdbcore.keys import KeyRange, printable
from fdbcore.modes import RestoreMode

#: FDB's ``-qrv`` values: ``invalidVersion`` (the newest restorable version, the default) and
#: ``earliestVersion`` (the oldest).
NEWEST, OLDEST = -1, -3


def range_text(r: KeyRange) -> str:
    """FDB's ``KeyRangeRef::toString``."""
    return f"{{ begin={printable(r.begin)}  end={printable(r.end)} }}"


def resolve_versions(catalog: Catalog, mode: RestoreMode, version: int, snapshot: int | None) -> tuple[int, int | None]:
    """FDB's ``-qrv`` -1/-3 and ``--query-restore-snapshot-version`` -3, resolved for the mode."""
    span = catalog.describe().restorable_range(mode.snapshot_kind)
    lo, hi = span if span is not None else (-1, -1)
    version = hi if version == NEWEST else lo if version == OLDEST else version
    snapshot = lo if snapshot == OLDEST else snapshot
    return version, snapshot


def query_document(catalog: Catalog, rs: RestoreSet, mode: RestoreMode, ranges: Sequence[KeyRange]) -> dict[str, Any]:
    """The restore-set part of the answer."""
    doc: dict[str, Any] = {"restore_version": rs.target_version}
    range_files = [
        {
            "file_name": f.path,
            "file_size": f.size,
            "version": f.version,
            "key_range": "none" if f.key_range is None else range_text(f.key_range),
        }
        for f in rs.range_files
    ]
    logs = [
        {"file_name": f.path, "file_size": f.size, "begin_version": f.begin, "end_version": f.end} for f in rs.log_files
    ]
    doc["total_range_files_size"] = sum(f["file_size"] for f in range_files)
    doc["total_log_files_size"] = sum(f["file_size"] for f in logs)
    if mode == RestoreMode.BULKLOAD and rs.snapshot is not None:
        assert isinstance(rs.snapshot.manifest, BulkDumpSnapshotManifest)
        files = _dataset_files(catalog, rs.snapshot.manifest.job_id, ranges)
        doc["total_bulkdump_files_size"] = sum(f["file_size"] for f in files)
        doc["bulkdump_files"] = files
    doc["ranges"] = range_files
    doc["logs"] = logs
    return doc


def _dataset_files(catalog: Catalog, job_id: str, ranges: Sequence[KeyRange]) -> list[dict[str, Any]]:
    """The batch manifests and data files a BulkLoad of ``ranges`` reads, with their sizes."""
    entries = ds.select_entries(ds.read_job_manifest(catalog.container, job_id), ranges)
    sizes = {i.path: i.size for i in catalog.container.list(ds.in_root(naming.bulkdump_job_dir(job_id)) + "/")}
    out = []
    for e in entries:
        manifest = ds.in_root(e.manifest_relative_path)
        data = f"{manifest.rsplit('/', 1)[0]}/{naming.bulkdump_data_name(e.version)}"
        for path in (manifest, data):
            if path in sizes:
                out.append(
                    {
                        "file_name": path,
                        "file_size": sizes[path],
                        "version": e.version,
                        "key_range": range_text(e.range),
                    }
                )
    return out
