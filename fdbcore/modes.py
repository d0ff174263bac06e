"""Snapshot kinds and the ``--mode`` values of ``fdbbackup start`` and ``fdbrestore start``.

FDB 8.0 names them ``SnapshotMode`` (RANGEFILE 0, BULKDUMP 1, BOTH 2) and ``RestoreMode``
(RANGEFILE 0, BULKLOAD 1); here they are the option words themselves.
"""

from __future__ import annotations

from enum import StrEnum


class SnapshotKind(StrEnum):
    """What a snapshot manifest describes: range files, or a BulkDump dataset."""

    RANGEFILE = "rangefile"
    BULKDUMP = "bulkdump"


class SnapshotMode(StrEnum):
    """``fdbbackup start --mode``: which snapshot kinds a backup writes."""

    RANGEFILE = "rangefile"
    BULKDUMP = "bulkdump"
    BOTH = "both"

    @property
    def range_files(self) -> bool:
        return self in (SnapshotMode.RANGEFILE, SnapshotMode.BOTH)

    @property
    def bulkdump(self) -> bool:
        return self in (SnapshotMode.BULKDUMP, SnapshotMode.BOTH)


class RestoreMode(StrEnum):
    """``fdbrestore start --mode``: how the snapshot's data reaches the destination."""

    RANGEFILE = "rangefile"
    BULKLOAD = "bulkload"

    @property
    def snapshot_kind(self) -> SnapshotKind:
        """The only kind of snapshot this mode restores from."""
        return SnapshotKind.BULKDUMP if self == RestoreMode.BULKLOAD else SnapshotKind.RANGEFILE
