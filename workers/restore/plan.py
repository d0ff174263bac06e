"""The restore plan: every file a restore reads, resolved once from the container by ``fdbrestore``.

The producer resolves the restore set (the newest snapshot of the mode's kind at or before the
target, and the logs from it to the target) while checking the request, and hands the result on:
the plan is stored beside the restore's record and never changes, so the agents never list the
container again and every task of the restore works from the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors
from fdbcore.catalog import Catalog, LogFileRef, RangeFileRef, RestoreSet
from fdbcore.container.base import BackupContainer
from fdbcore.formats.bulkdump_manifest import JobManifestEntry
from fdbcore.formats.snapshot_manifest import BulkDumpSnapshotManifest
from fdbcore.keys import KeyRange, VersionedRange, covers_exactly
from fdbcore.modes import RestoreMode, SnapshotKind
from workers import codecs
from workers.restore import bulkload, verify


@dataclass(frozen=True)
class RestorePlan:
    mode: RestoreMode
    target_version: int
    snapshot_path: str
    #: Smallest and largest snapshot version among the selected data.
    snapshot_begin: int
    snapshot_end: int
    #: The backup has a BulkDump snapshot (for the ``RestoreSnapshotMethodSelected`` trace event).
    bulkload_available: bool
    #: Range files to load (range-file mode), or BulkLoad groups of batch manifests (BulkLoad mode).
    range_files: list[RangeFileRef] = field(default_factory=list)
    bulkdump_job_id: str = ""
    groups: list[list[JobManifestEntry]] = field(default_factory=list)
    #: Source key space piece -> the version its data is at after the snapshot phase.
    version_map: list[VersionedRange] = field(default_factory=list)
    #: Independent replay streams of log files.
    streams: list[list[LogFileRef]] = field(default_factory=list)
    verify_units: list[verify.Unit] = field(default_factory=list)
    #: Every log file's SHA-256 is recorded (``logsums/``).
    log_checksums: bool = False

    @property
    def logs_only(self) -> bool:
        """``--incremental``: no snapshot, only the logs after a version onto a destination restored before."""
        return not self.snapshot_path

    @property
    def snapshot_tasks(self) -> int:
        return len(self.range_files) if self.mode == RestoreMode.RANGEFILE else len(self.groups)

    @property
    def blocks_total(self) -> int:
        return sum(-(-f.size // f.block_size) for f in self.range_files)

    @property
    def log_file_bytes(self) -> int:
        return sum(f.size for s in self.streams for f in s)

    def to_json(self) -> str:
        return json.dumps(
            {
                "mode": self.mode.value,
                "target_version": self.target_version,
                "snapshot_path": self.snapshot_path,
                "snapshot_begin": self.snapshot_begin,
                "snapshot_end": self.snapshot_end,
                "bulkload_available": self.bulkload_available,
                "range_files": [codecs.range_file_to_json(f) for f in self.range_files],
                "bulkdump_job_id": self.bulkdump_job_id,
                "groups": [[e.to_line() for e in g] for g in self.groups],
                "version_map": codecs.versioned_to_json(self.version_map),
                "streams": [[codecs.log_file_to_json(f) for f in s] for s in self.streams],
                "verify_units": self.verify_units,
                "log_checksums": self.log_checksums,
            }
        )

    @staticmethod
    def from_json(text: str | bytes) -> RestorePlan:
        d: dict[str, Any] = json.loads(text)
        return RestorePlan(
            mode=RestoreMode(d["mode"]),
            target_version=int(d["target_version"]),
            snapshot_path=d["snapshot_path"],
            snapshot_begin=int(d["snapshot_begin"]),
            snapshot_end=int(d["snapshot_end"]),
            bulkload_available=bool(d["bulkload_available"]),
            range_files=[codecs.range_file_from_json(f) for f in d["range_files"]],
            bulkdump_job_id=d["bulkdump_job_id"],
            groups=[[JobManifestEntry.parse(line) for line in g] for g in d["groups"]],
            version_map=codecs.versioned_from_json(d["version_map"]),
            streams=[[codecs.log_file_from_json(f) for f in s] for s in d["streams"]],
            verify_units=d["verify_units"],
            log_checksums=bool(d["log_checksums"]),
        )


@dataclass(frozen=True)
class Selection:
    """How ``fdbrestore start`` chose what to restore (its options beyond the target version)."""

    #: ``--snapshot-version``: only snapshots ending at or before it.
    snapshot_version: int | None = None
    #: ``--incremental``: logs only, after this version (None: from the first log).
    incremental: bool = False
    begin_version: int | None = None
    #: ``--inconsistent-snapshot-only``: the snapshot's files alone, no logs.
    snapshot_only: bool = False


def build(
    container: BackupContainer,
    target_version: int | None,
    ranges: list[KeyRange],
    mode: RestoreMode,
    selection: Selection = Selection(),
) -> RestorePlan:
    """Resolve the restore set and cut it into the restore's tasks; raises when it cannot be done.

    A chosen snapshot found damaged or incomplete here (a BulkDump dataset file missing, a recorded
    checksum not matching) is refused with the error naming it, and the message says which older
    snapshot of the same kind could restore the target instead, for ``--snapshot-version``: an older
    snapshot means replaying more logs, so it is used only when asked for.
    """
    catalog = Catalog(container)
    if selection.incremental:
        return _plan(catalog, catalog.log_restore_set(selection.begin_version, target_version), ranges, mode, False)
    rs = catalog.restore_set(target_version, ranges, mode, snapshot_version=selection.snapshot_version)
    try:
        return _plan(catalog, rs, ranges, mode, selection.snapshot_only)
    except errors.FDBError as exc:
        if exc.category != errors.Category.INTEGRITY or rs.snapshot is None:
            raise
        hint = _older_snapshot_hint(catalog, rs, ranges, mode, selection.snapshot_only)
        raise type(exc)(f"{exc.message}. {hint}") from None


def _older_snapshot_hint(
    catalog: Catalog, rs: RestoreSet, ranges: list[KeyRange], mode: RestoreMode, snapshot_only: bool
) -> str:
    """Which older snapshot of the same kind could restore ``rs``'s target, and how to ask for it."""
    assert rs.snapshot is not None
    kind = "BulkDump" if mode == RestoreMode.BULKLOAD else "range-file"
    other = " or use --mode rangefile" if mode == RestoreMode.BULKLOAD else ""
    none = f"No older {kind} snapshot can restore version {rs.target_version}" + other.replace(" or", ";")
    snap = rs.snapshot
    while True:
        try:
            older = catalog.restore_set(rs.target_version, ranges, mode, snapshot_version=snap.end_version - 1)
        except errors.FDBError:
            return none
        assert older.snapshot is not None
        snap = older.snapshot
        try:
            _plan(catalog, older, ranges, mode, snapshot_only)
        except errors.FDBError as exc:
            if exc.category == errors.Category.INTEGRITY:
                continue  # damaged as well: look further back
            return none
        return (
            f"The older {kind} snapshot {snap.path} (endVersion {snap.end_version}) can restore version "
            f"{rs.target_version}, replaying the logs from version {older.begin_version}: "
            f"pass --snapshot-version {snap.end_version} to use it{other}"
        )


def _plan(
    catalog: Catalog, rs: RestoreSet, ranges: list[KeyRange], mode: RestoreMode, snapshot_only: bool
) -> RestorePlan:
    container = catalog.container
    snap = rs.snapshot
    bulkload_available = any(s.kind == SnapshotKind.BULKDUMP for s in catalog.snapshots())
    checksums = dict(snap.manifest.checksums) if snap is not None else {}
    if snapshot_only:  # FDB's --inconsistent-snapshot-only: each range as of its own file's version
        rs = replace(rs, target_version=rs.end_version, log_files=[])
    streams = _streams(rs)
    common: dict[str, Any] = {
        "mode": mode,
        "target_version": rs.target_version,
        "snapshot_path": snap.path if snap is not None else "",
        "snapshot_begin": rs.begin_version,
        "snapshot_end": rs.end_version,
        "bulkload_available": bulkload_available,
        "streams": streams,
        "log_checksums": rs.log_checksums,
    }
    units: list[verify.Unit]
    if snap is None:  # logs only: every key is as of the begin version already
        pieces = [VersionedRange(r, rs.begin_version) for r in ranges]
        units = []
        by_mode: dict[str, Any] = {}
    elif mode == RestoreMode.RANGEFILE:
        files = list(rs.range_files)
        unsummed = [f.path for f in files if checksums and f.path not in checksums]
        if unsummed:
            raise errors.RestoreCorruptedData(f"{snap.path} records no SHA-256 for range file {unsummed[0]}")
        pieces = _range_file_pieces(files, ranges)
        units = [["range", i, checksums.get(f.path, "")] for i, f in enumerate(files)]
        by_mode = {"range_files": files}
    else:
        assert isinstance(snap.manifest, BulkDumpSnapshotManifest)
        job_id = snap.manifest.job_id
        damage = catalog.snapshot_damage(snap)
        if damage is not None:
            raise ds.incomplete(damage)
        if checksums:
            verify.check_dataset_file(container, ds.job_manifest_path(job_id), checksums, "job manifest")
        entries = ds.select_entries(ds.read_job_manifest(container, job_id), ranges)
        groups = bulkload.groups(entries)
        units = [["group", i, _manifest_sums(g, checksums)] for i, g in enumerate(groups)]
        pieces = bulkload.version_pieces(entries, ranges)
        by_mode = {"bulkdump_job_id": job_id, "groups": groups}
    if not covers_exactly([p.range for p in pieces], ranges):
        raise errors.RestoreMissingData("the chosen snapshot does not cover every restore range")
    return RestorePlan(**common, **by_mode, version_map=pieces, verify_units=units + verify.log_units(streams))


def _manifest_sums(group: list[JobManifestEntry], checksums: dict[str, str]) -> dict[str, str]:
    paths = [ds.in_root(e.manifest_relative_path) for e in group]
    if checksums and any(p not in checksums for p in paths):
        raise ds.incomplete(f"the snapshot manifest records no SHA-256 for batch manifest {paths[0]}")
    return {p: checksums[p] for p in paths if p in checksums}


def _range_file_pieces(files: list[RangeFileRef], ranges: list[KeyRange]) -> list[VersionedRange]:
    out = []
    for f in files:
        if f.key_range is None:
            raise errors.RestoreCorruptedData(f"range file {f.path} has no key range in its snapshot manifest")
        for r in ranges:
            part = f.key_range.intersection(r)
            if part is not None:
                out.append(VersionedRange(part, f.version))
    return out


def _streams(rs: RestoreSet) -> list[list[LogFileRef]]:
    """Independent replay streams: one per key-range partition (ours), else one merged stream."""
    if rs.partitions is None:
        return [rs.log_files] if rs.log_files else []
    by_tag: dict[int, list[LogFileRef]] = {}
    for f in rs.log_files:
        by_tag.setdefault(f.tag or 0, []).append(f)
    return [files for _, files in sorted(by_tag.items())]
