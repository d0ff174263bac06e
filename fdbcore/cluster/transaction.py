"""A client-side transaction over any :class:`~fdbcore.cluster.interface.ClusterDriver`.

Like an FDB transaction without read-your-writes: reads see the database at one read version (taken
lazily), writes are buffered and committed in one call, and non-snapshot reads become read-conflict
ranges, so the commit fails with ``not_committed`` if anything it read changed meanwhile. That is what
lets restore store "applied through version V" in the same commit as the mutations it applied, and
apply each batch exactly once.

:func:`run` is the retry loop (FDB's ``@fdb.transactional``/``onError``): it reruns the function on a
fresh transaction after a retryable error, with exponential backoff.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from fdbcore import errors
from fdbcore.atomic import versionstamp
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange, key_after
from fdbcore.mutations import Mutation, MutationType, clear, clear_range, set_value

T = TypeVar("T")


class Transaction:
    def __init__(self, db: ClusterDriver, *, lock_owner: str | None = None) -> None:
        self.db = db
        self.lock_owner = lock_owner
        self._read_version: int | None = None
        self._mutations: list[Mutation] = []
        self._read_conflicts: list[KeyRange] = []
        self._size = 0
        self.committed_version: int | None = None

    # --- reads ------------------------------------------------------------------------------------

    @property
    def read_version(self) -> int:
        if self._read_version is None:
            self._read_version = self.db.get_read_version()
        return self._read_version

    def set_read_version(self, version: int) -> None:
        self._read_version = version

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._read_conflicts.append(KeyRange(begin, end))

    def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        value = self.db.get(key, self.read_version)
        if not snapshot:
            self.add_read_conflict_range(key, key_after(key))
        return value

    def get_range(
        self, begin: bytes, end: bytes, *, limit: int = 0, reverse: bool = False, snapshot: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """All pairs of ``[begin, end)`` (at most ``limit`` when given), fetched in chunks."""
        out: list[tuple[bytes, bytes]] = []
        lo, hi = begin, end
        while True:
            chunk = self.db.get_range(
                lo, hi, self.read_version, limit=limit - len(out) if limit else 0, reverse=reverse
            )
            out.extend(chunk.kvs)
            if not chunk.more or (limit and len(out) >= limit):
                break
            if reverse:
                hi = chunk.kvs[-1][0]
            else:
                lo = key_after(chunk.kvs[-1][0])
        if not snapshot:
            # Conflict on what was actually read: a limited read stops at its last key.
            limited = bool(limit) and len(out) >= limit and bool(out)
            if reverse:
                self.add_read_conflict_range(out[-1][0] if limited else begin, end)
            else:
                self.add_read_conflict_range(begin, key_after(out[-1][0]) if limited else end)
        return out

    # --- writes -----------------------------------------------------------------------------------

    def _add(self, mutation: Mutation) -> None:
        self._mutations.append(mutation)
        self._size += mutation.byte_size()

    def set(self, key: bytes, value: bytes) -> None:
        self._add(set_value(key, value))

    def clear(self, key: bytes) -> None:
        self._add(clear(key))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self._add(clear_range(begin, end))

    def atomic_op(self, op: MutationType | int, key: bytes, param: bytes) -> None:
        self._add(Mutation(int(op), key, param))

    def add_mutations(self, mutations: list[Mutation]) -> None:
        """Buffer already-built mutations (e.g. a batch decoded from a backup's mutation log)."""
        self._mutations.extend(mutations)
        self._size += sum(m.byte_size() for m in mutations)

    @property
    def size(self) -> int:
        """Bytes of buffered mutations, as FDB counts them against the transaction size limit."""
        return self._size

    # --- commit -----------------------------------------------------------------------------------

    def commit(self) -> int:
        """Commit the buffered writes; checks read conflicts when anything was read without ``snapshot``."""
        conflicts = self._read_conflicts
        version = self.db.commit(
            self._mutations,
            read_version=self.read_version if conflicts else None,
            read_conflict_ranges=conflicts,
            lock_owner=self.lock_owner,
        )
        self.committed_version = version
        return version

    @property
    def versionstamp(self) -> bytes:
        """The 10-byte versionstamp of the commit (one transaction per commit: number 0)."""
        if self.committed_version is None:
            raise errors.ClientInvalidOperation("the transaction has not committed")
        return versionstamp(self.committed_version)


def run(
    db: ClusterDriver,
    fn: Callable[[Transaction], T],
    *,
    lock_owner: str | None = None,
    timeout: float = 60.0,
    max_backoff: float = 1.0,
) -> T:
    """Run ``fn`` in a transaction and commit it, retrying retryable errors until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    backoff = 0.01
    while True:
        tr = Transaction(db, lock_owner=lock_owner)
        try:
            result = fn(tr)
            tr.commit()
            return result
        except errors.FDBError as exc:
            if not exc.retryable or time.monotonic() + backoff > deadline:
                raise
            time.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, max_backoff)
