"""Replacing a key range wholesale with SST files (BulkLoad's last step), beside the commit path.

Ingestion moves the files into RocksDB without writing their keys through a batch, so it bypasses the
mutation log and leaves no per-key MVCC history: the range's older versions become unreadable, which
is what FDB's BulkLoad does too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rocksdict import IngestExternalFileOptions, Rdict, WriteBatch

from embedded_cluster import mvcc
from embedded_cluster.distribution import DataDistributor
from embedded_cluster.locks import RangeLockTable
from embedded_cluster.rocks import scan
from embedded_cluster.store import Store
from embedded_cluster.wire import pack, unpack
from fdbcore import errors
from fdbcore.keys import KeyRange, strinc

#: Bytes (keys plus values) in each of some key ranges, as the database holds them now.
Count = Callable[[Sequence[KeyRange]], list[int]]

#: ``ingest/<begin>`` -> ``[end]`` in ``meta`` while SST files are being ingested into ``[begin, end)``.
INGEST_PREFIX = b"ingest/"


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


class Ingest:
    """SST ingestion into the primary, under the commit lock like a commit."""

    def __init__(self, store: Store, distributor: DataDistributor, locks: RangeLockTable) -> None:
        self._store = store
        self._distributor = distributor
        self._locks = locks

    def recover(self, wb: WriteBatch) -> None:
        """An ingest cut short by a crash is over: whatever it left is the range's content now."""
        wb.delete_range(INGEST_PREFIX, strinc(INGEST_PREFIX), self._store.meta_cf)

    def replace(
        self, range: KeyRange, files: Sequence[IngestFile], *, lock_owner: str | None, count: Count | None = None
    ) -> int:
        """Replace ``range`` with the contents of SST files, bypassing the commit path and the mutation log.

        Under the commit lock: clear the range in a commit (bumping the version; a range that holds
        nothing gets only the version), then ingest the files with move semantics. The keys this
        removes are not listed anywhere, so reads older than the returned version over ``range`` fail
        with ``transaction_too_old``, and older read-conflict ranges over it fail with
        ``not_committed``. The files' keys must lie inside their ``range``, and those inside ``range``
        (the caller checks).

        Secondary instances read the version and the data separately from this two-step change, so the
        clearing commit also writes an ingest marker that the marker's removal after the ingest takes
        back; :func:`ingest_pending` tells a secondary to catch up again rather than read in between.

        The shards' byte counts are taken outside the commit lock, by ``count`` (bytes in each of a list
        of ranges; default: a scan here), so a large load never holds up commits elsewhere.
        """
        if range.empty:
            raise errors.InvalidOptionValue("cannot ingest into an empty range")
        store, distributor, held = self._store, self._distributor, self._locks.held
        opts = IngestExternalFileOptions()
        opts.set_move_files(True)
        marker = INGEST_PREFIX + range.begin
        # Before the commit lock, so that commits elsewhere go on meanwhile (only the loader writes the
        # range while it holds its lock): count what the range holds, and flush the memtable, which
        # RocksDB would otherwise flush inside the ingest when it overlaps the files.
        count = count or self._scan_bytes
        held_before = self._count_by_shard([range], count)
        # Only the loader writes the range now, so a range that held nothing still holds nothing under
        # the commit lock. Clearing it would leave a range tombstone above the files, and RocksDB would
        # then ingest them into level 0 rather than the bottom level: a load in many calls would fill
        # level 0, every flush would wait for its compaction (hundreds of megabytes) and writes would
        # slow down. (The empty key with an empty value is the one key that counts 0 bytes.)
        empty = not any(n for _, _, n in held_before) and (range.begin != b"" or store.db.get(b"") is None)
        if files:
            store.db.flush()
        with store.commit_lock:
            if held:
                held.check_writes(lock_owner, lambda b, e: range.intersects(KeyRange(b, e)))
            if lock_owner is not None:  # still: a load that outlived its job's lock must not land
                held.check_held(range, lock_owner)
            replaced = self._by_index(held_before)
            if replaced is None:  # a shard split meanwhile: count again
                replaced = distributor.bytes_by_shard(range)
            wb = store.batch()
            if not empty:
                wb.delete_range(range.begin, range.end)
            wb.put(marker, pack([range.end]), store.meta_cf)
            version = store.clock.next_version()
            store.commit(wb, version)
            store.history.invalidate(version, range.begin, range.end)
            ingested = False
            try:
                if files:
                    store.db.ingest_external_file([f.path for f in files], opts)
                ingested = True
            except Exception as exc:
                raise errors.IoError(f"ingesting {len(files)} SST files into {range} failed: {exc}") from exc
            finally:
                # The snapshot serving reads at this version must include the ingested data.
                record = mvcc.CommitRecord(version, [], [], [(range.begin, range.end)])
                store.history.add(record, store.db.snapshot())
                loaded, spanning = self._whole_files_by_shard(files) if ingested else ({}, [])
                distributor.uncounted.extend(f.range for f in spanning)  # the splitter leaves their shards be
                wb = store.batch()
                wb.delete(marker, store.meta_cf)
                distributor.replaced(wb, range, replaced, loaded)
                if ingested:
                    distributor.split_loaded(wb, range, [(f.range, f.bytes) for f in files])
                store.write(wb)
        try:
            self._count_spanning(spanning, count)
        finally:
            with store.commit_lock:
                for f in spanning:
                    distributor.uncounted.remove(f.range)
        return version

    def _whole_files_by_shard(self, files: Sequence[IngestFile]) -> tuple[dict[int, int], list[IngestFile]]:
        """Bytes per shard index of the files that lie inside one shard (each counts as a whole), and the
        files that span a shard boundary. Caller holds the commit lock."""
        out: dict[int, int] = {}
        spanning = []
        for f in files:
            shards = self._distributor.map.overlapping(f.range.begin, f.range.end)
            if len(shards) == 1:
                out[shards[0]] = out.get(shards[0], 0) + f.bytes
            else:
                spanning.append(f)
        return out, spanning

    def _count_spanning(self, files: Sequence[IngestFile], count: Count) -> None:
        """Add what files across shard boundaries brought to each shard, counted outside the commit lock.

        Another load may cut one of those shards meanwhile, from counts that lack these bytes. Loads
        into other ranges cut only inside their own ranges, so each counted part still lies in one shard
        and its bytes go there; a part cut inside is counted again by its new shards. The background
        splitter, whose exact count would include the bytes, leaves those shards alone until this is
        done (``DataDistributor.uncounted``).
        """
        pending = [f.range for f in files]
        store, shards = self._store, self._distributor.map
        while pending:
            counted = self._count_by_shard(pending, count)
            with store.commit_lock:
                wb = store.batch()
                pending = []
                for _, part, nbytes in counted:
                    i = shards.index_of(part.begin)
                    if shards[i].end >= part.end:
                        self._distributor.replaced(wb, part, {}, {i: nbytes})
                    else:
                        pending.append(part)
                store.write(wb)

    def _count_by_shard(self, ranges: Sequence[KeyRange], count: Count) -> list[tuple[str, KeyRange, int]]:
        """Bytes in each shard's part of ``ranges``, counted outside the commit lock (a large range's scan
        would hold up every commit, a live cluster's workload included): (shard id, part, bytes)."""
        with self._store.commit_lock:
            shards = self._distributor.map
            parts = [
                (shards[i].id, KeyRange(max(r.begin, shards[i].begin), min(r.end, shards[i].end)))
                for r in ranges
                for i in shards.overlapping(r.begin, r.end)
            ]
        sizes = count([part for _, part in parts])
        return [(sid, part, n) for (sid, part), n in zip(parts, sizes, strict=True)]

    def _scan_bytes(self, ranges: Sequence[KeyRange]) -> list[int]:
        db = self._store.db
        return [sum(len(k) + len(v) for k, v in scan(db, r.begin, r.end)) for r in ranges]

    def _by_index(self, counted: Sequence[tuple[str, KeyRange, int]]) -> dict[int, int] | None:
        """``counted`` per shard index now; None if a shard changed since. Caller holds the commit lock."""
        shards = self._distributor.map
        out = {}
        for sid, part, nbytes in counted:
            i = shards.index_of(part.begin)
            if shards[i].id != sid or shards[i].end < part.end:
                return None
            out[i] = nbytes
        return out
