"""The embedded cluster's storage engine and commit path: one RocksDB, one commit lock.

Column families:

- ``default``: the key-value data, user keys ``['', '\\xff')`` and system keys under ``\\xff``;
- ``meta``: the last committed version (with its wall time), the shard map, log captures, range locks,
  the timekeeper and the knobs the server last started with;
- ``mlog``: retained mutation-log entries (see :mod:`.mutation_log`).

Every commit is one RocksDB ``WriteBatch`` holding its data changes, its mutation-log entries, the
shard byte counts it moved and the new last-committed version, so a restart or a secondary instance
always sees data and version that belong together. Commits are serialized under one lock (the
"commit proxy + resolver"); reads take the lock only to pin a consistent view: a RocksDB iterator
created under the lock sees exactly the state at the latest committed version, and the MVCC records
handed out with it cover every commit after the read version (see :mod:`.mvcc`).

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
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import cast

from rocksdict import (
    AccessType,
    DBCompressionType,
    IngestExternalFileOptions,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from embedded_cluster import mvcc
from embedded_cluster.knobs import Knobs
from embedded_cluster.locks import LOCK_PREFIX, MetaChange, RangeLocks, decode_lock
from embedded_cluster.mutation_log import (
    CAPTURE_PREFIX,
    Capture,
    encode_entry,
    log_key,
    log_prefix,
    version_of_log_key,
)
from embedded_cluster.shards import SHARD_PREFIX, ShardMap, ShardState
from embedded_cluster.versions import (
    TIMEKEEPER_PREFIX,
    Timekeeper,
    VersionClock,
    decode_version_record,
    encode_version_record,
    timekeeper_key,
)
from embedded_cluster.wire import Columns, pack, unpack
from embedded_cluster.writes import (
    POINT_DELETES_MAX,
    Effects,
    mutation_span,
    place_versionstamps,
    resolve,
    validate,
)
from fdbcore import errors
from fdbcore.cluster.interface import RangeLock, Shard
from fdbcore.keys import ALL_END, KeyRange, key_after, printable, strinc

log = logging.getLogger(__name__)

META_CF = "meta"
MLOG_CF = "mlog"
VERSION_KEY = b"version"
CLUSTER_ID_KEY = b"cluster_id"
KNOBS_KEY = b"knobs"
#: ``ingest/<begin>`` -> ``[end]`` in ``meta`` while SST files are being ingested into ``[begin, end)``.
INGEST_PREFIX = b"ingest/"
DB_DIRNAME = "db"

#: Default and largest byte budgets for one range read (``limit_bytes`` of 0 means the default).
DEFAULT_READ_BYTES = 1 << 20
MAX_READ_BYTES = 16 << 20


def rocksdb_options() -> Options:
    """Raw-mode options (plain RocksDB bytes, readable by other tools and by SST ingestion)."""
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    opts.set_compression_type(DBCompressionType.lz4())
    opts.set_max_background_jobs(4)
    return opts


def column_families() -> dict[str, Options]:
    return {META_CF: Options(raw_mode=True), MLOG_CF: Options(raw_mode=True)}


def open_secondary(data_dir: Path, secondary_dir: Path) -> Rdict:
    """Open the data directory as a RocksDB secondary instance (read-only, catches up on demand)."""
    opts = Options(raw_mode=True)
    opts.set_max_open_files(-1)  # required by secondary instances
    return Rdict(
        str(data_dir / DB_DIRNAME),
        opts,
        column_families=column_families(),
        access_type=AccessType.secondary(str(secondary_dir)),
    )


def read_committed_version(meta: Rdict) -> int:
    raw = meta.get(VERSION_KEY)
    return decode_version_record(raw)[0] if raw is not None else 0


class RangeIterator:
    """A RocksDB iterator over ``[begin, end)``, pinned to the database state at its creation.

    It owns its ``ReadOptions``: rocksdict iterators keep only a pointer to the iterate bounds, and
    once the options object is freed the bounds dangle (the iterator then silently returns nothing
    or garbage), so the options must live as long as the iterator.
    """

    def __init__(self, db: Rdict, begin: bytes, end: bytes) -> None:
        self.begin, self.end = begin, end
        self._opts = ReadOptions()
        self._opts.set_iterate_lower_bound(begin)
        self._opts.set_iterate_upper_bound(end)
        self._it = db.iter(self._opts)

    def pairs(self, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """The pairs in key order (descending when ``reverse``), then a status check: RocksDB
        iterators stop quietly on corruption and only ``status()`` tells."""
        it = self._it
        if reverse:
            it.seek_for_prev(self.end)
            if it.valid() and it.key() >= self.end:
                it.prev()
            step = it.prev
        else:
            it.seek(self.begin)
            step = it.next
        while it.valid():
            yield it.key(), it.value()
            step()
        try:
            it.status()
        except Exception as exc:  # rocksdict raises plain Exception
            raise errors.IoError(f"RocksDB read failed: {exc}") from exc


def scan(db: Rdict, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The current pairs of ``[begin, end)`` (the iterator is created on first ``next``)."""
    yield from RangeIterator(db, begin, end).pairs()


class ChunkedScan:
    """The pairs of ``[begin, end)`` in lists, read without a Python step per pair, for bulk readers.

    rocksdict's ``items()`` iterates in Rust (about twice as fast as stepping an iterator from Python)
    but, like every rocksdict iteration, ends quietly at a corrupt block and offers no ``status()``.
    So when it ends, a second iterator is positioned after the last pair returned: it must find
    nothing, and its ``status()`` must be clean. That proof holds only on a database that does not
    change meanwhile, such as a secondary instance between catch-ups; do not use this on the primary.
    """

    def __init__(self, db: Rdict, begin: bytes, end: bytes) -> None:
        self._db = db
        self.begin, self.end = begin, end
        self._opts = ReadOptions()  # owned for the iterator's lifetime (see RangeIterator)
        self._opts.set_iterate_lower_bound(begin)
        self._opts.set_iterate_upper_bound(end)
        # rocksdict's stubs type items() as a bare iterator of tuples; in raw mode they hold bytes.
        self._items = cast("Iterator[tuple[bytes, bytes]]", db.items(from_key=begin, read_opt=self._opts))
        self._last: bytes | None = None
        self.exhausted = False

    def next_chunk(self, size: int) -> list[tuple[bytes, bytes]]:
        """Up to ``size`` next pairs; an empty list once the range is exhausted (and proven so)."""
        if self.exhausted:
            return []
        chunk: list[tuple[bytes, bytes]] = list(islice(self._items, size))
        if chunk:
            self._last = chunk[-1][0]
        else:
            self.exhausted = True
            self._check_exhausted()
        return chunk

    def _check_exhausted(self) -> None:
        after = self.begin if self._last is None else key_after(self._last)
        probe = RangeIterator(self._db, after, self.end)
        for key, _ in probe.pairs():  # raises io_error on a bad status
            raise errors.IoError(
                f"RocksDB scan of [{printable(self.begin)}, {printable(self.end)}) stopped early before "
                f"{printable(key)}; the database may be corrupt"
            )


@dataclass(frozen=True, slots=True)
class RangeRead:
    #: Keys and values interleaved: ``[k0, v0, k1, v1, ...]`` (the wire format, built once).
    flat: list[bytes]
    more: bool


@dataclass(frozen=True, slots=True)
class LogRead:
    entries: list[tuple[int, bytes]]  # (version, encoded mutations of that commit)
    end_version: int


@dataclass(frozen=True, slots=True)
class IngestFile:
    """An SST file to ingest: where it is, the key range its keys lie in, and their bytes."""

    path: str
    range: KeyRange
    bytes: int


def ingest_pending(meta: Rdict) -> list[KeyRange]:
    """Ranges an ingest is changing right now, as a (secondary instance's) ``meta`` column family says."""
    markers = scan(meta, INGEST_PREFIX, strinc(INGEST_PREFIX))
    return [KeyRange(k[len(INGEST_PREFIX) :], unpack(v)[0]) for k, v in markers]


class Storage:
    """The data directory of one embedded cluster, opened by exactly one server process."""

    def __init__(self, data_dir: Path, knobs: Knobs) -> None:
        self.data_dir = data_dir
        self.knobs = knobs
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(data_dir / DB_DIRNAME), rocksdb_options(), column_families=column_families())
        except Exception as exc:
            raise errors.IoError(
                f"cannot open data directory {data_dir}: {exc} (is another embedded-cluster serving it?)"
            ) from exc
        self._meta = self._db.get_column_family(META_CF)
        self._mlog = self._db.get_column_family(MLOG_CF)
        self._meta_cf = self._db.get_column_family_handle(META_CF)
        self._mlog_cf = self._db.get_column_family_handle(MLOG_CF)
        self._write_opts = WriteOptions()
        self._write_opts.sync = bool(knobs.commit_fsync)
        self._lock = threading.Lock()

        raw_version = self._meta.get(VERSION_KEY)
        last_version, last_wall = decode_version_record(raw_version) if raw_version else (0, None)
        self.clock = VersionClock(last_version, last_wall)
        self.cluster_id: str = (self._meta.get(CLUSTER_ID_KEY) or secrets.token_hex(8).encode()).decode()
        self.timekeeper = Timekeeper(self._meta_items(TIMEKEEPER_PREFIX), knobs.timekeeper_max_age_seconds)
        shard_entries = list(self._meta_items(SHARD_PREFIX))
        self.shards = ShardMap.decode(shard_entries) if shard_entries else ShardMap.initial(knobs.shard_count)
        self.captures = {c.id: c for c in (Capture.decode(k, v) for k, v in self._meta_items(CAPTURE_PREFIX))}
        self.locks = RangeLocks([decode_lock(k, v) for k, v in self._meta_items(LOCK_PREFIX)])
        self._last_commit_at = time.monotonic()

        # The recovery commit: makes the new start version durable before anything is served.
        wb = self._batch()
        # An ingest cut short by a crash is over: whatever it left is the range's content now.
        wb.delete_range(INGEST_PREFIX, strinc(INGEST_PREFIX), self._meta_cf)
        wb.put(CLUSTER_ID_KEY, self.cluster_id.encode(), self._meta_cf)
        wb.put(KNOBS_KEY, pack(knobs.as_strings()), self._meta_cf)
        if not shard_entries:
            for shard in self.shards.states():
                wb.put(*shard.encode(), self._meta_cf)
        with self._lock:
            version = self.clock.next_version()
            # The recovery commit changes no data, so a snapshot taken just before it shows its state.
            self.history = mvcc.History(knobs.max_read_transaction_life_versions, version, self._db.snapshot())
            self._commit_batch(wb, version)
        log.info(
            "opened %s: recovered at version %d (last committed %d)",
            data_dir,
            self.history.start_version,
            last_version,
        )

    # --- plumbing ---------------------------------------------------------------------------------

    def _meta_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return scan(self._meta, prefix, strinc(prefix))

    @staticmethod
    def _batch() -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def _put_meta(self, wb: WriteBatch, changes: Sequence[MetaChange]) -> None:
        for key, value in changes:
            if value is None:
                wb.delete(key, self._meta_cf)
            else:
                wb.put(key, value, self._meta_cf)

    def _write(self, wb: WriteBatch) -> None:
        try:
            self._db.write(wb, self._write_opts)
        except Exception as exc:
            raise errors.IoError(f"RocksDB write failed: {exc}") from exc

    def _commit_batch(self, wb: WriteBatch, version: int) -> None:
        """Finish a commit's batch with the new version (and timekeeper entry) and write it.

        Caller holds the commit lock and has taken ``version`` from the clock.
        """
        wall = time.time()
        wb.put(VERSION_KEY, encode_version_record(version, wall), self._meta_cf)
        second = self.timekeeper.entry_due(wall)
        expired = self.timekeeper.expired_before(wall) if second is not None else None
        if second is not None:
            wb.put(timekeeper_key(second), version.to_bytes(8, "big", signed=True), self._meta_cf)
        if expired is not None:
            wb.delete_range(TIMEKEEPER_PREFIX, timekeeper_key(expired), self._meta_cf)
        self._write(wb)
        self.clock.committed(version)
        if second is not None:
            self.timekeeper.recorded(second, version)
        if expired is not None:
            self.timekeeper.forget_before(expired)
        self.history.prune(version)
        self._last_commit_at = time.monotonic()

    # --- versions and reads -----------------------------------------------------------------------

    @property
    def latest_version(self) -> int:
        return self.clock.last_committed

    def tick(self, idle_seconds: float) -> None:
        """Commit an empty batch if nothing committed for ``idle_seconds``, so versions keep advancing."""
        if time.monotonic() - self._last_commit_at < idle_seconds:
            return
        with self._lock:
            if time.monotonic() - self._last_commit_at >= idle_seconds:
                self._commit_batch(self._batch(), self.clock.next_version())

    def _pin(self, version: int, begin: bytes, end: bytes) -> mvcc.PinnedRead:
        """Check ``version`` can be read over ``[begin, end)``; pin what reading it needs.

        Caller holds the commit lock.
        """
        self.history.check_version(version, self.clock.last_committed)
        self.history.check_readable(version, begin, end)
        return self.history.pin(version)

    def get(self, key: bytes, version: int) -> bytes | None:
        with self._lock:
            pinned = self._pin(version, key, key + b"\x00")
            if pinned.snapshot is None:
                value: bytes | None = self._db.get(key)
                return value
        return mvcc.snapshot_get(pinned.snapshot, key)

    def get_range(
        self, begin: bytes, end: bytes, version: int, *, limit: int, limit_bytes: int, reverse: bool
    ) -> RangeRead:
        if begin > end:
            raise errors.InvertedRange(f"range begin {printable(begin)} is after its end {printable(end)}")
        if end > ALL_END:
            raise errors.KeyOutsideLegalRange(f"range end {printable(end)} is past \\xff\\xff")
        limit_bytes = min(limit_bytes or DEFAULT_READ_BYTES, MAX_READ_BYTES)
        limit = limit or (1 << 62)
        with self._lock:
            pinned = self._pin(version, begin, end)
            if begin == end:
                return RangeRead([], False)
            current = RangeIterator(self._db, begin, end)
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

    # --- commits ----------------------------------------------------------------------------------

    def commit(
        self,
        columns: Columns,
        *,
        read_version: int | None = None,
        read_conflicts: Sequence[KeyRange] = (),
        lock_owner: str | None = None,
    ) -> int:
        plan = validate(columns, read_conflicts)
        with self._lock:
            if read_version is not None:
                self.history.check_conflicts(read_version, read_conflicts, self.clock.last_committed)
            version = self.clock.next_version()
            if plan.has_versionstamps:
                columns = place_versionstamps(columns, version)
            effects = resolve(columns, plan, self._get, self._scan, self.knobs.mvcc_clear_range_keys_max)
            write_points = effects.write_points()
            record = mvcc.CommitRecord(
                version, effects.changed_keys(write_points), write_points, effects.write_ranges()
            )
            if self.locks:
                self.locks.check_writes(lock_owner, record.wrote_into)
            wb = self._batch()
            self._put_data(wb, effects)
            shard_updates = self._shard_updates(effects.shard_deltas(self.shards.begins, write_points))
            for shard in shard_updates:
                wb.put(*shard.encode(), self._meta_cf)
            if self.captures and columns[0]:
                self._put_log(wb, columns, version)
            self._commit_batch(wb, version)
            for shard in shard_updates:
                self._set_shard_bytes(shard)
            if record.keys or record.write_points or record.write_ranges:
                self.history.add(record, self._db.snapshot())
            for cleared in effects.cleared:
                if not cleared.complete:
                    self.history.invalidate(version, cleared.begin, cleared.end)
                    self._recount_shards(cleared.begin, cleared.end)
        return version

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def _scan(self, begin: bytes, end: bytes, limit: int) -> Iterator[tuple[bytes, bytes]]:
        for i, kv in enumerate(scan(self._db, begin, end)):
            if i >= limit:
                break
            yield kv

    def _put_data(self, wb: WriteBatch, effects: Effects) -> None:
        for cleared in effects.cleared:
            if not cleared.found:
                continue
            if cleared.complete and len(cleared.found) <= POINT_DELETES_MAX:
                for k in cleared.found:
                    wb.delete(k)
            else:
                wb.delete_range(cleared.begin, cleared.end)
        known = effects.known
        for k, v in effects.puts.items():
            if v is not None:
                wb.put(k, v)
            elif k not in known or known[k] is not None:
                wb.delete(k)

    def _shard_updates(self, deltas: dict[int, int]) -> list[ShardState]:
        """Shards whose byte counts this commit moves, with their new counts (not yet applied)."""
        return [replace(self.shards[i], nbytes=max(0, self.shards[i].nbytes + d)) for i, d in deltas.items() if d]

    def _set_shard_bytes(self, updated: ShardState) -> None:
        shard = self.shards[self.shards.index_of(updated.begin)]
        if shard.id == updated.id:
            shard.nbytes = updated.nbytes

    def _recount_shards(self, begin: bytes, end: bytes) -> None:
        """Recount the bytes of the shards overlapping ``[begin, end)`` after a bulk change.

        Caller holds the commit lock.
        """
        wb = self._batch()
        for i in self.shards.overlapping(begin, end):
            shard = self.shards[i]
            shard.nbytes = sum(len(k) + len(v) for k, v in scan(self._db, shard.begin, shard.end))
            wb.put(*shard.encode(), self._meta_cf)
        self._write(wb)

    def _put_log(self, wb: WriteBatch, columns: Columns, version: int) -> None:
        span = mutation_span(columns)
        whole: bytes | None = None
        for capture in self.captures.values():
            selected = capture.select(columns, span)
            if selected is columns:
                whole = whole or encode_entry(columns)
                wb.put(log_key(capture.id, version), whole, self._mlog_cf)
            elif selected[0]:
                wb.put(log_key(capture.id, version), encode_entry(selected), self._mlog_cf)

    def _metadata_commit(self, changes: Sequence[MetaChange]) -> int:
        """A commit that only changes metadata. Caller holds the lock."""
        wb = self._batch()
        self._put_meta(wb, changes)
        version = self.clock.next_version()
        self._commit_batch(wb, version)
        return version

    # --- bulk replacement of a range -------------------------------------------------------------

    def ingest(self, range: KeyRange, files: Sequence[IngestFile], *, lock_owner: str | None) -> int:
        """Replace ``range`` with the contents of SST files, bypassing the commit path and the mutation log.

        Under the commit lock: clear the range in a commit (bumping the version), then ingest the files
        with move semantics. The keys this removes are not listed anywhere, so reads older than the
        returned version over ``range`` fail with ``transaction_too_old``, and older read-conflict
        ranges over it fail with ``not_committed``. The files' keys must lie inside their ``range``,
        and those inside ``range`` (the caller checks).

        Secondary instances read the version and the data separately from this two-step change, so the
        clearing commit also writes an ingest marker that the marker's removal after the ingest takes
        back; :func:`ingest_pending` tells a secondary to catch up again rather than read in between.
        """
        if range.empty:
            raise errors.InvalidOptionValue("cannot ingest into an empty range")
        opts = IngestExternalFileOptions()
        opts.set_move_files(True)
        marker = INGEST_PREFIX + range.begin
        with self._lock:
            if self.locks:
                self.locks.check_writes(lock_owner, lambda b, e: range.intersects(KeyRange(b, e)))
            replaced = self._bytes_by_shard(range)
            wb = self._batch()
            wb.delete_range(range.begin, range.end)
            wb.put(marker, pack([range.end]), self._meta_cf)
            version = self.clock.next_version()
            self._commit_batch(wb, version)
            self.history.invalidate(version, range.begin, range.end)
            ingested = False
            try:
                if files:
                    self._db.ingest_external_file([f.path for f in files], opts)
                ingested = True
            except Exception as exc:
                raise errors.IoError(f"ingesting {len(files)} SST files into {range} failed: {exc}") from exc
            finally:
                # The snapshot serving reads at this version must include the ingested data.
                record = mvcc.CommitRecord(version, [], [], [(range.begin, range.end)])
                self.history.add(record, self._db.snapshot())
                loaded = self._loaded_bytes_by_shard(files) if ingested else {}
                wb = self._batch()
                wb.delete(marker, self._meta_cf)
                for i in self.shards.overlapping(range.begin, range.end):
                    shard = self.shards[i]
                    shard.nbytes = max(0, shard.nbytes - replaced.get(i, 0) + loaded.get(i, 0))
                    wb.put(*shard.encode(), self._meta_cf)
                self._write(wb)
        return version

    def _bytes_by_shard(self, range: KeyRange) -> dict[int, int]:
        """Bytes (keys plus values) stored in ``range``, per shard index. Caller holds the commit lock."""
        out: dict[int, int] = {}
        for i in self.shards.overlapping(range.begin, range.end):
            shard = self.shards[i]
            part = KeyRange(max(range.begin, shard.begin), min(range.end, shard.end))
            out[i] = sum(len(k) + len(v) for k, v in scan(self._db, part.begin, part.end))
        return out

    def _loaded_bytes_by_shard(self, files: Sequence[IngestFile]) -> dict[int, int]:
        """Bytes ingested per shard index: a file inside one shard counts as a whole; one that spans a
        shard boundary is counted per shard from the database. Caller holds the commit lock."""
        out: dict[int, int] = {}
        for f in files:
            shards = self.shards.overlapping(f.range.begin, f.range.end)
            if len(shards) == 1:
                out[shards[0]] = out.get(shards[0], 0) + f.bytes
                continue
            for i, part in self._bytes_by_shard(f.range).items():
                out[i] = out.get(i, 0) + part
        return out

    # --- shards -----------------------------------------------------------------------------------

    def shard_map(self) -> list[Shard]:
        with self._lock:
            return self.shards.public()

    def split_oversized_shards(self) -> int:
        """Split every shard above the target size at a key near its byte midpoint; return the count.

        Commits count an overwrite as growth, so a shard is counted exactly first and only split if it
        really is too large; after a count that finds it small enough, it is counted again only once
        its estimate has doubled, so rescans cost at most about what was written (a shard may reach
        twice the target before it splits).
        """
        target = self.knobs.shard_target_bytes
        with self._lock:
            candidates = [replace(s) for s in self.shards.states() if s.nbytes > target and s.nbytes >= 2 * s.counted]
        splits = 0
        for shard in candidates:
            total, split = self._measure(shard)
            with self._lock:
                index = self.shards.index_of(shard.begin)
                current = self.shards[index]
                if current.id != shard.id:
                    continue  # changed meanwhile; the next round looks again
                wb = self._batch()
                if total <= target or split is None:
                    current.nbytes = current.counted = total
                    wb.put(*current.encode(), self._meta_cf)
                    self._write(wb)
                    continue
                left, right = self.shards.split(index, split[0], split[1], total)
                wb.put(*left.encode(), self._meta_cf)  # same key as the old shard's entry
                wb.put(*right.encode(), self._meta_cf)
                self._write(wb)
            log.info("split shard %s at %s into %s and %s", shard.id, printable(split[0]), left.id, right.id)
            splits += 1
        return splits

    def _measure(self, shard: ShardState) -> tuple[int, tuple[bytes, int] | None]:
        """The shard's bytes now, and a key strictly inside it with about half of them before it (and
        those bytes), in one streaming pass: it keeps only a key per ~1/1024 of the estimated size."""
        grain = max(4096, shard.nbytes // 1024)
        marks: list[tuple[bytes, int]] = []
        total = next_mark = 0
        for k, v in scan(self._db, shard.begin, shard.end):
            if total >= next_mark and k > shard.begin:
                marks.append((k, total))
                next_mark = total + grain
            total += len(k) + len(v)
        half = total // 2
        return total, next((m for m in marks if m[1] >= half), None)

    # --- mutation log -----------------------------------------------------------------------------

    def start_log_capture(self, capture_id: str, ranges: Sequence[KeyRange]) -> int:
        with self._lock:
            existing = self.captures.get(capture_id)
            if existing is not None:
                return existing.begin_version
            version = self.clock.next_version()
            capture = Capture.new(capture_id, ranges, version)
            wb = self._batch()
            wb.put(capture.meta_key(), capture.encode(), self._meta_cf)
            self._commit_batch(wb, version)
            self.captures[capture_id] = capture
        return version

    def _capture(self, capture_id: str) -> Capture:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise errors.KeyNotFound(f"no log capture {capture_id!r}")
        return capture

    def read_log(self, capture_id: str, begin_version: int, limit_bytes: int) -> LogRead:
        limit_bytes = min(limit_bytes or DEFAULT_READ_BYTES, MAX_READ_BYTES)
        prefix = log_prefix(capture_id)
        begin, end = log_key(capture_id, max(0, begin_version)), strinc(prefix)
        with self._lock:
            capture = self._capture(capture_id)
            if begin_version < capture.popped_version:
                raise errors.TransactionTooOld(
                    f"log capture {capture_id!r} was popped up to version {capture.popped_version}; "
                    f"cannot read from {begin_version}"
                )
            latest = self.clock.last_committed
            entries_at_latest = RangeIterator(self._mlog, begin, end)
        entries: list[tuple[int, bytes]] = []
        nbytes = 0
        for key, blob in entries_at_latest.pairs():
            if entries and nbytes + len(blob) > limit_bytes:
                return LogRead(entries, entries[-1][0] + 1)
            entries.append((version_of_log_key(key), blob))
            nbytes += len(blob)
        return LogRead(entries, latest + 1)

    def pop_log(self, capture_id: str, version: int) -> None:
        with self._lock:
            capture = self._capture(capture_id)
            if version <= capture.popped_version:
                return
            wb = self._batch()
            wb.delete_range(log_prefix(capture_id), log_key(capture_id, version), self._mlog_cf)
            updated = replace(capture, popped_version=version)
            wb.put(updated.meta_key(), updated.encode(), self._meta_cf)
            self._write(wb)
            self.captures[capture_id] = updated

    def stop_log_capture(self, capture_id: str) -> None:
        with self._lock:
            capture = self.captures.get(capture_id)
            if capture is None:
                return
            prefix = log_prefix(capture_id)
            wb = self._batch()
            wb.delete_range(prefix, strinc(prefix), self._mlog_cf)
            wb.delete(capture.meta_key(), self._meta_cf)
            self._write(wb)
            del self.captures[capture_id]

    # --- range locks ------------------------------------------------------------------------------

    def lock_range(self, range: KeyRange, owner: str) -> int:
        with self._lock:
            return self._metadata_commit(self.locks.lock(range, owner))

    def unlock_range(self, range: KeyRange, owner: str) -> int:
        with self._lock:
            return self._metadata_commit(self.locks.unlock(range, owner))

    def lock_range_exclusive(self, range: KeyRange, owner: str) -> int:
        """Lock ``range`` for ``owner`` unless any lock, of any owner, touches it (``range_lock_reject``)."""
        with self._lock:
            return self._metadata_commit(self.locks.lock_exclusive(range, owner))

    def check_lock_held(self, range: KeyRange, owner: str) -> None:
        with self._lock:
            self.locks.check_held(range, owner)

    def range_locks(self) -> list[RangeLock]:
        with self._lock:
            return self.locks.all()

    # --- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush and close RocksDB. Column-family handles keep the database open, so they go first."""
        with self._lock:
            self.history.clear()
            self._meta.close()
            self._mlog.close()
            del self._meta_cf, self._mlog_cf, self._meta, self._mlog
            self._db.close()
            del self._db
            gc.collect()  # iterators of abandoned reads also hold the database
