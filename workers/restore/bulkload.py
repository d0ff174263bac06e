"""BulkLoad restore: verify the dataset completely, then load it through the cluster (a black box).

Verification happens before anything touches the destination (FDB 8.0 checks only that the job
folder is non-empty). Loads are grouped like FDB's tasks (at most 10 batch manifests per call) and
every result is checked, so a restore can never report success while a range is missing (#13873).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fdbcore import bulkdump_dataset as ds
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.encryption import EncryptionSettings
from fdbcore.formats.bulkdump_manifest import JobManifestEntry
from fdbcore.keys import KeyRange, VersionedRange
from workers import codecs
from workers.restore.job import Rewrite

MANIFESTS_PER_TASK = 10  # FDB's MANIFEST_COUNT_MAX_PER_BULKLOAD_TASK


def version_pieces(entries: Sequence[JobManifestEntry], ranges: Sequence[KeyRange]) -> list[VersionedRange]:
    """Each batch's own ``[Version]`` over its part of the restore ranges (the replay's version map)."""
    out = []
    for e in entries:
        for r in ranges:
            part = e.range.intersection(r)
            if part is not None:
                out.append(VersionedRange(part, e.version))
    return out


def groups(entries: Sequence[JobManifestEntry]) -> list[list[JobManifestEntry]]:
    ordered = sorted(entries, key=lambda e: e.begin_key)
    return [ordered[i : i + MANIFESTS_PER_TASK] for i in range(0, len(ordered), MANIFESTS_PER_TASK)]


def verify_group(container: BackupContainer, entries: Sequence[JobManifestEntry]) -> dict[str, int]:
    """Prove every batch of the group intact; returns each manifest's key count."""
    return {e.manifest_relative_path: ds.verify_entry(container, e).manifest.key_count for e in entries}


@dataclass(frozen=True)
class LoadedPart:
    range: KeyRange  # source key space
    keys: int
    bytes: int
    files: int
    whole_batches: bool  # the part is exactly the union of its batches (so key counts must match)
    manifests: list[str]

    def to_json(self) -> dict[str, object]:
        return {
            "range": codecs.range_to_json(self.range),
            "keys": self.keys,
            "bytes": self.bytes,
            "files": self.files,
            "whole": self.whole_batches,
            "manifests": self.manifests,
        }

    @staticmethod
    def from_json(d: Any) -> LoadedPart:
        return LoadedPart(
            codecs.range_from_json(d["range"]), d["keys"], d["bytes"], d["files"], d["whole"], list(d["manifests"])
        )


def load_group(
    driver: ClusterDriver,
    url: str,
    job_id: str,
    entries: Sequence[JobManifestEntry],
    ranges: Sequence[KeyRange],
    rewrite: Rewrite,
    lock_owner: str,
    timeout: float | None,
    encryption: EncryptionSettings | None = None,
) -> list[LoadedPart]:
    """BulkLoad the group's part of each restore range (one call per contiguous part)."""
    ordered = sorted(entries, key=lambda e: e.begin_key)
    span = KeyRange(ordered[0].begin_key, ordered[-1].end_key)
    out = []
    for r in ranges:
        part = span.intersection(r)
        if part is None:
            continue
        used = [e for e in ordered if e.range.intersects(part)]
        manifests = [e.manifest_relative_path for e in used]
        res = driver.bulk_load(
            job_id,
            part,
            url,
            manifests,
            root=ds.ROOT,
            add_prefix=rewrite.add,
            remove_prefix=rewrite.remove,
            lock_owner=lock_owner,
            timeout=timeout,
            encryption=encryption,
        )
        whole = part == KeyRange(used[0].begin_key, used[-1].end_key)
        out.append(LoadedPart(part, res.keys_loaded, res.bytes_loaded, res.files_ingested, whole, manifests))
    return out
