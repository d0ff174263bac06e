"""Replacing a key range wholesale with SST files (BulkLoad's last step), beside the commit path.

Ingestion moves the files into RocksDB without writing their keys through a batch, so it bypasses the
mutation log and leaves no per-key MVCC history: the range's older versions become unreadable, which
is what FDB's BulkLoad does too.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def replace(self, range: KeyRange, files: Sequence[IngestFile], *, lock_owner: str | None) -> int:
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
        store, distributor, held = self._store, self._distributor, self._locks.held
        opts = IngestExternalFileOptions()
        opts.set_move_files(True)
        marker = INGEST_PREFIX + range.begin
        with store.commit_lock:
            if held:
                held.check_writes(lock_owner, lambda b, e: range.intersects(KeyRange(b, e)))
            replaced = distributor.bytes_by_shard(range)
            wb = store.batch()
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
                loaded = self._loaded_bytes_by_shard(files) if ingested else {}
                wb = store.batch()
                wb.delete(marker, store.meta_cf)
                distributor.replaced(wb, range, replaced, loaded)
                if ingested:
                    distributor.split_loaded(wb, range, [(f.range, f.bytes) for f in files])
                store.write(wb)
        return version

    def _loaded_bytes_by_shard(self, files: Sequence[IngestFile]) -> dict[int, int]:
        """Bytes ingested per shard index: a file inside one shard counts as a whole; one that spans a
        shard boundary is counted per shard from the database. Caller holds the commit lock."""
        out: dict[int, int] = {}
        for f in files:
            shards = self._distributor.map.overlapping(f.range.begin, f.range.end)
            if len(shards) == 1:
                out[shards[0]] = out.get(shards[0], 0) + f.bytes
                continue
            for i, part in self._distributor.bytes_by_shard(f.range).items():
                out[i] = out.get(i, 0) + part
        return out
