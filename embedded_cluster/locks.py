"""Exclusive range locks, as FDB's ``takeExclusiveReadLockOnRange`` gives BulkLoad.

A lock belongs to an owner. Locks of different owners never overlap (``range_lock_reject``, 1247);
a commit writing into a range locked by anyone but the commit's ``lock_owner`` is rejected
(``transaction_rejected_range_locked``, 1242); only the owner may unlock (``range_unlock_reject``,
1248). One owner's overlapping or touching locks are merged; unlocking part of a lock keeps the rest.

Persisted in ``meta`` as ``lock/<begin>`` -> msgpack ``[end, owner]``; every change is a metadata
commit (:class:`RangeLockTable`), so it is as durable and as ordered as the writes it guards.
"""

from __future__ import annotations

from collections.abc import Callable

from embedded_cluster.store import MetaChange, Store
from embedded_cluster.wire import pack, unpack
from fdbcore import errors
from fdbcore.cluster.interface import RangeLock
from fdbcore.keys import KeyRange

LOCK_PREFIX = b"lock/"


def _put(lock: RangeLock) -> MetaChange:
    return LOCK_PREFIX + lock.range.begin, pack([lock.range.end, lock.owner])


def _delete(lock: RangeLock) -> MetaChange:
    return LOCK_PREFIX + lock.range.begin, None


def decode_lock(key: bytes, value: bytes) -> RangeLock:
    end, owner = unpack(value)
    return RangeLock(KeyRange(key[len(LOCK_PREFIX) :], end), owner)


class RangeLocks:
    """The locks in memory; each change returns the ``meta`` changes that persist it."""

    def __init__(self, locks: list[RangeLock]) -> None:
        self._locks = sorted(locks, key=lambda lk: lk.range)

    def __bool__(self) -> bool:
        return bool(self._locks)

    def all(self) -> list[RangeLock]:
        return list(self._locks)

    def lock(self, range: KeyRange, owner: str) -> list[MetaChange]:
        if range.empty:
            raise errors.InvalidOptionValue("cannot lock an empty range")
        if not owner:
            raise errors.InvalidOptionValue("a range lock needs an owner")
        mine = []
        for lk in self._locks:
            if lk.range.intersects(range) and lk.owner != owner:
                raise errors.RangeLockReject(f"range {range} overlaps {lk.range}, locked by {lk.owner!r}")
            if lk.owner == owner and lk.range.begin <= range.end and range.begin <= lk.range.end:
                mine.append(lk)
        begin = min([range.begin, *(lk.range.begin for lk in mine)])
        end = max([range.end, *(lk.range.end for lk in mine)])
        merged = RangeLock(KeyRange(begin, end), owner)
        changes = [_delete(lk) for lk in mine]
        changes.append(_put(merged))
        self._locks = sorted([lk for lk in self._locks if lk not in mine] + [merged], key=lambda lk: lk.range)
        return changes

    def unlock(self, range: KeyRange, owner: str) -> list[MetaChange]:
        hit = [lk for lk in self._locks if lk.range.intersects(range)]
        for lk in hit:
            if lk.owner != owner:
                raise errors.RangeUnlockReject(f"range {lk.range} is locked by {lk.owner!r}, not {owner!r}")
        changes = [_delete(lk) for lk in hit]
        kept = [lk for lk in self._locks if lk not in hit]
        for lk in hit:
            for begin, end in ((lk.range.begin, range.begin), (range.end, lk.range.end)):
                if begin < end:
                    rest = RangeLock(KeyRange(begin, end), owner)
                    kept.append(rest)
                    # Puts follow the deletes: a remaining piece may start where the removed lock did.
                    changes.append(_put(rest))
        self._locks = sorted(kept, key=lambda lk: lk.range)
        return changes

    def lock_exclusive(self, range: KeyRange, owner: str) -> list[MetaChange]:
        """Lock a range that no lock touches yet, not even one of ``owner``'s own (BulkLoad's lock:
        two loads into overlapping ranges under the one owner ``BulkLoad`` would otherwise share it)."""
        for lk in self._locks:
            if lk.range.intersects(range):
                raise errors.RangeLockReject(f"range {range} overlaps {lk.range}, locked by {lk.owner!r}")
        return self.lock(range, owner)

    def check_held(self, range: KeyRange, owner: str) -> None:
        """``range_lock_failed`` unless ``owner``'s locks cover all of ``range``."""
        cursor = range.begin
        for lk in self._locks:
            if lk.owner == owner and lk.range.begin <= cursor < lk.range.end:
                cursor = lk.range.end
        if cursor < range.end:
            missing = KeyRange(cursor, range.end)
            raise errors.RangeLockFailed(f"{owner!r} holds no lock covering {range} (missing from {missing})")

    def check_writes(self, owner: str | None, wrote_into: Callable[[bytes, bytes], bool]) -> None:
        for lk in self._locks:
            if lk.owner != owner and wrote_into(lk.range.begin, lk.range.end):
                raise errors.TransactionRejectedRangeLocked(
                    f"the transaction writes into {lk.range}, which is locked by {lk.owner!r}"
                )


class RangeLockTable:
    """The storage's range locks: :attr:`held` in memory (checked by commits and ingests under the
    commit lock), every change committed to ``meta`` at a new version."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = RangeLocks([decode_lock(k, v) for k, v in store.meta_items(LOCK_PREFIX)])

    def lock(self, range: KeyRange, owner: str) -> int:
        with self._store.commit_lock:
            return self._store.metadata_commit(self.held.lock(range, owner))

    def unlock(self, range: KeyRange, owner: str) -> int:
        with self._store.commit_lock:
            return self._store.metadata_commit(self.held.unlock(range, owner))

    def lock_exclusive(self, range: KeyRange, owner: str) -> int:
        """Lock ``range`` for ``owner`` unless any lock, of any owner, touches it (``range_lock_reject``)."""
        with self._store.commit_lock:
            return self._store.metadata_commit(self.held.lock_exclusive(range, owner))

    def check_held(self, range: KeyRange, owner: str) -> None:
        with self._store.commit_lock:
            self.held.check_held(range, owner)

    def all(self) -> list[RangeLock]:
        with self._store.commit_lock:
            return self.held.all()
