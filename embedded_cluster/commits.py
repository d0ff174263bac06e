"""The commit path: a transaction's mutations become one write batch at one new version.

:mod:`.writes` turns the mutations into final values and conflict ranges; this puts the data changes,
the shard counts they move and every capture's log entries into one batch and commits it under the
commit lock, then records the commit in the MVCC history. Log replay pushes about a million mutations
a second through here, so the per-commit steps call each part once with whole lists, never once per
mutation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

from rocksdict import WriteBatch

from embedded_cluster import mvcc
from embedded_cluster.captures import LogCaptures
from embedded_cluster.distribution import DataDistributor
from embedded_cluster.locks import RangeLockTable
from embedded_cluster.rocks import scan
from embedded_cluster.store import Store
from embedded_cluster.wire import Columns
from embedded_cluster.writes import POINT_DELETES_MAX, Effects, place_versionstamps, resolve, validate
from fdbcore.keys import KeyRange


class Commits:
    """Commits, serialized under the store's commit lock (the "commit proxy + resolver")."""

    def __init__(
        self, store: Store, distributor: DataDistributor, captures: LogCaptures, locks: RangeLockTable
    ) -> None:
        self._store = store
        self._distributor = distributor
        self._captures = captures
        self._locks = locks

    def commit(
        self,
        columns: Columns,
        *,
        read_version: int | None = None,
        read_conflicts: Sequence[KeyRange] = (),
        lock_owner: str | None = None,
    ) -> int:
        plan = validate(columns, read_conflicts)
        store = self._store
        distributor = self._distributor
        history = store.history
        held = self._locks.held
        with store.commit_lock:
            if read_version is not None:
                history.check_conflicts(read_version, read_conflicts, store.clock.last_committed)
            version = store.clock.next_version()
            if plan.has_versionstamps:
                columns = place_versionstamps(columns, version)
            effects = resolve(columns, plan, self._get, self._scan, store.knobs.mvcc_clear_range_keys_max)
            write_points = effects.write_points()
            record = mvcc.CommitRecord(
                version, effects.changed_keys(write_points), write_points, effects.write_ranges()
            )
            if held or lock_owner is not None:
                held.check_writes(lock_owner, record.wrote_into)
            wb = store.batch()
            self._put_data(wb, effects)
            shard_updates = distributor.moved(wb, effects.shard_deltas(distributor.map.begins, write_points))
            if self._captures.by_id and columns[0]:
                self._captures.put_entries(wb, columns, version)
            store.commit(wb, version)
            distributor.applied(shard_updates)
            if record.keys or record.write_points or record.write_ranges:
                history.add(record, store.db.snapshot())
            for cleared in effects.cleared:
                if not cleared.complete:
                    history.invalidate(version, cleared.begin, cleared.end)
                    distributor.recount(cleared.begin, cleared.end)
        return version

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._store.db.get(key)
        return value

    def _scan(self, begin: bytes, end: bytes, limit: int) -> Iterator[tuple[bytes, bytes]]:
        for i, kv in enumerate(scan(self._store.db, begin, end)):
            if i >= limit:
                break
            yield kv

    @staticmethod
    def _put_data(wb: WriteBatch, effects: Effects) -> None:
        for cleared in effects.cleared:
            if not cleared.found:
                continue
            if cleared.complete and len(cleared.found) <= POINT_DELETES_MAX:
                for k in cleared.found:
                    wb.delete(k)
            else:
                wb.delete_range(cleared.begin, cleared.end)
        if effects.ascending is not None:
            deque(map(wb.put, *effects.ascending), maxlen=0)
            return
        known, puts = effects.known, effects.puts
        if None not in puts.values():
            # The bulk case (sets and atomic ops): every put handed to RocksDB at C level.
            deque(map(wb.put, puts.keys(), puts.values()), maxlen=0)
            return
        for k, v in puts.items():
            if v is not None:
                wb.put(k, v)
            elif k not in known or known[k] is not None:
                wb.delete(k)
