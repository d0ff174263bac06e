"""The MVCC window: older-version reads and conflict checks on a store that iterates only its latest state.

rocksdict's iterators ignore RocksDB snapshots, but a snapshot's point lookups honour it. So for every
commit inside the window (FDB's ``MAX_READ_TRANSACTION_LIFE_VERSIONS``) this module keeps a
:class:`CommitRecord` (the keys the commit changed and the key ranges it wrote) and a RocksDB snapshot
taken right after it. A range read at version ``v`` iterates the latest state and, for each key some
commit newer than ``v`` changed, takes the key's value from the snapshot of the last commit at or
before ``v`` instead. Only keys changed after ``v`` cost a point lookup, and old values stay in
RocksDB (pinned by the snapshots) rather than in Python memory. A commit whose read version is ``v``
conflicts when a commit newer than ``v`` wrote into one of its read-conflict ranges.

Some writes do not list the keys they change: SST ingestion and very large clears. They leave a range
invalidation, and reads older than it over that range fail with ``transaction_too_old`` (as if the
version had already left the window), which is the honest answer.

Methods of :class:`History` are called with the storage's commit lock held; :func:`overlay` works on
records and a snapshot already handed out (records are immutable; snapshots are thread-safe).
"""

from __future__ import annotations

import heapq
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fdbcore import errors
from fdbcore.keys import KeyRange, printable


class Snapshot(Protocol):
    """A RocksDB snapshot: point lookups as of its creation (raising for a missing key)."""

    def __getitem__(self, key: bytes) -> Any: ...


def snapshot_get(snapshot: Snapshot, key: bytes) -> bytes | None:
    try:
        value: bytes = snapshot[key]
    except Exception as exc:  # rocksdict raises a plain Exception for a missing key
        if str(exc) == "key not found":
            return None
        raise errors.IoError(f"RocksDB snapshot read failed: {exc}") from exc
    return value


@dataclass(frozen=True, slots=True)
class CommitRecord:
    version: int
    #: Sorted, distinct keys whose value this commit may have changed.
    keys: list[bytes]
    #: Sorted keys written by single-key mutations (each a write-conflict range ``[k, keyAfter(k))``).
    write_points: list[bytes]
    #: Sorted, disjoint ``(begin, end)`` ranges cleared (or ingested) by this commit.
    write_ranges: list[tuple[bytes, bytes]]

    def wrote_into(self, begin: bytes, end: bytes) -> bool:
        i = bisect_left(self.write_points, begin)
        if i < len(self.write_points) and self.write_points[i] < end:
            return True
        return ranges_intersect(self.write_ranges, begin, end)


def ranges_intersect(ranges: Sequence[tuple[bytes, bytes]], begin: bytes, end: bytes) -> bool:
    """Whether sorted disjoint ``ranges`` intersect ``[begin, end)``."""
    if not ranges:
        return False
    j = bisect_right(ranges, (begin, b"\xff\xff\xff"))
    # ranges[j-1] starts at or before begin; ranges[j] starts after it.
    if j > 0 and ranges[j - 1][1] > begin:
        return True
    return j < len(ranges) and ranges[j][0] < end


@dataclass(frozen=True, slots=True)
class PinnedRead:
    """What a read at an older version needs, taken under the commit lock."""

    records: list[CommitRecord]
    #: The state at the read version; ``None`` when nothing changed since (read the latest state).
    snapshot: Snapshot | None


class History:
    """Commit records, snapshots and range invalidations for the versions still inside the window."""

    def __init__(self, window_versions: int, start_version: int, start_snapshot: Snapshot) -> None:
        self.window = window_versions
        #: The recovery version: a restart keeps no history, so nothing older is readable.
        self.start_version = start_version
        self._versions: list[int] = []
        self._records: list[CommitRecord] = []
        self._snapshot_versions: list[int] = [start_version]
        self._snapshots: list[Snapshot] = [start_snapshot]
        self._invalidations: list[tuple[int, bytes, bytes]] = []

    def __len__(self) -> int:
        return len(self._records)

    def oldest_readable(self, latest: int) -> int:
        return max(self.start_version, latest - self.window)

    def check_version(self, version: int, latest: int) -> None:
        if version > latest:
            raise errors.FutureVersion(f"version {version} is newer than the latest committed version {latest}")
        oldest = self.oldest_readable(latest)
        if version < oldest:
            raise errors.TransactionTooOld(
                f"version {version} is older than the oldest readable version {oldest} "
                f"(latest {latest}, window {self.window} versions)"
            )

    def check_readable(self, version: int, begin: bytes, end: bytes) -> None:
        """Refuse a read at ``version`` of a range that a later bulk write left without history."""
        for inv_version, inv_begin, inv_end in self._invalidations:
            if version < inv_version and inv_begin < end and begin < inv_end:
                raise errors.TransactionTooOld(
                    f"range [{printable(inv_begin)}, {printable(inv_end)}) was replaced wholesale at version "
                    f"{inv_version}; it cannot be read at older version {version}"
                )

    def pin(self, version: int) -> PinnedRead:
        """The records newer than ``version`` (oldest first) and the snapshot of the state at it."""
        records = self._records[bisect_right(self._versions, version) :]
        if not records:
            return PinnedRead([], None)
        return PinnedRead(records, self._snapshots[bisect_right(self._snapshot_versions, version) - 1])

    def check_conflicts(self, read_version: int, ranges: Sequence[KeyRange], latest: int) -> None:
        self.check_version(read_version, latest)
        if not ranges:
            return
        for record in self._records[bisect_right(self._versions, read_version) :]:
            for r in ranges:
                if record.wrote_into(r.begin, r.end):
                    raise errors.NotCommitted(
                        f"read-conflict range {r} was written at version {record.version}, "
                        f"after read version {read_version}"
                    )

    def add(self, record: CommitRecord, snapshot: Snapshot) -> None:
        """Record a commit and the snapshot taken right after it."""
        self._versions.append(record.version)
        self._records.append(record)
        self._snapshot_versions.append(record.version)
        self._snapshots.append(snapshot)

    def invalidate(self, version: int, begin: bytes, end: bytes) -> None:
        self._invalidations.append((version, begin, end))

    def prune(self, latest: int) -> None:
        """Forget what no read inside the window can need (keeping the snapshot at the window's floor)."""
        floor = self.oldest_readable(latest)
        cut = bisect_right(self._versions, floor)
        if cut:
            del self._versions[:cut]
            del self._records[:cut]
        keep_from = bisect_right(self._snapshot_versions, floor) - 1
        if keep_from > 0:
            del self._snapshot_versions[:keep_from]
            del self._snapshots[:keep_from]
        if self._invalidations and self._invalidations[0][0] <= floor:
            self._invalidations = [inv for inv in self._invalidations if inv[0] > floor]

    def clear(self) -> None:
        """Drop every record and snapshot (snapshots keep the database open)."""
        self._versions.clear()
        self._records.clear()
        self._snapshot_versions.clear()
        self._snapshots.clear()


def changed_keys(records: Sequence[CommitRecord], begin: bytes, end: bytes, *, reverse: bool) -> Iterator[bytes]:
    """Distinct keys in ``[begin, end)`` changed by any of ``records``, in key order.

    Lazy: a chunked read of a large range only walks the keys up to where its chunk ends.
    """
    streams: list[Iterator[bytes]] = []
    for rec in records:
        i, j = bisect_left(rec.keys, begin), bisect_left(rec.keys, end)
        if i < j:
            streams.append(_walk(rec.keys, i, j, reverse))
    if len(streams) <= 1:
        return streams[0] if streams else iter(())
    return _distinct(heapq.merge(*streams, reverse=reverse))


def _walk(keys: list[bytes], i: int, j: int, reverse: bool) -> Iterator[bytes]:
    indexes = range(j - 1, i - 1, -1) if reverse else range(i, j)
    return map(keys.__getitem__, indexes)


def _distinct(keys: Iterator[bytes]) -> Iterator[bytes]:
    last: bytes | None = None
    for key in keys:
        if key != last:
            last = key
            yield key


def overlay(
    current: Iterator[tuple[bytes, bytes]], pinned: PinnedRead, begin: bytes, end: bytes, *, reverse: bool
) -> Iterator[tuple[bytes, bytes]]:
    """The pairs of ``[begin, end)`` at the pinned version: the latest state (``current``, in key order)
    with every key changed since then looked up in the pinned snapshot instead."""
    snapshot = pinned.snapshot
    if snapshot is None:
        yield from current
        return
    before = operator.gt if reverse else operator.lt
    changed = changed_keys(pinned.records, begin, end, reverse=reverse)
    nxt = next(changed, None)
    for key, value in current:
        while nxt is not None and before(nxt, key):
            old = snapshot_get(snapshot, nxt)
            if old is not None:
                yield nxt, old
            nxt = next(changed, None)
        if nxt is not None and nxt == key:
            old = snapshot_get(snapshot, key)
            if old is not None:
                yield key, old
            nxt = next(changed, None)
        else:
            yield key, value
    while nxt is not None:
        old = snapshot_get(snapshot, nxt)
        if old is not None:
            yield nxt, old
        nxt = next(changed, None)
