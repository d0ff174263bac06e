"""The storage's mutation-log captures: registered, read, popped and stopped by backups, fed by commits.

The capture model and the entry format are in :mod:`.mutation_log`, which the client shares to decode
entries; this is the server side, on the ``mlog`` and ``meta`` column families.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rocksdict import WriteBatch

from embedded_cluster.mutation_log import (
    CAPTURE_PREFIX,
    Capture,
    encode_entry,
    log_key,
    log_prefix,
    version_of_log_key,
)
from embedded_cluster.reads import read_budget
from embedded_cluster.rocks import RangeIterator
from embedded_cluster.store import Store
from embedded_cluster.wire import Columns
from embedded_cluster.writes import mutation_span
from fdbcore import errors
from fdbcore.keys import KeyRange, strinc


@dataclass(frozen=True, slots=True)
class LogRead:
    entries: list[tuple[int, bytes]]  # (version, encoded mutations of that commit)
    end_version: int


class LogCaptures:
    """Every capture, in memory and in ``meta``; each one's retained entries in ``mlog``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        #: By id. Commits test it for emptiness before asking :meth:`put_entries` to log anything.
        self.by_id = {c.id: c for c in (Capture.decode(k, v) for k, v in store.meta_items(CAPTURE_PREFIX))}

    def put_entries(self, wb: WriteBatch, columns: Columns, version: int) -> None:
        """Put each capture's part of a commit into the commit's batch. Caller holds the commit lock."""
        span = mutation_span(columns)
        whole: bytes | None = None
        for capture in self.by_id.values():
            selected = capture.select(columns, span)
            if selected is columns:
                whole = whole or encode_entry(columns)
                wb.put(log_key(capture.id, version), whole, self._store.mlog_cf)
            elif selected[0]:
                wb.put(log_key(capture.id, version), encode_entry(selected), self._store.mlog_cf)

    def public(self) -> list[dict[str, object]]:
        return [capture.public() for capture in list(self.by_id.values())]

    def start(self, capture_id: str, ranges: Sequence[KeyRange]) -> int:
        store = self._store
        with store.commit_lock:
            existing = self.by_id.get(capture_id)
            if existing is not None:
                return existing.begin_version
            version = store.clock.next_version()
            capture = Capture.new(capture_id, ranges, version)
            wb = store.batch()
            wb.put(capture.meta_key(), capture.encode(), store.meta_cf)
            store.commit(wb, version)
            self.by_id[capture_id] = capture
        return version

    def _capture(self, capture_id: str) -> Capture:
        capture = self.by_id.get(capture_id)
        if capture is None:
            raise errors.KeyNotFound(f"no log capture {capture_id!r}")
        return capture

    def read(self, capture_id: str, begin_version: int, limit_bytes: int) -> LogRead:
        limit_bytes = read_budget(limit_bytes)
        prefix = log_prefix(capture_id)
        begin, end = log_key(capture_id, max(0, begin_version)), strinc(prefix)
        with self._store.commit_lock:
            capture = self._capture(capture_id)
            if begin_version < capture.popped_version:
                raise errors.TransactionTooOld(
                    f"log capture {capture_id!r} was popped up to version {capture.popped_version}; "
                    f"cannot read from {begin_version}"
                )
            latest = self._store.clock.last_committed
            entries_at_latest = RangeIterator(self._store.mlog, begin, end)
        entries: list[tuple[int, bytes]] = []
        nbytes = 0
        for key, blob in entries_at_latest.pairs():
            if entries and nbytes + len(blob) > limit_bytes:
                return LogRead(entries, entries[-1][0] + 1)
            entries.append((version_of_log_key(key), blob))
            nbytes += len(blob)
        return LogRead(entries, latest + 1)

    def pop(self, capture_id: str, version: int) -> None:
        store = self._store
        with store.commit_lock:
            capture = self._capture(capture_id)
            if version <= capture.popped_version:
                return
            wb = store.batch()
            wb.delete_range(log_prefix(capture_id), log_key(capture_id, version), store.mlog_cf)
            updated = replace(capture, popped_version=version)
            wb.put(updated.meta_key(), updated.encode(), store.meta_cf)
            store.write(wb)
            self.by_id[capture_id] = updated

    def stop(self, capture_id: str) -> None:
        store = self._store
        with store.commit_lock:
            capture = self.by_id.get(capture_id)
            if capture is None:
                return
            prefix = log_prefix(capture_id)
            wb = store.batch()
            wb.delete_range(prefix, strinc(prefix), store.mlog_cf)
            wb.delete(capture.meta_key(), store.meta_cf)
            store.write(wb)
            del self.by_id[capture_id]
