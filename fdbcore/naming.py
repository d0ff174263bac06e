"""Every name in a backup container, as format/parse pairs.

This is the only module that knows how FoundationDB names things inside a container
(``fdbclient/BackupContainerFileSystem.cpp``, ``BackupContainerBlobStore.cpp``,
``fdbserver/core/BulkDumpUtil.cpp``). Backends and callers compose paths from these functions and
never build key strings themselves, so the layout can be checked against FDB in one place.

Formatters validate their arguments (``ValueError``: a caller bug). Parsers return ``None`` for a
name that is not of their kind, because listings mix kinds, and look only at the base name, as FDB
does: the folder a file sits in does not change what it is.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from fdbcore.errors import BulkloadFilesetInvalidFilepath

MAX_VERSION: Final = 2**63 - 1
_MAX_UINT32: Final = 2**32 - 1
_MAX_INT32: Final = 2**31 - 1

# --- top-level folders ------------------------------------------------------------------------------
KVRANGES_PREFIX: Final = "kvranges/"
LEGACY_RANGES_PREFIX: Final = "ranges/"  # written by FDB < 6.0.16; read-only
LOGS_PREFIX: Final = "logs/"  # V1 mutation logs (backup agents)
PLOGS_PREFIX: Final = "plogs/"  # V2 partitioned mutation logs (backup workers)
SNAPSHOTS_PREFIX: Final = "snapshots/"
PROPERTIES_PREFIX: Final = "properties/"
BULKDUMP_ROOT: Final = "bulkdump_data"

#: Range files per ``kvranges/snapshot.<v>/<N>/`` folder.
RANGE_FILES_PER_FOLDER: Final = 5000


def _check_version(name: str, v: int) -> None:
    if not 0 <= v <= MAX_VERSION:
        raise ValueError(f"{name} must be a version in [0, 2**63), got {v}")


def _check_uid_field(uid: str) -> None:
    # Parsers read the UID field as "a run of non-comma characters"; '/' would change the folder.
    if not uid or "," in uid or "/" in uid:
        raise ValueError(f"uid must be non-empty without ',' or '/', got {uid!r}")


def _check_block_size(block_size: int) -> None:
    if not 0 < block_size <= _MAX_INT32:
        raise ValueError(f"block_size must be a positive int32, got {block_size}")


def _base_name(path: str) -> str:
    return path.rpartition("/")[2]


def _int64(text: str) -> int | None:
    v = int(text)
    return v if -(2**63) <= v <= MAX_VERSION else None


def _uint32(text: str) -> int | None:
    v = int(text)
    return v if v <= _MAX_UINT32 else None


def version_folder_string(version: int, smallest_bucket: int) -> str:
    """FDB's ``versionFolderString``: 19-digit version, last ``smallest_bucket`` digits dropped,
    ``/`` inserted four characters from the end (``78655645, 11 -> 0000/0000``)."""
    _check_version("version", version)
    if not 0 <= smallest_bucket < 14:
        raise ValueError(f"smallest_bucket must be in [0, 14), got {smallest_bucket}")
    digits = f"{version:019d}"[: 19 - smallest_bucket]
    return f"{digits[:-4]}/{digits[-4:]}"


# --- range (KV snapshot) files ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RangeFileName:
    path: str
    version: int
    uid: str
    block_size: int


_RANGE_RE = re.compile(r"range,(-?\d+),([^,]+),(\d+)", re.ASCII)


def snapshot_folder(snapshot_begin_version: int) -> str:
    """``kvranges/snapshot.<begin:018d>``: all range files of one snapshot (note the dot)."""
    _check_version("snapshot_begin_version", snapshot_begin_version)
    return f"{KVRANGES_PREFIX}snapshot.{snapshot_begin_version:018d}"


def range_file_path(snapshot_begin_version: int, file_index: int, version: int, uid: str, block_size: int) -> str:
    """Path of the ``file_index``-th range file of a snapshot, read at ``version``."""
    if file_index < 0:
        raise ValueError(f"file_index must be >= 0, got {file_index}")
    _check_version("version", version)
    _check_uid_field(uid)
    _check_block_size(block_size)
    folder = snapshot_folder(snapshot_begin_version)
    return f"{folder}/{file_index // RANGE_FILES_PER_FOLDER}/range,{version},{uid},{block_size}"


def parse_range_file_path(path: str) -> RangeFileName | None:
    """A range file in ``kvranges/`` or legacy ``ranges/``: base name ``range,<int64>,<uid>,<uint32>``."""
    m = _RANGE_RE.fullmatch(_base_name(path))
    if m is None:
        return None
    version, block_size = _int64(m[1]), _uint32(m[3])
    if version is None or block_size is None:
        return None
    return RangeFileName(path, version, m[2], block_size)


# --- mutation log files -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogFileName:
    path: str
    begin: int  # inclusive
    end: int  # exclusive
    uid: str
    block_size: int
    tag: int | None
    total_tags: int | None
    #: Written by a backup worker for one log router tag (V2, ``plogs/``).
    partitioned: bool


_LOG_V1_RE = re.compile(r"log,(-?\d+),(-?\d+),([^,]+),(\d+)", re.ASCII)
_LOG_V2_RE = re.compile(r"log,(-?\d+),(-?\d+),([^,]+),(\d+)-of-(-?\d+),(\d+)", re.ASCII)


def log_folder(version: int, *, partitioned: bool) -> str:
    """``logs/XXXX/XXXX/`` (or ``plogs/``) for logs beginning at ``version``; a folder spans 1e11 versions."""
    return f"{PLOGS_PREFIX if partitioned else LOGS_PREFIX}{version_folder_string(version, 11)}/"


def log_file_path(
    begin: int,
    end: int,
    uid: str,
    block_size: int,
    *,
    tag: int | None = None,
    total_tags: int | None = None,
) -> str:
    """A V1 log file, or a V2 partitioned one when ``tag``/``total_tags`` are given."""
    _check_version("begin", begin)
    _check_version("end", end)
    if end < begin:
        raise ValueError(f"log end {end} precedes begin {begin}")
    _check_uid_field(uid)
    _check_block_size(block_size)
    if (tag is None) != (total_tags is None):
        raise ValueError("tag and total_tags go together")
    if tag is None or total_tags is None:
        return f"{log_folder(begin, partitioned=False)}log,{begin},{end},{uid},{block_size}"
    if not 0 <= tag < total_tags <= _MAX_INT32:
        raise ValueError(f"need 0 <= tag < total_tags, got {tag}-of-{total_tags}")
    return f"{log_folder(begin, partitioned=True)}log,{begin},{end},{uid},{tag}-of-{total_tags},{block_size}"


def parse_log_file_path(path: str) -> LogFileName | None:
    """A V1 (``log,<b>,<e>,<uid>,<bs>``) or V2 (``log,<b>,<e>,<uid>,<t>-of-<n>,<bs>``) log file name."""
    name = _base_name(path)
    if m := _LOG_V1_RE.fullmatch(name):
        begin, end, block_size = _int64(m[1]), _int64(m[2]), _uint32(m[4])
        if begin is None or end is None or block_size is None:
            return None
        return LogFileName(path, begin, end, m[3], block_size, None, None, False)
    if m := _LOG_V2_RE.fullmatch(name):
        begin, end, block_size = _int64(m[1]), _int64(m[2]), _uint32(m[6])
        tag, total_tags = int(m[4]), int(m[5])
        if begin is None or end is None or block_size is None or max(tag, total_tags) > _MAX_INT32:
            return None
        return LogFileName(path, begin, end, m[3], block_size, tag, total_tags, True)
    return None


#: Our extension: ``logsums/<log file path>.sha256`` holds the SHA-256 of that log file (64 hex digits
#: and a newline). Outside ``logs/`` and ``plogs/``, so FDB's listings never see it.
LOG_CHECKSUMS_PREFIX: Final = "logsums/"
_LOG_CHECKSUM_SUFFIX: Final = ".sha256"


def log_checksum_path(log_path: str) -> str:
    """Where the SHA-256 of the log file ``log_path`` is recorded."""
    if parse_log_file_path(log_path) is None or not log_path.startswith((LOGS_PREFIX, PLOGS_PREFIX)):
        raise ValueError(f"not a log file path: {log_path!r}")
    return f"{LOG_CHECKSUMS_PREFIX}{log_path}{_LOG_CHECKSUM_SUFFIX}"


def parse_log_checksum_path(path: str) -> LogFileName | None:
    """The log file whose SHA-256 ``path`` records, or None when ``path`` is not such a record."""
    if not (path.startswith(LOG_CHECKSUMS_PREFIX) and path.endswith(_LOG_CHECKSUM_SUFFIX)):
        return None
    log_path = path[len(LOG_CHECKSUMS_PREFIX) : -len(_LOG_CHECKSUM_SUFFIX)]
    if not log_path.startswith((LOGS_PREFIX, PLOGS_PREFIX)):
        return None
    return parse_log_file_path(log_path)


# --- snapshot manifests -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SnapshotManifestName:
    path: str
    begin_version: int
    end_version: int
    total_bytes: int
    #: The optional fourth field (``bulk`` or ``range`` on FDB 8.0); ``""`` when absent.
    snapshot_type: str


_SNAPSHOT_RE = re.compile(r"snapshot,(-?\d+),(-?\d+),(-?\d+)(?:,([^,]{1,63}))?", re.ASCII)


def snapshot_manifest_path(begin_version: int, end_version: int, total_bytes: int, suffix: str = "") -> str:
    """``snapshots/snapshot,<min>,<max>,<bytes>[,<suffix>]``."""
    _check_version("begin_version", begin_version)
    _check_version("end_version", end_version)
    if not 0 <= total_bytes <= MAX_VERSION:
        raise ValueError(f"total_bytes must be a non-negative int64, got {total_bytes}")
    if suffix and not re.fullmatch(r"[^,/]{1,63}", suffix):
        raise ValueError(f"suffix must be 1-63 characters without ',' or '/', got {suffix!r}")
    tail = f",{suffix}" if suffix else ""
    return f"{SNAPSHOTS_PREFIX}snapshot,{begin_version},{end_version},{total_bytes}{tail}"


def parse_snapshot_manifest_path(path: str) -> SnapshotManifestName | None:
    m = _SNAPSHOT_RE.fullmatch(_base_name(path))
    if m is None:
        return None
    begin, end, total = _int64(m[1]), _int64(m[2]), _int64(m[3])
    if begin is None or end is None or total is None:
        return None
    return SnapshotManifestName(path, begin, end, total, m[4] or "")


# --- properties -------------------------------------------------------------------------------------
LOG_BEGIN_VERSION: Final = "log_begin_version"
LOG_END_VERSION: Final = "log_end_version"
EXPIRED_END_VERSION: Final = "expired_end_version"
UNRELIABLE_END_VERSION: Final = "unreliable_end_version"
MUTATION_LOG_TYPE: Final = "mutation_log_type"
ENCRYPTION_METADATA: Final = "encryption_metadata"
#: Our extension: JSON listing the key range of each ``plogs/`` tag when tags are disjoint key-range
#: partitions (which lets restore replay tags independently). FDB reads only the names above.
LOG_PARTITION_MAP: Final = "log_partition_map"
#: Our extension: present (``sha256``) when every log file of the backup has its SHA-256 recorded under
#: :data:`LOG_CHECKSUMS_PREFIX`; written before the first log file.
LOG_CHECKSUMS: Final = "log_checksums"
PROPERTY_NAMES: Final = frozenset(
    {
        LOG_PARTITION_MAP,
        LOG_CHECKSUMS,
        LOG_BEGIN_VERSION,
        LOG_END_VERSION,
        EXPIRED_END_VERSION,
        UNRELIABLE_END_VERSION,
        MUTATION_LOG_TYPE,
        ENCRYPTION_METADATA,
    }
)


def property_path(name: str) -> str:
    """``properties/<name>`` for one of :data:`PROPERTY_NAMES`."""
    if name not in PROPERTY_NAMES:
        raise ValueError(f"unknown backup property {name!r}")
    return f"{PROPERTIES_PREFIX}{name}"


# --- file-level encryption --------------------------------------------------------------------------
class Sealing(StrEnum):
    """How a file is stored when a backup is encrypted (see :mod:`fdbcore.encryption`)."""

    #: ``properties/``: FDB keeps them plain, so ``describe`` can tell an encrypted backup without the key.
    PLAIN = "plain"
    #: Range, log and snapshot files: FDB's layout, salted by the base name up to its first ``.``.
    FDB = "fdb"
    #: Every other file (ours: BulkDump SSTs and manifests, ``logsums/``): a random 16-byte nonce, then
    #: blocks salted by the path and that nonce, because these names repeat.
    NONCED = "nonced"


def sealing(path: str) -> Sealing:
    """How ``path`` is stored in an encrypted backup."""
    if path.startswith(PROPERTIES_PREFIX):
        return Sealing.PLAIN
    fdb_kind = (
        (path.startswith((KVRANGES_PREFIX, LEGACY_RANGES_PREFIX)) and parse_range_file_path(path) is not None)
        or (path.startswith((LOGS_PREFIX, PLOGS_PREFIX)) and parse_log_file_path(path) is not None)
        or (path.startswith(SNAPSHOTS_PREFIX) and parse_snapshot_manifest_path(path) is not None)
    )
    return Sealing.FDB if fdb_kind else Sealing.NONCED


# --- BulkDump jobs (paths relative to the job root, e.g. BULKDUMP_ROOT) -----------------------------
JOB_MANIFEST_NAME: Final = "job-manifest.txt"


class BulkDumpFileKind(StrEnum):
    MANIFEST = "manifest.txt"
    DATA = "data.sst"
    SAMPLE = "sample.sst"


@dataclass(frozen=True, slots=True)
class BulkDumpFileName:
    path: str
    job_id: str
    task_id: str
    batch: int
    version: int
    kind: BulkDumpFileKind


_BATCH_RE = re.compile(r"[0-9]+")
_BULKDUMP_FILE_RE = re.compile(r"(-?\d+)-(manifest\.txt|data\.sst|sample\.sst)", re.ASCII)


def _check_uid(what: str, uid: str) -> None:
    if not is_uid(uid):
        raise ValueError(f"{what} must be 32 lowercase hex characters, got {uid!r}")


def bulkdump_job_dir(job_id: str) -> str:
    _check_uid("job_id", job_id)
    return job_id


def bulkdump_job_manifest_path(job_id: str) -> str:
    """``<job>/job-manifest.txt``, written last, once every task of the job is complete."""
    return f"{bulkdump_job_dir(job_id)}/{JOB_MANIFEST_NAME}"


def bulkdump_task_dir(job_id: str, task_id: str) -> str:
    _check_uid("task_id", task_id)
    return f"{bulkdump_job_dir(job_id)}/{task_id}"


def bulkdump_batch_dir(job_id: str, task_id: str, batch: int) -> str:
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    return f"{bulkdump_task_dir(job_id, task_id)}/{batch}"


def _bulkdump_name(version: int, kind: BulkDumpFileKind) -> str:
    _check_version("version", version)
    return f"{version}-{kind.value}"


def bulkdump_manifest_name(version: int) -> str:
    return _bulkdump_name(version, BulkDumpFileKind.MANIFEST)


def bulkdump_data_name(version: int) -> str:
    return _bulkdump_name(version, BulkDumpFileKind.DATA)


def bulkdump_sample_name(version: int) -> str:
    return _bulkdump_name(version, BulkDumpFileKind.SAMPLE)


def parse_bulkdump_path(path: str) -> BulkDumpFileName | None:
    """A ``<job>/<task>/<batch>/<v>-(manifest.txt|data.sst|sample.sst)`` path.

    Only the last four components are read, so a path may carry its root
    (``bulkdump_data/<job>/...``) or not.
    """
    parts = path.split("/")
    if len(parts) < 4:
        return None
    job_id, task_id, batch, name = parts[-4:]
    m = _BULKDUMP_FILE_RE.fullmatch(name)
    if m is None or not is_uid(job_id) or not is_uid(task_id) or not _BATCH_RE.fullmatch(batch):
        return None
    version = _int64(m[1])
    if version is None:
        return None
    return BulkDumpFileName(path, job_id, task_id, int(batch), version, BulkDumpFileKind(m[2]))


def within_root(root: str, rel: str) -> str:
    """Join a root and a relative path, refusing paths that would escape the root.

    Relative paths come from manifests stored in the container, so FDB 8.0 rejects absolute ones
    and ``..`` components (``bulkLoadPathIsContained``); so do we.
    """
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BulkloadFilesetInvalidFilepath(f"path {rel!r} is not a plain relative path")
    root = root.rstrip("/")
    return f"{root}/{rel}" if root else rel


# --- blobstore object keys --------------------------------------------------------------------------
BLOBSTORE_DATA_FOLDER: Final = "data"
BLOBSTORE_INDEX_FOLDER: Final = "backups"


def blobstore_data_prefix(name: str) -> str:
    """Key prefix holding a blobstore backup's files: ``data/<name>/``."""
    return f"{BLOBSTORE_DATA_FOLDER}/{name.rstrip('/')}/"


def blobstore_index_key(name: str) -> str:
    """The empty object whose presence marks that a backup named ``name`` exists."""
    return f"{BLOBSTORE_INDEX_FOLDER}/{name}"


# --- local directories ------------------------------------------------------------------------------
_PARTIAL_SUFFIXES: Final = (".temp", ".part")


def local_temp_path(path: str) -> str:
    """``<path>.<uid>.temp``: where a local file is written before it is renamed into place."""
    return f"{path}.{new_uid()}.temp"


def is_partial_name(name: str) -> bool:
    """A name an unfinished local write would have; listings hide these."""
    return name.endswith(_PARTIAL_SUFFIXES)


# --- identifiers and timestamps ---------------------------------------------------------------------
_UID_RE = re.compile(r"[0-9a-f]{32}")


def new_uid() -> str:
    """A random UID as FDB's ``UID.toString()`` prints it: 32 lowercase hex characters."""
    return secrets.token_hex(16)


def is_uid(s: str) -> bool:
    return _UID_RE.fullmatch(s) is not None


def backup_folder_name(when: datetime) -> str:
    """``backup-YYYY-MM-DD-HH-MM-SS.ffffff`` in local time, the folder ``fdbbackup start`` adds to
    ``file://`` URLs. Naive datetimes are taken to be local already."""
    local = when.astimezone() if when.tzinfo is not None else when
    return f"backup-{local:%Y-%m-%d-%H-%M-%S}.{local.microsecond:06d}"
