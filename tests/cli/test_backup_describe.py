"""``fdbbackup describe`` text: the per-method notes FDB does not print."""

from __future__ import annotations

from cli.backup_describe import to_text
from fdbcore.catalog import Description, SnapshotRef
from fdbcore.formats.properties import EncryptionMetadata
from fdbcore.formats.snapshot_manifest import BulkDumpSnapshotManifest, SnapshotManifest
from fdbcore.keys import USER_KEYS
from fdbcore.modes import SnapshotKind


def _describe(rf_end: int, bd_end: int) -> str:
    rf = SnapshotManifest(100, rf_end, (), {}, 10)
    bd = BulkDumpSnapshotManifest(100, bd_end, "a" * 32, (USER_KEYS,), 10, 1)
    snaps = [
        SnapshotRef("snapshots/r", 100, rf_end, 10, SnapshotKind.RANGEFILE, rf, 500),
        SnapshotRef("snapshots/b", 100, bd_end, 10, SnapshotKind.BULKDUMP, bd, 500),
    ]
    return to_text(Description("file:///b", snaps, 1, EncryptionMetadata(), None, None, 100, 500, 500))


def test_min_restorable_version_says_when_bulkload_starts_later() -> None:
    text = _describe(rf_end=150, bd_end=180)
    assert (
        "MinRestorableVersion:    150 (maxLogEnd -0.00 days)  (range files only; --mode bulkload restores from 180)"
        in text
    )
    assert "RestorableWith --mode bulkload: 180 .. 499" in text


def test_no_note_when_both_methods_start_together() -> None:
    assert "range files only" not in _describe(rf_end=180, bd_end=180)
