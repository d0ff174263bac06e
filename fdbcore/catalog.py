"""What a backup container holds and what it can restore (FDB's ``describeBackup``/``getRestoreSet``).

Differences from FDB 8.0, each deliberate (``fdb-formats.md`` §6):

- A snapshot's type comes from its content (a ``bulkDumpJobId`` means BulkDump), not from FDB's
  name-suffix check, which never matches; ``describe`` therefore prints the right ``type=``.
- A range-file restore never selects a BulkDump snapshot (FDB can, and then restores no range data);
  a BulkLoad restore only selects BulkDump snapshots.
- Restorability is computed per snapshot from its own begin version, and every restore range must
  lie inside what the chosen snapshot covers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.container.base import BackupContainer
from fdbcore.formats.properties import (
    EncryptionMetadata,
    format_version_property,
    parse_encryption_metadata,
    parse_version_property,
)
from fdbcore.formats.snapshot_manifest import (
    BulkDumpSnapshotManifest,
    SnapshotManifest,
    parse_snapshot_manifest,
)
from fdbcore.keys import KeyRange, from_hex_plain, normalize_ranges, subtract, to_hex_plain
from fdbcore.logcoverage import drop_subset_duplicates, partitioned_continuous_end, v1_chain
from fdbcore.modes import RestoreMode, SnapshotKind

MUTATION_LOG_DEFAULT, MUTATION_LOG_PARTITIONED = 0, 1
#: The content of ``properties/log_checksums`` in a backup that records every log file's SHA-256.
LOG_CHECKSUM_ALGORITHM = b"sha256"


@dataclass(frozen=True, slots=True)
class RangeFileRef:
    path: str
    size: int
    version: int
    block_size: int
    #: From the snapshot manifest's ``keyRanges`` (None for old manifests without them).
    key_range: KeyRange | None = None


@dataclass(frozen=True, slots=True)
class LogFileRef:
    path: str
    size: int
    begin: int
    end: int
    block_size: int
    tag: int | None
    total_tags: int | None
    partitioned: bool


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    path: str
    begin_version: int
    end_version: int
    total_bytes: int
    kind: SnapshotKind
    manifest: SnapshotManifest | BulkDumpSnapshotManifest
    #: Exclusive end of the logs continuous from ``begin_version`` (None: no such logs).
    log_end: int | None = None
    #: What ``describe --deep`` found missing or wrong in the files the snapshot names (None: intact,
    #: or not checked).
    damage: str | None = None

    @property
    def restorable(self) -> bool:
        return self.max_restorable is not None

    @property
    def max_restorable(self) -> int | None:
        """The newest version this snapshot restores to, or None if it cannot be restored."""
        if self.damage is not None:
            return None
        if self.log_end is not None and self.log_end > self.end_version:
            return self.log_end - 1
        if self.begin_version == self.end_version:
            return self.end_version
        return None

    def covered_ranges(self) -> list[KeyRange]:
        """Key ranges whose data the snapshot holds (empty for range-file manifests without keyRanges)."""
        if isinstance(self.manifest, BulkDumpSnapshotManifest):
            return normalize_ranges(self.manifest.ranges)
        return normalize_ranges(self.manifest.key_ranges.values())

    def expired_pct(self, expired_end: int | None) -> float:
        if expired_end is None or expired_end <= self.begin_version:
            return 0.0
        if expired_end >= self.end_version:
            return 100.0
        return 100.0 * (expired_end - self.begin_version) / (self.end_version - self.begin_version)


@dataclass(frozen=True)
class Description:
    """The facts ``fdbbackup describe`` prints."""

    url: str
    snapshots: list[SnapshotRef]
    mutation_log_type: int
    encryption: EncryptionMetadata
    expired_end: int | None
    unreliable_end: int | None
    min_log_begin: int | None
    contiguous_log_end: int | None
    max_log_end: int | None
    partitions: dict[int, KeyRange] | None = None

    @property
    def snapshot_bytes(self) -> int:
        return sum(s.total_bytes for s in self.snapshots)

    def restorable_range(self, kind: SnapshotKind | None = None) -> tuple[int, int] | None:
        """``(min, max)`` restorable versions, over all snapshots or those of one kind."""
        points = [
            (s.end_version, s.max_restorable)
            for s in self.snapshots
            if s.max_restorable is not None and (kind is None or s.kind == kind)
        ]
        if not points:
            return None
        return min(p[0] for p in points), max(p[1] for p in points if p[1] is not None)

    @property
    def min_restorable(self) -> int | None:
        r = self.restorable_range()
        return r[0] if r else None

    @property
    def max_restorable(self) -> int | None:
        r = self.restorable_range()
        return r[1] if r else None


@dataclass(frozen=True)
class RestoreSet:
    """Everything a restore to ``target_version`` reads."""

    target_version: int
    #: None for a logs-only (``--incremental``) restore.
    snapshot: SnapshotRef | None
    #: Range files to load (range-file mode); empty in BulkLoad mode.
    range_files: list[RangeFileRef]
    #: Log files with mutations in ``(begin_version, target_version]``, subset duplicates removed.
    log_files: list[LogFileRef]
    #: Smallest and largest snapshot version among the selected data (logs are needed from the first).
    begin_version: int
    end_version: int
    #: Tag -> key range when the partitioned logs are disjoint key-range partitions (written by us);
    #: None when tags must be merged into one ordered stream (FDB's backup workers, V1 logs).
    partitions: dict[int, KeyRange] | None = field(default=None)
    #: Every log file's SHA-256 is recorded (``logsums/``, ours); False for FDB's backups.
    log_checksums: bool = False


def encode_partition_map(partitions: dict[int, KeyRange]) -> bytes:
    doc = {
        "version": 1,
        "partitions": [
            {"tag": tag, "begin": to_hex_plain(r.begin), "end": to_hex_plain(r.end)}
            for tag, r in sorted(partitions.items())
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_partition_map(data: bytes, name: str) -> dict[int, KeyRange]:
    try:
        doc = json.loads(data)
        parts = {}
        for p in doc["partitions"]:
            parts[int(p["tag"])] = KeyRange(from_hex_plain(p["begin"]), from_hex_plain(p["end"]))
    except (ValueError, KeyError, TypeError, errors.FDBError) as exc:
        raise errors.BackupInvalidInfo(f"{name} is not a valid log partition map: {exc}") from None
    if sorted(parts) != list(range(len(parts))) or any(
        a.intersects(b) for i, a in enumerate(parts.values()) for b in list(parts.values())[i + 1 :]
    ):
        raise errors.BackupInvalidInfo(f"{name}: tags must be 0..N-1 with disjoint key ranges")
    return parts


class Catalog:
    """Read-only view of one backup container's files, computed on demand."""

    def __init__(self, container: BackupContainer) -> None:
        self.container = container

    # --- listings ---------------------------------------------------------------------------------
    def range_files(self) -> list[RangeFileRef]:
        out = []
        for prefix in (naming.KVRANGES_PREFIX, naming.LEGACY_RANGES_PREFIX):
            for info in self.container.list(prefix):
                name = naming.parse_range_file_path(info.path)
                if name is not None:
                    out.append(RangeFileRef(info.path, info.size, name.version, name.block_size))
        return out

    def log_files(self) -> list[LogFileRef]:
        out = []
        for prefix in (naming.LOGS_PREFIX, naming.PLOGS_PREFIX):
            for info in self.container.list(prefix):
                n = naming.parse_log_file_path(info.path)
                if n is not None and n.partitioned == (prefix == naming.PLOGS_PREFIX):
                    ref = LogFileRef(
                        info.path, info.size, n.begin, n.end, n.block_size, n.tag, n.total_tags, n.partitioned
                    )
                    out.append(ref)
        return out

    def log_checksums_recorded(self) -> bool:
        """Whether the backup records every log file's SHA-256 (ours do; FDB's do not)."""
        path = naming.property_path(naming.LOG_CHECKSUMS)
        try:
            value = self.container.read(path)
        except errors.FileNotFound:
            if next(iter(self.container.list(naming.LOG_CHECKSUMS_PREFIX)), None) is not None:
                raise errors.RestoreCorruptedData(
                    f"{path} is missing, yet the backup records log checksums under {naming.LOG_CHECKSUMS_PREFIX}"
                ) from None
            return False
        if value.strip() != LOG_CHECKSUM_ALGORITHM:
            raise errors.RestoreCorruptedData(f"{path} names an unknown checksum: {value[:40]!r}")
        return True

    def lost_log_files(self, present: Sequence[LogFileRef]) -> list[naming.LogFileName]:
        """Log files whose SHA-256 was recorded but that are gone, leaving versions that no remaining
        file of their tag covers (a crashed writer's leftover record is covered by its successor)."""
        spans: dict[tuple[bool, int | None], list[tuple[int, int]]] = {}
        for f in present:
            spans.setdefault((f.partitioned, f.tag), []).append((f.begin, f.end))
        have = {f.path for f in present}
        lost = []
        for info in self.container.list(naming.LOG_CHECKSUMS_PREFIX):
            n = naming.parse_log_checksum_path(info.path)
            if n is not None and n.path not in have and not _covered(n.begin, n.end, spans.get((n.partitioned, n.tag))):
                lost.append(n)
        return lost

    def snapshots(self) -> list[SnapshotRef]:
        """Every snapshot manifest, parsed (a corrupt manifest raises), oldest end version first."""
        out = []
        for info in self.container.list(naming.SNAPSHOTS_PREFIX):
            n = naming.parse_snapshot_manifest_path(info.path)
            if n is None:
                continue
            manifest = parse_snapshot_manifest(
                self.container.read(info.path), n.begin_version, n.end_version, info.path
            )
            bulk = isinstance(manifest, BulkDumpSnapshotManifest)
            kind = SnapshotKind.BULKDUMP if bulk else SnapshotKind.RANGEFILE
            out.append(SnapshotRef(info.path, n.begin_version, n.end_version, n.total_bytes, kind, manifest))
        out.sort(key=lambda s: (s.end_version, s.begin_version, s.path))
        return out

    def _version_property(self, name: str) -> int | None:
        path = naming.property_path(name)
        try:
            return parse_version_property(self.container.read(path), path)
        except errors.FileNotFound:
            return None

    def partitions(self) -> dict[int, KeyRange] | None:
        path = naming.property_path(naming.LOG_PARTITION_MAP)
        try:
            return decode_partition_map(self.container.read(path), path)
        except errors.FileNotFound:
            return None

    def encryption(self) -> EncryptionMetadata:
        path = naming.property_path(naming.ENCRYPTION_METADATA)
        try:
            return parse_encryption_metadata(self.container.read(path), path)
        except errors.FileNotFound:
            return EncryptionMetadata()

    # --- describe ---------------------------------------------------------------------------------
    def describe(self, *, deep: bool = False) -> Description:
        """What the container holds; ``deep`` also checks that every file each snapshot names is
        there (range files; a BulkDump dataset's manifests and data files), marking the snapshot
        unrestorable with what is missing."""
        if next(iter(self.container.list("")), None) is None:
            raise errors.BackupDoesNotExist(f"no backup at {self.container.url}")
        expired_end = self._version_property(naming.EXPIRED_END_VERSION)
        unreliable_end = self._version_property(naming.UNRELIABLE_END_VERSION)
        floor = max(v for v in (expired_end, unreliable_end, 0) if v is not None)
        logs = [f for f in self.log_files() if f.end > floor]
        partitioned = [f for f in logs if f.partitioned]
        chain = _LogChains(partitioned or logs, bool(partitioned))
        snapshots = [
            _with(s, log_end=chain.end_from(s.begin_version), damage=self.snapshot_damage(s) if deep else None)
            for s in self.snapshots()
            if s.end_version > floor
        ]
        min_log_begin = min((f.begin for f in chain.files), default=None)
        first = chain.first_covered()
        return Description(
            url=self.container.url,
            snapshots=snapshots,
            mutation_log_type=MUTATION_LOG_PARTITIONED if partitioned else MUTATION_LOG_DEFAULT,
            encryption=self.encryption(),
            expired_end=expired_end,
            unreliable_end=unreliable_end,
            min_log_begin=min_log_begin,
            contiguous_log_end=chain.end_from(first) if first is not None else None,
            max_log_end=max((f.end for f in chain.files), default=None),
            partitions=self.partitions() if partitioned else None,
        )

    # --- restore ----------------------------------------------------------------------------------
    def restore_set(
        self,
        target_version: int | None,
        ranges: Sequence[KeyRange],
        mode: RestoreMode,
        *,
        snapshot_version: int | None = None,
    ) -> RestoreSet:
        """Choose the newest usable snapshot of the mode's kind and the logs to reach the target.

        ``target_version`` None means the newest restorable version for this mode. With
        ``snapshot_version``, only snapshots ending at or before it are candidates (``fdbrestore
        --snapshot-version``, like ``fdbbackup query --query-restore-snapshot-version``).
        """
        desc = self.describe()
        all_logs = self.log_files()
        checksummed = self.log_checksums_recorded()
        if checksummed:
            self._refuse_lost_logs(all_logs, desc, target_version)
        kind = mode.snapshot_kind
        span = desc.restorable_range(kind)
        if span is None:
            if mode == RestoreMode.BULKLOAD:
                raise errors.RestoreBulkloadDatasetIncomplete(
                    f"the backup at {desc.url} has no complete, restorable BulkDump dataset. "
                    "BulkDump dataset incomplete. Use --mode rangefile"
                )
            raise errors.RestoreMissingData(f"the backup at {desc.url} has no restorable range-file snapshot")
        target = span[1] if target_version is None else target_version
        if not span[0] <= target <= span[1]:
            raise errors.RestoreInvalidVersion(
                f"version {target} is not restorable with --mode {mode}: "
                f"the backup at {desc.url} restores versions {span[0]} through {span[1]}"
            )
        wanted = normalize_ranges(ranges)
        partitioned = desc.mutation_log_type == MUTATION_LOG_PARTITIONED
        logs = [f for f in all_logs if f.partitioned == partitioned]
        chain = _LogChains(logs, partitioned)
        if snapshot_version is not None and snapshot_version > target:
            raise errors.RestoreInvalidVersion(
                f"snapshot version {snapshot_version} is after the restore target version {target}"
            )
        newest = target if snapshot_version is None else snapshot_version
        for snap in sorted(desc.snapshots, key=lambda s: s.end_version, reverse=True):
            if snap.kind != kind or snap.end_version > newest or snap.max_restorable is None:
                continue
            if snap.max_restorable < target:
                continue
            _check_covered(snap, wanted)
            files, begin, end = self._snapshot_files(snap, wanted)
            if end > target:
                continue
            if begin == end == target:
                log_files: list[LogFileRef] = []
            else:
                log_end = chain.end_from(begin)
                if log_end is None or log_end <= target:
                    continue
                log_files = chain.needed(begin, target)
            return RestoreSet(target, snap, files, log_files, begin, end, desc.partitions, checksummed)
        at = "" if snapshot_version is None else f" from a snapshot ending by version {snapshot_version}"
        raise errors.RestoreMissingData(
            f"no {kind.value} snapshot and continuous logs of {desc.url} reach version {target}{at}"
        )

    def log_restore_set(self, begin_version: int | None, target_version: int | None) -> RestoreSet:
        """The logs of ``(begin_version, target_version]`` alone (FDB's logs-only ``--incremental``
        restore onto a destination already restored to ``begin_version``); ``begin_version`` None
        means from the first log, ``target_version`` None the end of the logs continuous from it."""
        desc = self.describe()
        all_logs = self.log_files()
        checksummed = self.log_checksums_recorded()
        if checksummed:
            self._refuse_lost_logs(all_logs, desc, target_version)
        partitioned = desc.mutation_log_type == MUTATION_LOG_PARTITIONED
        chain = _LogChains([f for f in all_logs if f.partitioned == partitioned], partitioned)
        begin = begin_version if begin_version is not None else chain.first_covered()
        log_end = chain.end_from(begin) if begin is not None else None
        if begin is None or log_end is None:
            raise errors.RestoreMissingData(f"no logs of {desc.url} begin at or before version {begin_version}")
        target = log_end - 1 if target_version is None else target_version
        if not begin <= target < log_end:
            raise errors.RestoreInvalidVersion(
                f"version {target} is not restorable from the logs alone: the logs of {desc.url} continuous "
                f"from version {begin} reach version {log_end - 1}"
            )
        return RestoreSet(target, None, [], chain.needed(begin, target), begin, begin, desc.partitions, checksummed)

    def snapshot_damage(self, snap: SnapshotRef) -> str | None:
        """What is missing among the files ``snap`` names, from listings (None: all there). Content is
        proven later, by the restore's verify tasks."""
        if isinstance(snap.manifest, BulkDumpSnapshotManifest):
            return self._dataset_damage(snap.manifest)
        present = {f.path for f in self.range_files()}
        missing = [p for p in snap.manifest.files if p not in present]
        return f"range file {missing[0]} is missing" if missing else None

    def _dataset_damage(self, manifest: BulkDumpSnapshotManifest) -> str | None:
        try:
            entries = ds.read_job_manifest(self.container, manifest.job_id)
        except errors.RestoreBulkloadDatasetIncomplete as exc:
            return exc.message
        folder = ds.in_root(naming.bulkdump_job_dir(manifest.job_id)) + "/"
        present = {info.path for info in self.container.list(folder)}
        for e in entries:
            path = ds.in_root(e.manifest_relative_path)
            if path not in present:
                return f"batch manifest {path} is missing"
            data = f"{path.rsplit('/', 1)[0]}/{naming.bulkdump_data_name(e.version)}"
            if e.total_bytes and data not in present:
                return f"data file {data} is missing"
        return None

    def _refuse_lost_logs(self, logs: Sequence[LogFileRef], desc: Description, target: int | None) -> None:
        """A deleted log file shortens the chain, which would quietly lower the newest restorable
        version; the recorded checksums show it is gone, so name it instead."""
        floor = max(v for v in (desc.expired_end, desc.unreliable_end, 0) if v is not None)
        for n in self.lost_log_files(logs):
            if n.end > floor and (target is None or n.begin <= target):
                raise errors.RestoreMissingData(
                    f"log file {n.path} is missing: the backup recorded it, and no other file holds "
                    f"versions [{n.begin}, {n.end}) of its tag"
                )

    def _snapshot_files(self, snap: SnapshotRef, wanted: list[KeyRange]) -> tuple[list[RangeFileRef], int, int]:
        if isinstance(snap.manifest, BulkDumpSnapshotManifest):
            return [], snap.begin_version, snap.end_version
        sizes = {f.path: f for f in self.range_files()}
        files = []
        for path in snap.manifest.files:
            ref = sizes.get(path)
            if ref is None:
                raise errors.RestoreMissingData(f"range file {path} listed in {snap.path} is missing")
            key_range = snap.manifest.key_ranges.get(path)
            if key_range is not None and not any(key_range.intersects(w) for w in wanted):
                continue
            files.append(RangeFileRef(ref.path, ref.size, ref.version, ref.block_size, key_range))
        if not files:
            raise errors.BackupNotOverlappedWithKeysFilter(
                f"no range file of {snap.path} intersects the requested key ranges"
            )
        if not snap.manifest.key_ranges:
            return files, snap.begin_version, snap.end_version
        return files, min(f.version for f in files), max(f.version for f in files)


def _check_covered(snap: SnapshotRef, wanted: Iterable[KeyRange]) -> None:
    covered = snap.covered_ranges()
    if not covered:
        return  # an old manifest without per-file ranges: FDB restores all its files
    missing = subtract(wanted, covered)
    if missing:
        raise errors.RestoreMissingData(
            f"snapshot {snap.path} does not contain key range {missing[0]} requested for restore"
        )


def _with(s: SnapshotRef, *, log_end: int | None, damage: str | None) -> SnapshotRef:
    return SnapshotRef(s.path, s.begin_version, s.end_version, s.total_bytes, s.kind, s.manifest, log_end, damage)


def _covered(begin: int, end: int, spans: Sequence[tuple[int, int]] | None) -> bool:
    """``[begin, end)`` lies within the union of ``spans``."""
    pos = begin
    for b, e in sorted(spans or ()):
        if b > pos:
            break
        pos = max(pos, e)
    return pos >= end


class _LogChains:
    """Continuity queries over one kind of logs (partitioned or V1)."""

    def __init__(self, files: Sequence[LogFileRef], partitioned: bool) -> None:
        self.partitioned = partitioned
        if partitioned:
            self.files = drop_subset_duplicates(files)
        else:
            self.files = sorted(files, key=lambda f: (f.begin, f.end))

    def first_covered(self) -> int | None:
        """The first version the logs cover: for partitioned logs, the first every tag covers (each
        partition's capture starts at its own version)."""
        if not self.partitioned:
            return min((f.begin for f in self.files), default=None)
        firsts: dict[int | None, int] = {}
        for f in self.files:
            firsts[f.tag] = min(firsts.get(f.tag, f.begin), f.begin)
        return max(firsts.values(), default=None)

    def end_from(self, begin: int) -> int | None:
        if self.partitioned:
            return partitioned_continuous_end(self.files, begin)
        found = v1_chain(self.files, begin)
        return found[1] if found else None

    def needed(self, begin: int, target: int) -> list[LogFileRef]:
        """Files holding mutations in ``(begin, target]`` (the chain for V1)."""
        if self.partitioned:
            return [f for f in self.files if f.end > begin and f.begin <= target]
        found = v1_chain(self.files, begin, target)
        return found[0] if found else []


# --- expire --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpireResult:
    requested_end: int
    actual_end: int
    deleted_files: int


def expire(
    container: BackupContainer, end_version: int, *, restorable_after: int | None = None, force: bool = False
) -> ExpireResult:
    """Delete data before ``end_version`` (FDB's ``expireData``), keeping the backup restorable.

    Refused (``backup_cannot_expire``) unless a restorable snapshot begins at or after the cutoff and
    ends by ``restorable_after`` — or ``force``. A cutoff inside a log file moves back to that file's
    begin (per tag, so no tag loses continuity). A snapshot that begins before the cutoff can no longer
    be restored (its first logs go), so it goes whole: its manifest, every range file it names, or its
    BulkDump dataset; every snapshot beginning at or after the cutoff keeps all its files and the logs
    from its begin on. ``unreliable_end_version`` is written before anything is deleted and
    ``expired_end_version`` after.
    """
    catalog = Catalog(container)
    desc = catalog.describe()
    limit = restorable_after if restorable_after is not None else 2**63 - 1
    if limit < end_version:
        raise errors.BackupCannotExpire(
            f"restorability after version {limit} is impossible once data before {end_version} is deleted"
        )
    if desc.expired_end is not None and end_version <= desc.expired_end:
        return ExpireResult(end_version, desc.expired_end, 0)
    keeps = any(s.restorable and s.begin_version >= end_version and s.end_version <= limit for s in desc.snapshots)
    if not keeps and not force:
        raise errors.BackupCannotExpire(
            f"no restorable snapshot begins at or after version {end_version}"
            + (f" and ends by {limit}" if restorable_after is not None else "")
            + "; expiring would leave the backup unrestorable (use --force to expire anyway)"
        )
    logs = catalog.log_files()
    cutoff = end_version
    for f in logs:
        if f.begin < end_version < f.end:
            cutoff = min(cutoff, f.begin)
    doomed_logs = [f.path for f in logs if f.end <= cutoff]
    gone_snapshots = [s for s in catalog.snapshots() if s.begin_version < cutoff]
    kept_files = {p for s in catalog.snapshots() if s.begin_version >= cutoff for p in _range_files_of(s)}
    gone_files = {p for s in gone_snapshots for p in _range_files_of(s)}
    doomed = list(doomed_logs)
    doomed += [f.path for f in catalog.range_files() if f.path in gone_files or (f.version < cutoff)]
    doomed = [p for p in doomed if p not in kept_files]
    doomed += [s.path for s in gone_snapshots]
    unreliable = naming.property_path(naming.UNRELIABLE_END_VERSION)
    if (desc.unreliable_end or 0) < cutoff:
        container.write(unreliable, format_version_property(cutoff))
    for path in doomed:
        container.delete(path)
    for path in doomed_logs:  # after its log file: a record without its file below the floor is harmless
        container.delete(naming.log_checksum_path(path))
    deleted = len(doomed)
    for s in gone_snapshots:
        if isinstance(s.manifest, BulkDumpSnapshotManifest):
            deleted += container.delete_prefix(f"{naming.BULKDUMP_ROOT}/{naming.bulkdump_job_dir(s.manifest.job_id)}/")
    container.write(naming.property_path(naming.EXPIRED_END_VERSION), format_version_property(cutoff))
    return ExpireResult(end_version, cutoff, deleted)


def _range_files_of(snap: SnapshotRef) -> tuple[str, ...]:
    return () if isinstance(snap.manifest, BulkDumpSnapshotManifest) else snap.manifest.files
