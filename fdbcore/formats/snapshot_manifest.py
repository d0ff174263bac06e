"""Snapshot manifests (``snapshots/snapshot,<begin>,<end>,<bytes>``), fdb-formats.md §1.3.

FDB writes them with json_spirit: compact, object keys sorted bytewise, keys and paths as raw byte
strings in which ``" \\ \\b \\f \\n \\r \\t`` get their short escapes and every other byte outside
0x20-0x7E becomes ``\\u00XX`` (uppercase). The reader maps each ``\\uHHHH`` back to one byte.

Two kinds exist: the range-file manifest (files and their key ranges) and, in 8.0, the BulkDump
manifest (a job id and the backup ranges, no files). FDB writes ``totalBytes`` and ``totalKeys`` as 0
for the latter; we write the true values, which FDB's reader accepts as well.

Integrity (our addition; FDB's reader ignores unknown fields): a manifest may list the SHA-256 of the
files it stands for (``fileSha256``: range files, or a BulkDump job's job manifest and batch
manifests, by container path), and then carries its own SHA-256 (``manifestSha256``, over the
canonical text without that field). The reader checks the latter, so one flipped byte anywhere in
such a manifest is ``restore_corrupted_data``; manifests without it (FDB's, or older ones) parse as
before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from fdbcore import errors
from fdbcore.keys import KeyRange

BULKDUMP_SNAPSHOT_TYPE = "bulkdump"
_INT64 = range(-(2**63), 2**63)
_UID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
FILE_SHA256 = "fileSha256"
MANIFEST_SHA256 = "manifestSha256"

_Json: TypeAlias = "bool | int | bytes | str | list[_Json] | dict[bytes, _Json]"

_SHORT_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_ESCAPE_TABLE = {
    b: _SHORT_ESCAPES.get(b, f"\\u{b:04X}") for b in range(256) if b in _SHORT_ESCAPES or not 0x20 <= b <= 0x7E
}


def _string(raw: bytes) -> str:
    return '"' + raw.decode("latin-1").translate(_ESCAPE_TABLE) + '"'


def _sealed(doc: dict[bytes, _Json], checksums: Mapping[str, str]) -> bytes:
    """The manifest text; with file checksums, plus those and the SHA-256 of the text without it."""
    if not checksums:
        return _dump(doc).encode("ascii")
    for path, digest in checksums.items():
        if not _SHA256.fullmatch(digest):
            raise errors.InternalError(f"SHA-256 of {path} is not 64 lowercase hex digits: {digest!r}")
    doc = {**doc, FILE_SHA256.encode(): {p.encode("utf-8"): d for p, d in checksums.items()}}
    digest = hashlib.sha256(_dump(doc).encode("ascii")).hexdigest()
    return _dump({**doc, MANIFEST_SHA256.encode(): digest}).encode("ascii")


def _canonical(value: object) -> _Json:
    """A parsed JSON value back in the writer's terms (strings as the bytes they escape)."""
    if isinstance(value, str):
        return _raw(value, "manifest string")
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {_raw(k, "manifest key"): _canonical(v) for k, v in value.items()}
    if isinstance(value, bool | int):
        return value
    raise errors.RestoreCorruptedData(f"manifest value {value!r} is neither a string, an integer nor a container")


def _check_seal(doc: dict[str, object], name: str) -> dict[str, str]:
    """Verify ``manifestSha256`` when present; return the file checksums (empty when absent)."""
    if MANIFEST_SHA256 not in doc:
        if FILE_SHA256 in doc:
            raise errors.RestoreCorruptedData(f"{name}: {FILE_SHA256} without {MANIFEST_SHA256}")
        return {}
    rest = {k: v for k, v in doc.items() if k != MANIFEST_SHA256}
    actual = hashlib.sha256(_dump(_canonical(rest)).encode("ascii")).hexdigest()
    if actual != doc[MANIFEST_SHA256]:
        raise errors.RestoreCorruptedData(f"{name} is corrupt: its content does not match its {MANIFEST_SHA256}")
    sums = doc.get(FILE_SHA256)
    if not isinstance(sums, dict) or not all(isinstance(v, str) and _SHA256.fullmatch(v) for v in sums.values()):
        raise errors.RestoreCorruptedData(f"{name}: {FILE_SHA256} is not an object of SHA-256 digests")
    return {_path(k, f"{name}: {FILE_SHA256} path"): str(v) for k, v in sums.items()}


def _dump(value: _Json) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return _string(value)
    if isinstance(value, str):
        return _string(value.encode("utf-8"))
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return "{" + ",".join(_string(k) + ":" + _dump(value[k]) for k in sorted(value)) + "}"


@dataclass(frozen=True, slots=True)
class SnapshotManifest:
    """A range-file snapshot: container-relative range file paths and each file's key range."""

    begin_version: int
    end_version: int
    files: tuple[str, ...]
    key_ranges: Mapping[str, KeyRange]
    total_bytes: int
    #: SHA-256 of each range file, by path (empty: not recorded).
    checksums: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc: dict[bytes, _Json] = {
            b"beginVersion": self.begin_version,
            b"endVersion": self.end_version,
            b"files": list(self.files),
            b"totalBytes": self.total_bytes,
        }
        if self.key_ranges:
            doc[b"keyRanges"] = {
                path.encode("utf-8"): {b"beginKey": r.begin, b"endKey": r.end} for path, r in self.key_ranges.items()
            }
        return _sealed(doc, self.checksums)


@dataclass(frozen=True, slots=True)
class BulkDumpSnapshotManifest:
    """A BulkDump snapshot (8.0): the data lives under ``bulkdump_data/<job_id>/``.

    FDB writes ``beginVersion == endVersion ==`` the backup's start version, although every batch is
    read at its own later version. We record the truth: the smallest and largest batch versions, so a
    restore never targets a version some batch has already passed. Both shapes parse.
    """

    begin_version: int
    end_version: int
    job_id: str
    ranges: tuple[KeyRange, ...]
    total_bytes: int
    total_keys: int
    #: SHA-256 of the job manifest and of every batch manifest, by container path (empty: not recorded).
    checksums: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        if not _UID.fullmatch(self.job_id):
            raise errors.InternalError(f"BulkDump job id {self.job_id!r} is not 32 lowercase hex digits")
        doc: dict[bytes, _Json] = {
            b"beginVersion": self.begin_version,
            b"endVersion": self.end_version,
            b"bulkDumpJobId": self.job_id,
            b"files": [],
            b"ranges": [{b"begin": r.begin, b"end": r.end} for r in self.ranges],
            b"snapshotType": BULKDUMP_SNAPSHOT_TYPE,
            b"totalBytes": self.total_bytes,
            b"totalKeys": self.total_keys,
        }
        return _sealed(doc, self.checksums)


def _raw(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise errors.RestoreCorruptedData(f"{what} is not a string")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # a \uHHHH escape above 0xFF: FDB keeps its low byte
        return bytes(ord(c) & 0xFF for c in value)


def _path(value: object, what: str) -> str:
    try:
        return _raw(value, what).decode("utf-8")
    except UnicodeDecodeError:
        raise errors.RestoreCorruptedData(f"{what} is not UTF-8") from None


def _int(doc: Mapping[str, object], key: str, name: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value not in _INT64:
        raise errors.RestoreCorruptedData(f"snapshot manifest {name}: {key} is missing or not an int64")
    return value


def _range(obj: object, begin_key: str, end_key: str, what: str) -> KeyRange:
    if not isinstance(obj, dict) or begin_key not in obj or end_key not in obj:
        raise errors.RestoreCorruptedData(f"{what} lacks {begin_key} or {end_key}")
    begin, end = _raw(obj[begin_key], f"{what} {begin_key}"), _raw(obj[end_key], f"{what} {end_key}")
    if begin > end:
        raise errors.RestoreCorruptedData(f"{what} is inverted")
    return KeyRange(begin, end)


def parse_snapshot_manifest(
    data: bytes, begin_version: int, end_version: int, name: str = "snapshot manifest"
) -> SnapshotManifest | BulkDumpSnapshotManifest:
    """Parse and validate a manifest whose file name says ``begin_version`` and ``end_version``.

    A manifest with a non-empty ``bulkDumpJobId`` is a BulkDump manifest, as FDB's restore decides.
    """
    try:
        doc = json.loads(data.decode("latin-1"), strict=False)
    except ValueError as exc:
        raise errors.RestoreError(
            f"{name} is not valid JSON ({exc}); if the backup is encrypted, check the encryption key, "
            "otherwise the file is corrupt"
        ) from None
    if not isinstance(doc, dict):
        raise errors.RestoreCorruptedData(f"{name} is not a JSON object")
    checksums = _check_seal(doc, name)
    if begin_version > end_version:
        raise errors.RestoreCorruptedData(f"{name}: begin version {begin_version} is after end {end_version}")
    for key, expected in (("beginVersion", begin_version), ("endVersion", end_version)):
        if _int(doc, key, name) != expected:
            raise errors.RestoreCorruptedData(f"{name}: {key} {doc[key]} does not match the file name ({expected})")
    files = doc.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise errors.RestoreCorruptedData(f"{name}: files is not an array of strings")
    total_bytes = _int(doc, "totalBytes", name)
    job_id = doc.get("bulkDumpJobId")
    if job_id:
        if not isinstance(job_id, str) or not _UID.fullmatch(job_id):
            raise errors.RestoreCorruptedData(f"{name}: bulkDumpJobId {job_id!r} is not a 32-hex-digit UID")
        ranges = doc.get("ranges")
        if not isinstance(ranges, list):
            raise errors.RestoreCorruptedData(f"{name}: ranges is not an array")
        return BulkDumpSnapshotManifest(
            begin_version=begin_version,
            end_version=end_version,
            job_id=job_id,
            ranges=tuple(_range(r, "begin", "end", f"{name}: range") for r in ranges),
            total_bytes=total_bytes,
            total_keys=_int(doc, "totalKeys", name),
            checksums=checksums,
        )
    key_ranges = doc.get("keyRanges", {})
    if not isinstance(key_ranges, dict):
        raise errors.RestoreCorruptedData(f"{name}: keyRanges is not an object")
    return SnapshotManifest(
        begin_version=begin_version,
        end_version=end_version,
        files=tuple(_path(f, f"{name}: file path") for f in files),
        key_ranges={
            _path(path, f"{name}: keyRanges path"): _range(r, "beginKey", "endKey", f"{name}: keyRanges[{path}]")
            for path, r in key_ranges.items()
        },
        total_bytes=total_bytes,
        checksums=checksums,
    )
