"""What FDB's data distributor does here: keep every shard's byte count, split shards that grow too large.

The shard map itself is :mod:`.shards`. Counts move with every commit, in the commit's own batch, so
a restart finds them consistent with the data; bulk changes (large clears, ingests) count from the
database instead; the background splitter recounts a shard exactly before it cuts it.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from itertools import accumulate, pairwise
from operator import add

from rocksdict import WriteBatch

from embedded_cluster.rocks import scan, scan_chunks
from embedded_cluster.shards import SHARD_PREFIX, ShardMap, ShardState
from embedded_cluster.store import Store
from fdbcore.cluster.interface import Shard
from fdbcore.keys import KeyRange, printable

log = logging.getLogger(__name__)

#: A shard's bytes, and a key near its byte midpoint with the bytes before it (None: none found).
Measured = tuple[int, tuple[bytes, int] | None]


class DataDistributor:
    """The shard map with its byte counts, which commits and ingests keep, and the splitter."""

    def __init__(self, store: Store) -> None:
        self._store = store
        entries = list(store.meta_items(SHARD_PREFIX))
        self._persisted = bool(entries)
        self.map = ShardMap.decode(entries) if entries else ShardMap.initial(store.knobs.shard_count)
        #: Ranges whose bytes are in the database but not yet in their shards' counts (an ingested file
        #: across a shard boundary, counted after the ingest): :meth:`split_oversized` leaves their
        #: shards alone meanwhile. Changed under the commit lock.
        self.uncounted: list[KeyRange] = []

    def recover(self, wb: WriteBatch) -> None:
        """Put a new data directory's initial shards into the recovery commit."""
        if not self._persisted:
            for shard in self.map.states():
                wb.put(*shard.encode(), self._store.meta_cf)

    def public(self) -> list[Shard]:
        with self._store.commit_lock:
            return self.map.public()

    # --- counts -------------------------------------------------------------------------------------

    def moved(self, wb: WriteBatch, deltas: dict[int, int]) -> list[ShardState]:
        """Put the shards whose byte counts a commit moves into its batch, with their new counts; the
        caller hands them to :meth:`applied` once the batch is written. Caller holds the commit lock."""
        shards, meta_cf = self.map, self._store.meta_cf
        updates = [replace(shards[i], nbytes=max(0, shards[i].nbytes + d)) for i, d in deltas.items() if d]
        for shard in updates:
            wb.put(*shard.encode(), meta_cf)
        return updates

    def applied(self, updates: list[ShardState]) -> None:
        """Take the counts :meth:`moved` wrote, unless the shard was split meanwhile."""
        for updated in updates:
            shard = self.map[self.map.index_of(updated.begin)]
            if shard.id == updated.id:
                shard.nbytes = updated.nbytes

    def recount(self, begin: bytes, end: bytes) -> None:
        """Recount the bytes of the shards overlapping ``[begin, end)`` after a bulk change.

        Caller holds the commit lock.
        """
        store = self._store
        wb = store.batch()
        for i in self.map.overlapping(begin, end):
            shard = self.map[i]
            shard.nbytes = sum(len(k) + len(v) for k, v in scan(store.db, shard.begin, shard.end))
            wb.put(*shard.encode(), store.meta_cf)
        store.write(wb)

    def bytes_by_shard(self, range: KeyRange) -> dict[int, int]:
        """Bytes (keys plus values) stored in ``range``, per shard index. Caller holds the commit lock."""
        out: dict[int, int] = {}
        for i in self.map.overlapping(range.begin, range.end):
            shard = self.map[i]
            part = KeyRange(max(range.begin, shard.begin), min(range.end, shard.end))
            out[i] = sum(len(k) + len(v) for k, v in scan(self._store.db, part.begin, part.end))
        return out

    def replaced(self, wb: WriteBatch, range: KeyRange, removed: dict[int, int], added: dict[int, int]) -> None:
        """Count a wholesale replacement of ``range`` (bytes per shard index) and put the new counts
        into ``wb``. Caller holds the commit lock."""
        for i in self.map.overlapping(range.begin, range.end):
            shard = self.map[i]
            shard.nbytes = max(0, shard.nbytes - removed.get(i, 0) + added.get(i, 0))
            wb.put(*shard.encode(), self._store.meta_cf)

    # --- splits -------------------------------------------------------------------------------------

    def split_loaded(self, wb: WriteBatch, range: KeyRange, loaded: Sequence[tuple[KeyRange, int]]) -> None:
        """After ``range`` was replaced by loaded pieces of known bytes (a BulkLoad's files, each
        ``(range, bytes)``), cut every shard that is now over the target at piece boundaries, with
        no scan: each new shard holds whole pieces up to the target. A shard's other bytes (data
        outside ``range``, a piece crossing one of its ends) go to its first or last new shard,
        whichever end they can lie at; a shard where they may lie at both ends is left to the
        splitter. Put the new shards into ``wb``.

        Caller holds the commit lock (and has counted the replacement with :meth:`replaced`).
        """
        target = self._store.knobs.shard_target_bytes
        for index in reversed(self.map.overlapping(range.begin, range.end)):
            shard = self.map[index]
            inside = sorted((r.begin, n) for r, n in loaded if shard.begin <= r.begin and r.end <= shard.end)
            at_begin = shard.begin < range.begin or any(r.begin < shard.begin < r.end for r, _ in loaded)
            at_end = range.end < shard.end or any(r.begin < shard.end < r.end for r, _ in loaded)
            if shard.nbytes <= target or len(inside) < 2 or (at_begin and at_end):
                continue
            rest = max(0, shard.nbytes - sum(n for _, n in inside))
            cuts: list[tuple[bytes, int]] = [(shard.begin, rest if at_begin else 0)]  # (begin, bytes)
            for begin, nbytes in inside:
                if cuts[-1][1] and cuts[-1][1] + nbytes > target and begin > cuts[-1][0]:
                    cuts.append((begin, 0))
                cuts[-1] = (cuts[-1][0], cuts[-1][1] + nbytes)
            if len(cuts) == 1:
                continue
            if not at_begin:
                cuts[-1] = (cuts[-1][0], cuts[-1][1] + rest)
            total = shard.nbytes
            for i, ((_, nbytes), (next_begin, _)) in enumerate(pairwise(cuts)):
                # the left part keeps the old shard's begin (and meta key); the right one is cut again
                left, right = self.map.split(index + i, next_begin, nbytes, total)
                total -= nbytes
                wb.put(*left.encode(), self._store.meta_cf)
                wb.put(*right.encode(), self._store.meta_cf)
            log.info("split loaded shard %s into %d shards at the loaded files' boundaries", shard.id, len(cuts))

    def split_oversized(self, measure: Callable[[ShardState], Measured] | None = None) -> int:
        """Split every shard above the target size at a key near its byte midpoint; return the count.

        ``measure`` counts a shard's bytes and finds its midpoint (by default here, with
        :func:`measure_pairs`; the server has its worker processes do it, off the commit path's core).

        Commits count an overwrite as growth, so a shard is counted exactly first and only split if it
        really is too large; after a count that finds it small enough, it is counted again only once
        its estimate has doubled, so rescans cost at most about what was written (a shard may reach
        twice the target before it splits).

        The count runs outside the commit lock, so what commits and ingests added to the shard's count
        since it was chosen is added to the exact count (which may predate them): taking the exact
        count alone would lose them. A change that lands between the choice and the count is then
        counted twice, which the next count corrects; a loss would go uncorrected.
        """
        store = self._store
        target = store.knobs.shard_target_bytes
        with store.commit_lock:
            candidates = [replace(s) for s in self.map.states() if s.nbytes > target and s.nbytes >= 2 * s.counted]
        splits = 0
        for shard in candidates:
            if self._uncounted_in(shard):
                continue
            measured, split = (measure or self._measure)(shard)
            with store.commit_lock:
                index = self.map.index_of(shard.begin)
                current = self.map[index]
                if current.id != shard.id or self._uncounted_in(current):
                    continue  # changed meanwhile; the next round looks again
                total = max(0, measured + current.nbytes - shard.nbytes)  # see above
                wb = store.batch()
                if measured <= target or split is None:
                    current.nbytes, current.counted = total, measured
                    wb.put(*current.encode(), store.meta_cf)
                    store.write(wb)
                    continue
                left, right = self.map.split(index, split[0], min(split[1], total), total)
                wb.put(*left.encode(), store.meta_cf)  # same key as the old shard's entry
                wb.put(*right.encode(), store.meta_cf)
                store.write(wb)
            log.info("split shard %s at %s into %s and %s", shard.id, printable(split[0]), left.id, right.id)
            splits += 1
        return splits

    def _uncounted_in(self, shard: ShardState) -> bool:
        return any(r.intersects(KeyRange(shard.begin, shard.end)) for r in self.uncounted)

    def _measure(self, shard: ShardState) -> Measured:
        return measure_pairs(scan_chunks(self._store.db, shard.begin, shard.end), shard.begin, shard.nbytes)


def measure_pairs(chunks: Iterable[Sequence[tuple[bytes, bytes]]], begin: bytes, estimate: int) -> Measured:
    """The bytes of a shard's pairs (in key order, in chunks) and a key strictly after ``begin`` with
    about half of them before it (and those bytes), in one streaming pass that keeps only a key per
    ~1/1024 of the ``estimate``d size and finds those keys by bisection, not pair by pair."""
    grain = max(4096, estimate // 1024)
    marks: list[tuple[bytes, int]] = []
    total = next_mark = 0
    for chunk in chunks:
        keys, values = zip(*chunk, strict=True)
        # before[i]: the shard's bytes ahead of keys[i]
        before = list(accumulate(map(add, map(len, keys), map(len, values)), initial=total))
        total = before.pop()
        i = bisect_left(before, next_mark)
        while i < len(keys):
            if keys[i] > begin:
                marks.append((keys[i], before[i]))
                next_mark = before[i] + grain
                i = bisect_left(before, next_mark, i + 1)
            else:
                i += 1
    half = total // 2
    return total, next((m for m in marks if m[1] >= half), None)
