"""JSON forms of the core's value types, as job records, plans and task results store them.

One module owns them so backup and restore, the records and the task results agree on every shape.
Keys are hex strings (JSON cannot hold raw bytes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fdbcore.catalog import LogFileRef, RangeFileRef
from fdbcore.cluster.interface import BulkDumpBatch
from fdbcore.keys import KeyRange, VersionedRange


def range_to_json(r: KeyRange) -> list[str]:
    return [r.begin.hex(), r.end.hex()]


def range_from_json(raw: Any) -> KeyRange:
    begin, end = raw
    return KeyRange(bytes.fromhex(begin), bytes.fromhex(end))


def ranges_to_json(ranges: Iterable[KeyRange]) -> list[list[str]]:
    return [range_to_json(r) for r in ranges]


def ranges_from_json(raw: Any) -> list[KeyRange]:
    return [range_from_json(r) for r in raw]


def versioned_to_json(pieces: Iterable[VersionedRange]) -> list[list[object]]:
    return [[*range_to_json(p.range), p.version] for p in pieces]


def versioned_from_json(raw: Any) -> list[VersionedRange]:
    return [VersionedRange(range_from_json((b, e)), int(v)) for b, e, v in raw]


def range_file_to_json(f: RangeFileRef) -> dict[str, object]:
    doc: dict[str, object] = {"path": f.path, "size": f.size, "version": f.version, "block_size": f.block_size}
    if f.key_range is not None:
        doc["range"] = range_to_json(f.key_range)
    return doc


def range_file_from_json(d: Any) -> RangeFileRef:
    key_range = range_from_json(d["range"]) if "range" in d else None
    return RangeFileRef(str(d["path"]), int(d["size"]), int(d["version"]), int(d["block_size"]), key_range)


def log_file_to_json(f: LogFileRef) -> list[object]:
    return [f.path, f.size, f.begin, f.end, f.block_size, f.tag, f.total_tags, f.partitioned]


def log_file_from_json(d: Any) -> LogFileRef:
    path, size, begin, end, bs, tag, total, partitioned = d
    return LogFileRef(
        str(path),
        int(size),
        int(begin),
        int(end),
        int(bs),
        None if tag is None else int(tag),
        None if total is None else int(total),
        bool(partitioned),
    )


def batch_to_json(b: BulkDumpBatch) -> dict[str, object]:
    return {
        "range": range_to_json(b.range),
        "version": b.version,
        "manifest_path": b.manifest_path,
        "data_path": b.data_path,
        "bytes": b.bytes,
        "key_count": b.key_count,
        "data_file_size": b.data_file_size,
        "checksum": b.checksum,
    }


def batch_from_json(d: Any) -> BulkDumpBatch:
    return BulkDumpBatch(
        range=range_from_json(d["range"]),
        version=int(d["version"]),
        manifest_path=str(d["manifest_path"]),
        data_path=str(d["data_path"]),
        bytes=int(d["bytes"]),
        key_count=int(d["key_count"]),
        data_file_size=int(d["data_file_size"]),
        checksum=str(d["checksum"]),
    )
