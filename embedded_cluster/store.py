"""The open primary: one RocksDB, one commit lock, one ``WriteBatch`` per commit.

Every commit is one RocksDB ``WriteBatch`` holding its data changes, its mutation-log entries, the
shard byte counts it moved and the new last-committed version, so a restart or a secondary instance
always sees data and version that belong together. The parts of :class:`~.storage.Storage` fill a
batch and hand it to :meth:`Store.commit`, which adds the version record (and timekeeper entry) and
writes it. Commits are serialized under :attr:`Store.commit_lock` (the "commit proxy + resolver");
reads take the lock only to pin a consistent view: a RocksDB iterator created under the lock sees
exactly the state at the latest committed version, and the MVCC records handed out with it cover
every commit after the read version (see :mod:`.mvcc`).

Durability: the write-ahead log is always on, so an acknowledged commit survives the server being
killed (``kill -9``); with ``--knob_commit_fsync=1`` every commit is also fsynced and survives a
power loss.
"""

from __future__ import annotations

import gc
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rocksdict import Rdict, WriteBatch, WriteOptions

from embedded_cluster import mvcc
from embedded_cluster.knobs import Knobs
from embedded_cluster.rocks import DB_DIRNAME, META_CF, MLOG_CF, VERSION_KEY, column_families, rocksdb_options, scan
from embedded_cluster.versions import (
    TIMEKEEPER_PREFIX,
    Timekeeper,
    VersionClock,
    decode_version_record,
    encode_version_record,
    timekeeper_key,
)
from embedded_cluster.wire import pack
from fdbcore import errors
from fdbcore.keys import strinc

log = logging.getLogger(__name__)

CLUSTER_ID_KEY = b"cluster_id"
KNOBS_KEY = b"knobs"

#: A change to persist in ``meta``: (key, new value or ``None`` to delete).
MetaChange = tuple[bytes, bytes | None]


class Store:
    """The data directory's RocksDB, its commit lock, and what every commit advances: the version
    clock, the timekeeper and the MVCC history. Opened by exactly one server process."""

    def __init__(self, data_dir: Path, knobs: Knobs) -> None:
        self.data_dir = data_dir
        self.knobs = knobs
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.db = Rdict(str(data_dir / DB_DIRNAME), rocksdb_options(), column_families=column_families())
        except Exception as exc:
            raise errors.IoError(
                f"cannot open data directory {data_dir}: {exc} (is another embedded-cluster serving it?)"
            ) from exc
        self.meta = self.db.get_column_family(META_CF)
        self.mlog = self.db.get_column_family(MLOG_CF)
        self.meta_cf = self.db.get_column_family_handle(META_CF)
        self.mlog_cf = self.db.get_column_family_handle(MLOG_CF)
        self._write_opts = WriteOptions()
        self._write_opts.sync = bool(knobs.commit_fsync)
        self.commit_lock = threading.Lock()

        raw_version = self.meta.get(VERSION_KEY)
        last_version, last_wall = decode_version_record(raw_version) if raw_version else (0, None)
        self.clock = VersionClock(last_version, last_wall)
        self.cluster_id: str = (self.meta.get(CLUSTER_ID_KEY) or secrets.token_hex(8).encode()).decode()
        self.timekeeper = Timekeeper(self.meta_items(TIMEKEEPER_PREFIX), knobs.timekeeper_max_age_seconds)
        # A restart keeps no history: the window opens at the recovery commit's version, and since that
        # commit changes no data, a snapshot taken now shows its state.
        self.history = mvcc.History(
            knobs.max_read_transaction_life_versions, self.clock.next_version(), self.db.snapshot()
        )
        self._last_commit_at = time.monotonic()

    def recover(self, wb: WriteBatch) -> None:
        """The recovery commit: makes the new start version durable before anything is served.

        ``wb`` holds what the other parts write at start-up; the cluster id and the knobs join it.
        """
        wb.put(CLUSTER_ID_KEY, self.cluster_id.encode(), self.meta_cf)
        wb.put(KNOBS_KEY, pack(self.knobs.as_strings()), self.meta_cf)
        last = self.clock.last_committed
        with self.commit_lock:
            self.commit(wb, self.history.start_version)
        log.info(
            "opened %s: recovered at version %d (last committed %d)", self.data_dir, self.history.start_version, last
        )

    # --- batches ------------------------------------------------------------------------------------

    def meta_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return scan(self.meta, prefix, strinc(prefix))

    @staticmethod
    def batch() -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def write(self, wb: WriteBatch) -> None:
        """Write a batch that changes no version: bookkeeping the next commit does not depend on."""
        try:
            self.db.write(wb, self._write_opts)
        except Exception as exc:
            raise errors.IoError(f"RocksDB write failed: {exc}") from exc

    # --- commits ------------------------------------------------------------------------------------

    def commit(self, wb: WriteBatch, version: int) -> None:
        """Finish a commit's batch with the new version (and timekeeper entry) and write it.

        Caller holds the commit lock and has taken ``version`` from the clock.
        """
        wall = time.time()
        wb.put(VERSION_KEY, encode_version_record(version, wall), self.meta_cf)
        second = self.timekeeper.entry_due(wall)
        expired = self.timekeeper.expired_before(wall) if second is not None else None
        if second is not None:
            wb.put(timekeeper_key(second), version.to_bytes(8, "big", signed=True), self.meta_cf)
        if expired is not None:
            wb.delete_range(TIMEKEEPER_PREFIX, timekeeper_key(expired), self.meta_cf)
        self.write(wb)
        self.clock.committed(version)
        if second is not None:
            self.timekeeper.recorded(second, version)
        if expired is not None:
            self.timekeeper.forget_before(expired)
        self.history.prune(version)
        self._last_commit_at = time.monotonic()

    def metadata_commit(self, changes: Sequence[MetaChange]) -> int:
        """A commit that only changes metadata, at a new version. Caller holds the commit lock."""
        wb = self.batch()
        for key, value in changes:
            if value is None:
                wb.delete(key, self.meta_cf)
            else:
                wb.put(key, value, self.meta_cf)
        version = self.clock.next_version()
        self.commit(wb, version)
        return version

    def tick(self, idle_seconds: float) -> None:
        """Commit an empty batch if nothing committed for ``idle_seconds``, so versions keep advancing."""
        if time.monotonic() - self._last_commit_at < idle_seconds:
            return
        with self.commit_lock:
            if time.monotonic() - self._last_commit_at >= idle_seconds:
                self.commit(self.batch(), self.clock.next_version())

    # --- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush and close RocksDB. Column-family handles keep the database open, so they go first."""
        with self.commit_lock:
            self.history.clear()
            self.meta.close()
            self.mlog.close()
            del self.meta_cf, self.mlog_cf, self.meta, self.mlog
            self.db.close()
            del self.db
            gc.collect()  # iterators of abandoned reads also hold the database
