"""Range-file restore: blocks written through transactions (clear the block's range, set its data).

Re-applying a block gives the same result, so a task that runs twice is harmless; the destination
ranges were cleared (their old contents set aside, :mod:`workers.restore.replacement`) and are locked
for the whole restore.
"""

from __future__ import annotations

from collections.abc import Sequence

from fdbcore.catalog import RangeFileRef
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.formats.io import ContainerSource
from fdbcore.formats.rangefile import iter_range_file
from fdbcore.keys import KeyRange, key_after
from fdbcore.mutations import Mutation, clear_range, set_value
from workers.restore.job import Rewrite

COMMIT_BYTES = 1 << 20


class SnapshotPhaseClosed(Exception):
    """The restore's snapshot phase is over (its fence key is gone): this copy must not write."""


def _commit(driver: ClusterDriver, batch: list[Mutation], lock_owner: str, fence: bytes | None) -> None:
    """Commit ``batch`` only while ``fence`` exists: read it, and conflict with its removal."""
    if fence is None:
        driver.commit(batch, lock_owner=lock_owner)
        return
    version = driver.get_read_version()
    if driver.get(fence, version) is None:
        raise SnapshotPhaseClosed(f"fence {fence!r} is gone")
    driver.commit(
        batch, read_version=version, read_conflict_ranges=[KeyRange(fence, key_after(fence))], lock_owner=lock_owner
    )


def restore_file(
    driver: ClusterDriver,
    container: BackupContainer,
    ref: RangeFileRef,
    ranges: Sequence[KeyRange],
    rewrite: Rewrite,
    lock_owner: str,
    fence: bytes | None = None,
) -> tuple[int, int]:
    """Apply one range file's data inside ``ranges``; returns (blocks, bytes written).

    With ``fence`` (a key that exists while the restore's snapshot phase is open), every commit is
    conditional on it: see :func:`workers.restore.lifecycle.snapshot_fence_key`.
    """
    batch: list[Mutation] = []
    size = blocks = written = 0
    for block in iter_range_file(ContainerSource(container, ref.path), ref.block_size):
        blocks += 1
        for r in ranges:
            part = block.range.intersection(r)
            if part is None:
                continue
            dest = rewrite.range(part)
            batch.append(clear_range(dest.begin, dest.end))
            for k, v in block.kvs:
                if part.contains(k):
                    batch.append(set_value(rewrite.key(k), v))
                    size += len(k) + len(v)
        if size >= COMMIT_BYTES:
            _commit(driver, batch, lock_owner, fence)
            written += size
            batch, size = [], 0
    if batch:
        _commit(driver, batch, lock_owner, fence)
        written += size
    return blocks, written
