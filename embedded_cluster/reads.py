"""Reads at a version: pinned under the commit lock, served outside it.

A read takes the commit lock only to check its version and its range (no lock that blocks reads may
touch it, :mod:`.locks`) and pin what serving it needs (an iterator over the latest state and the
MVCC records since the read version, see :mod:`.mvcc`), so a long range read never holds up commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedded_cluster import mvcc
from embedded_cluster.locks import RangeLockTable
from embedded_cluster.rocks import RangeIterator
from embedded_cluster.store import Store
from fdbcore import errors
from fdbcore.keys import ALL_END, printable

#: Default and largest byte budgets for one range or log read (``limit_bytes`` of 0 means the default).
DEFAULT_READ_BYTES = 1 << 20
MAX_READ_BYTES = 16 << 20


def read_budget(limit_bytes: int) -> int:
    """The byte budget of a read asking for ``limit_bytes`` (0: the default; capped, as FDB caps replies)."""
    return min(limit_bytes or DEFAULT_READ_BYTES, MAX_READ_BYTES)


@dataclass(frozen=True, slots=True)
class RangeRead:
    #: Keys and values interleaved: ``[k0, v0, k1, v1, ...]`` (the wire format, built once).
    flat: list[bytes]
    more: bool


class Reads:
    """Point and range reads at any version inside the MVCC window."""

    def __init__(self, store: Store, locks: RangeLockTable) -> None:
        self._store = store
        self._locks = locks

    @property
    def latest_version(self) -> int:
        return self._store.clock.last_committed

    def _pin(self, version: int, begin: bytes, end: bytes) -> mvcc.PinnedRead:
        """Check ``version`` can be read over ``[begin, end)``; pin what reading it needs.

        Caller holds the commit lock.
        """
        history = self._store.history
        history.check_version(version, self._store.clock.last_committed)
        history.check_readable(version, begin, end)
        held = self._locks.held
        if held:
            held.check_reads(begin, end)
        return history.pin(version)

    def get(self, key: bytes, version: int) -> bytes | None:
        with self._store.commit_lock:
            pinned = self._pin(version, key, key + b"\x00")
            if pinned.snapshot is None:
                value: bytes | None = self._store.db.get(key)
                return value
        return mvcc.snapshot_get(pinned.snapshot, key)

    def get_range(
        self, begin: bytes, end: bytes, version: int, *, limit: int, limit_bytes: int, reverse: bool
    ) -> RangeRead:
        if begin > end:
            raise errors.InvertedRange(f"range begin {printable(begin)} is after its end {printable(end)}")
        if end > ALL_END:
            raise errors.KeyOutsideLegalRange(f"range end {printable(end)} is past \\xff\\xff")
        limit_bytes = read_budget(limit_bytes)
        limit = limit or (1 << 62)
        with self._store.commit_lock:
            pinned = self._pin(version, begin, end)
            if begin == end:
                return RangeRead([], False)
            current = RangeIterator(self._store.db, begin, end)
        stream = current.pairs(reverse=reverse)
        if pinned.snapshot is not None:
            stream = mvcc.overlay(stream, pinned, begin, end, reverse=reverse)
        flat: list[bytes] = []
        nbytes = 0
        for count, (k, v) in enumerate(stream):
            if count >= limit or nbytes >= limit_bytes:
                return RangeRead(flat, True)
            flat.append(k)
            flat.append(v)
            nbytes += len(k) + len(v)
        return RangeRead(flat, False)
