"""Exclusive range locks, as FDB's ``takeExclusiveReadLockOnRange`` gives BulkLoad.

A lock belongs to an owner. Locks of different owners never overlap (``range_lock_reject``, 1247);
a commit writing into a range locked by anyone but the commit's ``lock_owner`` is rejected
(``transaction_rejected_range_locked``, 1242); only the owner may unlock (``range_unlock_reject``,
1248). One owner's overlapping or touching locks are merged; unlocking part of a lock keeps the rest.

A lock taken with ``block_reads`` (FDB's design calls it a write lock; FDB has not built it) refuses
reads too, with the same 1242: a restore's ranges are unreadable while they hold neither the old nor
the restored data. A merged lock blocks reads if any lock merged into it did. A commit naming a
``lock_owner`` that holds no lock at all fails with ``range_lock_failed`` (1241): a writer left over
from a job that released or handed over its lock (:meth:`RangeLocks.transfer`) cannot land.

Persisted in ``meta`` as ``lock/<begin>`` -> msgpack ``[end, owner, block_reads]``; every change is a
metadata commit (:class:`RangeLockTable`), so it is as durable and as ordered as the writes it guards.
"""

from __future__ import annotations

from collections.abc import Callable

from embedded_cluster.store import MetaChange, Store
from embedded_cluster.wire import pack, unpack
from fdbcore import errors
from fdbcore.cluster.interface import RangeLock
from fdbcore.keys import KeyRange, printable

LOCK_PREFIX = b"lock/"


def _put(lock: RangeLock) -> MetaChange:
    return LOCK_PREFIX + lock.range.begin, pack([lock.range.end, lock.owner, lock.block_reads])


def _delete(lock: RangeLock) -> MetaChange:
    return LOCK_PREFIX + lock.range.begin, None


def decode_lock(key: bytes, value: bytes) -> RangeLock:
    end, owner, *flags = unpack(value)  # written before block_reads existed: [end, owner]
    return RangeLock(KeyRange(key[len(LOCK_PREFIX) :], end), owner, bool(flags and flags[0]))


class RangeLocks:
    """The locks in memory; each change returns the ``meta`` changes that persist it."""

    def __init__(self, locks: list[RangeLock]) -> None:
        self._locks = sorted(locks, key=lambda lk: lk.range)

    def __bool__(self) -> bool:
        return bool(self._locks)

    def all(self) -> list[RangeLock]:
        return list(self._locks)

    def lock(self, range: KeyRange, owner: str, block_reads: bool = False) -> list[MetaChange]:
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
        merged = RangeLock(KeyRange(begin, end), owner, block_reads or any(lk.block_reads for lk in mine))
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
                    rest = RangeLock(KeyRange(begin, end), owner, lk.block_reads)
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

    def transfer(self, range: KeyRange, owner: str, new_owner: str) -> list[MetaChange]:
        """Hand ``owner``'s lock on ``range`` (all of it) to ``new_owner``, keeping ``block_reads``."""
        if range.empty:
            raise errors.InvalidOptionValue("cannot transfer the lock of an empty range")
        self.check_held(range, owner)
        block_reads = any(lk.block_reads for lk in self._locks if lk.owner == owner and lk.range.intersects(range))
        return self.unlock(range, owner) + self.lock(range, new_owner, block_reads)

    def read_blocked(self, range: KeyRange) -> list[KeyRange]:
        """The parts of ``range`` under locks that block reads."""
        out = []
        for lk in self._locks:
            if lk.block_reads:
                part = lk.range.intersection(range)
                if part is not None:
                    out.append(part)
        return out

    def check_reads(self, begin: bytes, end: bytes) -> None:
        """``transaction_rejected_range_locked`` if a lock that blocks reads touches ``[begin, end)``."""
        for lk in self._locks:
            if lk.block_reads and lk.range.begin < end and begin < lk.range.end:
                raise errors.TransactionRejectedRangeLocked(
                    f"the read of [{printable(begin)}, {printable(end)}) touches {lk.range}, locked by "
                    f"{lk.owner!r} until the data there is whole; retry later"
                )

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
        if owner is not None and not any(lk.owner == owner for lk in self._locks):
            raise errors.RangeLockFailed(f"the transaction writes as lock owner {owner!r}, which holds no range lock")


class RangeLockTable:
    """The storage's range locks: :attr:`held` in memory (checked by commits and ingests under the
    commit lock), every change committed to ``meta`` at a new version."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = RangeLocks([decode_lock(k, v) for k, v in store.meta_items(LOCK_PREFIX)])

    def lock(self, range: KeyRange, owner: str, block_reads: bool = False) -> int:
        with self._store.commit_lock:
            return self._store.metadata_commit(self.held.lock(range, owner, block_reads))

    def unlock(self, range: KeyRange, owner: str) -> int:
        """Unlock; reads older than the unlock of what blocked reads fail from now on (``transaction_too_old``)."""
        with self._store.commit_lock:
            blocked = self.held.read_blocked(range)  # all the owner's: unlock refuses other owners' locks
            version = self._store.metadata_commit(self.held.unlock(range, owner))
            for part in blocked:
                self._store.history.invalidate(version, part.begin, part.end)
            return version

    def transfer(self, range: KeyRange, owner: str, new_owner: str) -> int:
        with self._store.commit_lock:
            return self._store.metadata_commit(self.held.transfer(range, owner, new_owner))

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
