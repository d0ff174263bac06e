"""BulkDump text manifests: per-batch ``<v>-manifest.txt`` and ``job-manifest.txt`` (fdb-formats.md §4.2-4.3).

Both are ``[Name]: value`` parts joined by ``", "``, so no value may contain ``", "``. Keys are written
as lowercase hex bytes separated by spaces.

Checksums: FDB leaves ``[ChecksumValue]`` and ``[ChecksumMethod]`` empty. We fill them for every batch
that has a data file with the SHA-256 of the data file's bytes: value = 64 lowercase hex digits,
method = ``sha256``. FDB's parser passes both through unchecked, so our datasets still load in FDB,
and we accept FDB's empty checksums.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from fdbcore import errors
from fdbcore.formats.io import ByteSource, BytesSource
from fdbcore.keys import KeyRange, from_hex_plain, printable, to_hex_plain

FORMAT_VERSION = 1
LOAD_TYPE_SST = 1
TRANSPORT_CP = 1
TRANSPORT_BLOBSTORE = 2
CHECKSUM_SHA256 = "sha256"
JOB_MANIFEST_NAME = "job-manifest.txt"

_SEP = ", "
_INT = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _decode_error(what: str, message: str) -> errors.FDBError:
    return errors.BulkloadManifestDecodeError(f"{what}: {message}")


def _join(names: Sequence[str], values: Sequence[str], what: str) -> str:
    fields = list(zip(names, values, strict=True))
    for name, value in fields:
        if _SEP in value or "\n" in value:
            raise _decode_error(what, f"[{name}] value {value!r} contains ', ' or a newline and would not parse")
    return _SEP.join(f"[{name}]: {value}" for name, value in fields)


def _split(text: str, names: Sequence[str], what: str) -> list[str]:
    parts = text.split(_SEP)
    if names[0] == "FormatVersion" and parts[0] != f"[FormatVersion]: {FORMAT_VERSION}":
        raise _decode_error(what, f"[FormatVersion] must be {FORMAT_VERSION}, found {parts[0]!r}")
    if len(parts) != len(names):
        raise _decode_error(what, f"has {len(parts)} fields, expected {len(names)}")
    values = []
    for i, (part, name) in enumerate(zip(parts, names, strict=True)):
        prefix = f"[{name}]: "
        if not part.startswith(prefix):
            raise _decode_error(what, f"field {i + 1} should start with {prefix!r}, found {part!r}")
        values.append(part[len(prefix) :])
    return values


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _decode_error(what, "is not UTF-8 text") from None


def _int(value: str, name: str, what: str, minimum: int = 0) -> int:
    if not _INT.fullmatch(value) or not minimum <= int(value) < 2**63:
        raise _decode_error(what, f"[{name}] {value!r} is not an integer >= {minimum}")
    return int(value)


def _key(value: str, name: str, what: str) -> bytes:
    try:
        return from_hex_plain(value)
    except errors.FDBError:
        raise _decode_error(what, f"[{name}] {value!r} is not a hex key") from None


def _check_path(value: str, name: str, what: str) -> None:
    """FDB 8.0 ``bulkLoadPathIsContained``: no absolute paths, no ``..`` components."""
    if value.startswith("/") or ".." in value.split("/"):
        raise errors.BulkloadFilesetInvalidFilepath(f"{what}: [{name}] {value!r} escapes the dataset root")


_BATCH_FIELDS = (
    "FormatVersion",
    "RootPath",
    "RelativePath",
    "ManifestFileName",
    "DataFileName",
    "ByteSampleFileName",
    "ChecksumValue",
    "ChecksumMethod",
    "BeginKey",
    "EndKey",
    "Version",
    "Bytes",
    "KeyCount",
    "ByteSampleVersion",
    "ByteSampleMethod",
    "ByteSampleFactor",
    "ByteSampleOverhead",
    "ByteSampleMinimalProbability",
    "loadType",
    "TransportMethod",
)


@dataclass(frozen=True, slots=True)
class BatchManifest:
    """One BulkDump batch: KVs of ``[begin_key, end_key)`` read at ``version``, in ``data_file_name``."""

    root_path: str
    relative_path: str  # <jobId>/<taskId>/<batchNum>
    manifest_file_name: str
    data_file_name: str  # "" when the batch has no keys
    byte_sample_file_name: str  # "" when there is no sample file
    checksum_value: str
    checksum_method: str
    begin_key: bytes
    end_key: bytes
    version: int
    total_bytes: int
    key_count: int
    transport_method: int = TRANSPORT_CP
    byte_sample_version: int = 0
    byte_sample_method: str = "hashlittle2"
    byte_sample_factor: int = 250
    byte_sample_overhead: int = 100
    byte_sample_minimal_probability: float = 0.0
    load_type: int = LOAD_TYPE_SST

    @property
    def range(self) -> KeyRange:
        return KeyRange(self.begin_key, self.end_key)

    @property
    def manifest_relative_path(self) -> str:
        """Relative to the dataset root, as the job manifest lists it."""
        return f"{self.relative_path}/{self.manifest_file_name}" if self.relative_path else self.manifest_file_name

    def to_text(self) -> str:
        """The whole file content: one line, no trailing newline."""
        _validate_batch(self, "batch manifest")
        return _join(
            _BATCH_FIELDS,
            (
                str(FORMAT_VERSION),
                self.root_path,
                self.relative_path,
                self.manifest_file_name,
                self.data_file_name,
                self.byte_sample_file_name,
                self.checksum_value,
                self.checksum_method,
                to_hex_plain(self.begin_key),
                to_hex_plain(self.end_key),
                str(self.version),
                str(self.total_bytes),
                str(self.key_count),
                str(self.byte_sample_version),
                self.byte_sample_method,
                str(self.byte_sample_factor),
                str(self.byte_sample_overhead),
                f"{self.byte_sample_minimal_probability:f}",
                str(self.load_type),
                str(self.transport_method),
            ),
            "batch manifest",
        )

    @classmethod
    def parse(cls, text: str | bytes, what: str = "batch manifest") -> BatchManifest:
        """Parse a batch manifest; bytes are the raw file content."""
        v = _split(_text(text, what), _BATCH_FIELDS, what)
        probability = v[17]
        if not _DECIMAL.fullmatch(probability):
            raise _decode_error(what, f"[ByteSampleMinimalProbability] {probability!r} is not a decimal")
        m = cls(
            root_path=v[1],
            relative_path=v[2],
            manifest_file_name=v[3],
            data_file_name=v[4],
            byte_sample_file_name=v[5],
            checksum_value=v[6],
            checksum_method=v[7],
            begin_key=_key(v[8], "BeginKey", what),
            end_key=_key(v[9], "EndKey", what),
            version=_int(v[10], "Version", what),
            total_bytes=_int(v[11], "Bytes", what),
            key_count=_int(v[12], "KeyCount", what),
            byte_sample_version=_int(v[13], "ByteSampleVersion", what),
            byte_sample_method=v[14],
            byte_sample_factor=_int(v[15], "ByteSampleFactor", what),
            byte_sample_overhead=_int(v[16], "ByteSampleOverhead", what),
            byte_sample_minimal_probability=float(probability),
            load_type=_int(v[18], "loadType", what),
            transport_method=_int(v[19], "TransportMethod", what),
        )
        _validate_batch(m, what)
        return m


def _validate_batch(m: BatchManifest, what: str) -> None:
    """FDB's ``BulkLoadManifest::isValid`` plus the consistency rules its writers always keep."""
    problems = {
        "RootPath": "is empty" if not m.root_path else "",
        "ManifestFileName": "is empty" if not m.manifest_file_name else "",
        "ByteSampleFileName": "is set without a data file" if m.byte_sample_file_name and not m.data_file_name else "",
        "EndKey": f"{printable(m.end_key)} is not after [BeginKey]" if m.begin_key >= m.end_key else "",
        "Version": "is negative" if m.version < 0 else "",
        "Bytes": "and [KeyCount] disagree on emptiness" if (m.total_bytes == 0) != (m.key_count == 0) else "",
        "DataFileName": "must be set exactly when [KeyCount] > 0"
        if bool(m.data_file_name) != (m.key_count > 0)
        else "",
        "ChecksumValue": _checksum_problem(m),
        "ByteSampleMethod": "is empty" if not m.byte_sample_method else "",
        "ByteSampleMinimalProbability": "is not in [0, 1]" if not 0 <= m.byte_sample_minimal_probability <= 1 else "",
        "loadType": f"must be {LOAD_TYPE_SST} (SST)" if m.load_type != LOAD_TYPE_SST else "",
        "TransportMethod": "must be 1 (CP) or 2 (BLOBSTORE)" if m.transport_method not in (1, 2) else "",
    }
    for name, problem in problems.items():
        if problem:
            raise _decode_error(what, f"[{name}] {problem}")
    for name, path in (
        ("RelativePath", m.relative_path),
        ("ManifestFileName", m.manifest_file_name),
        ("DataFileName", m.data_file_name),
        ("ByteSampleFileName", m.byte_sample_file_name),
    ):
        _check_path(path, name, what)


def _checksum_problem(m: BatchManifest) -> str:
    if not m.checksum_value and not m.checksum_method:
        return ""
    if not m.checksum_value or not m.checksum_method:
        return "and [ChecksumMethod] must both be set or both be empty"
    if not m.data_file_name:
        return "is set but there is no data file"
    if m.checksum_method == CHECKSUM_SHA256 and not _SHA256.fullmatch(m.checksum_value):
        return "is not 64 lowercase hex digits"
    return ""


_JOB_HEADER_FIELDS = ("FormatVersion", "ManifestCount")
_JOB_ENTRY_FIELDS = ("BeginKey", "EndKey", "ManifestRelativePath", "Version", "Bytes")


@dataclass(frozen=True, slots=True)
class JobManifestEntry:
    """One line of ``job-manifest.txt``: a batch's range, manifest path (from the root), version, bytes."""

    begin_key: bytes
    end_key: bytes
    manifest_relative_path: str
    version: int
    total_bytes: int

    @property
    def range(self) -> KeyRange:
        return KeyRange(self.begin_key, self.end_key)

    @classmethod
    def of(cls, m: BatchManifest) -> JobManifestEntry:
        return cls(m.begin_key, m.end_key, m.manifest_relative_path, m.version, m.total_bytes)

    def to_line(self) -> str:
        _validate_entry(self, "job manifest entry")
        values = (
            to_hex_plain(self.begin_key),
            to_hex_plain(self.end_key),
            self.manifest_relative_path,
            str(self.version),
            str(self.total_bytes),
        )
        return _join(_JOB_ENTRY_FIELDS, values, "job manifest entry")

    @classmethod
    def parse(cls, line: str, what: str = "job manifest entry") -> JobManifestEntry:
        v = _split(line, _JOB_ENTRY_FIELDS, what)
        e = cls(
            begin_key=_key(v[0], "BeginKey", what),
            end_key=_key(v[1], "EndKey", what),
            manifest_relative_path=v[2],
            version=_int(v[3], "Version", what),
            total_bytes=_int(v[4], "Bytes", what),
        )
        _validate_entry(e, what)
        return e


def _validate_entry(e: JobManifestEntry, what: str) -> None:
    if e.begin_key >= e.end_key:
        raise _decode_error(what, f"[EndKey] {printable(e.end_key)} is not after [BeginKey]")
    if e.version < 0:
        raise _decode_error(what, "[Version] is negative")
    if not e.manifest_relative_path:
        raise _decode_error(what, "[ManifestRelativePath] is empty")
    _check_path(e.manifest_relative_path, "ManifestRelativePath", what)


def format_job_manifest(entries: Iterable[JobManifestEntry]) -> str:
    """Header line, then the entries sorted by begin key; every line ends in ``\\n``."""
    ordered = sorted(entries, key=lambda e: e.begin_key)
    if not ordered:
        raise _decode_error("job manifest", "[ManifestCount] must be > 0")
    header = _join(_JOB_HEADER_FIELDS, (str(FORMAT_VERSION), str(len(ordered))), "job manifest")
    return "".join([header + "\n", *(e.to_line() + "\n" for e in ordered)])


def iter_job_manifest(source: ByteSource, chunk_size: int = 64 * 1024) -> Iterator[JobManifestEntry]:
    """Entries of a job manifest, read in chunks; empty lines are skipped, the last newline is optional.

    Stricter than FDB: the entry count must equal ``[ManifestCount]`` (a cut-off file fails here).
    """
    what = source.name
    expected: int | None = None
    count = 0
    for line in _lines(source, chunk_size):
        if expected is None:
            expected = _int(_split(line, _JOB_HEADER_FIELDS, f"{what} header")[1], "ManifestCount", what, 1)
            continue
        count += 1
        yield JobManifestEntry.parse(line, f"{what} line {count + 1}")
    if expected is None:
        raise _decode_error(what, "has no header line")
    if count != expected:
        raise _decode_error(what, f"[ManifestCount] is {expected} but the file has {count} entries")


def _lines(source: ByteSource, chunk_size: int) -> Iterator[str]:
    leftover = b""
    for _, chunk in source.blocks(chunk_size):
        *lines, leftover = (leftover + chunk).split(b"\n")
        yield from (_text(line, source.name) for line in lines if line)
    if leftover:
        yield _text(leftover, source.name)


def parse_job_manifest(text: str, name: str = JOB_MANIFEST_NAME) -> list[JobManifestEntry]:
    return list(iter_job_manifest(BytesSource(text.encode("utf-8"), name)))


def check_contiguous(entries: Iterable[JobManifestEntry]) -> KeyRange:
    """The range a job's entries cover; each entry must end where the next (by begin key) begins."""
    ordered = sorted(entries, key=lambda e: e.begin_key)
    if not ordered:
        raise errors.BulkloadDatasetNotCoverRequiredRange("the job manifest has no entries")
    for prev, nxt in itertools.pairwise(ordered):
        if prev.end_key != nxt.begin_key:
            kind = "gap" if prev.end_key < nxt.begin_key else "overlap"
            raise errors.BulkloadDatasetNotCoverRequiredRange(
                f"{kind} between {printable(prev.end_key)} and {printable(nxt.begin_key)} in the job manifest"
            )
    return KeyRange(ordered[0].begin_key, ordered[-1].end_key)


def entries_covering(entries: Iterable[JobManifestEntry], load_range: KeyRange) -> list[JobManifestEntry]:
    """The entries overlapping ``load_range``, sorted; they must cover it exactly, without gaps or overlaps
    (FDB 8.0 checks only the outer bounds; a gap inside would lose data silently)."""
    overlapping = sorted((e for e in entries if e.range.intersects(load_range)), key=lambda e: e.begin_key)
    if not overlapping:
        raise errors.BulkloadDatasetNotCoverRequiredRange(f"no dataset entry overlaps {load_range}")
    covered = check_contiguous(overlapping)
    if not covered.contains_range(load_range):
        raise errors.BulkloadDatasetNotCoverRequiredRange(f"the dataset covers {covered}, not all of {load_range}")
    return overlapping
