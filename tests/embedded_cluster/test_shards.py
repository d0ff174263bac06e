"""The shard map: ids, covering the key space, byte counts, splitting as data grows."""

from __future__ import annotations

import random
import re
from itertools import pairwise
from pathlib import Path

import pytest

from embedded_cluster.distribution import DataDistributor, measure_pairs
from embedded_cluster.knobs import Knobs
from embedded_cluster.store import Store
from fdbcore.keys import ALL_END, KeyRange
from fdbcore.mutations import clear_range, set_value
from tests.embedded_cluster.util import wait_for_splits
from tests.fixtures.cluster import EmbeddedCluster


def assert_covers_key_space(shards) -> None:
    assert shards[0].range.begin == b"" and shards[-1].range.end == ALL_END
    for a, b in pairwise(shards):
        assert a.range.end == b.range.begin
    assert all(re.fullmatch(r"[0-9a-f]{32}", s.id) for s in shards)
    assert len({s.id for s in shards}) == len(shards)
    assert shards[-1].range == KeyRange(b"\xff", ALL_END)  # system keys are their own shard


def test_shards_split_as_data_grows(embedded_cluster_factory) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(shard_count=2, shard_target_bytes=40_000)
    db = cluster.driver
    initial = db.shard_map()
    assert len(initial) == 3
    assert_covers_key_space(initial)

    for i in range(10):
        db.commit([set_value(b"s/%05d" % (i * 100 + j), b"v" * 200) for j in range(100)])
    shards = wait_for_splits(db, 40_000)
    assert_covers_key_space(shards)
    inside = [s for s in shards if b"s/" <= s.range.begin < b"s0"]
    assert len(inside) >= 4  # about 210 KB of data in shards of at most 40 KB
    assert not {s.id for s in shards} & {s.id for s in initial if s.range.contains(b"s/")}
    sizes = db.status().extra["shard_bytes"]
    data_bytes = 1000 * (len(b"s/00000") + 200)
    assert sum(sizes.values()) == data_bytes
    assert {s.id: s.bytes for s in db.shard_map() if s.bytes} == {k: n for k, n in sizes.items() if n}

    # Clearing gives the bytes back to the shards' counts.
    db.commit([clear_range(b"s/", b"s0")])
    assert sum(db.status().extra["shard_bytes"].values()) == 0


def test_overwrites_are_recounted_before_splitting(embedded_cluster_factory) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(shard_count=1, shard_target_bytes=30_000)
    db = cluster.driver
    for _ in range(10):  # 10 x 10 KB of overwrites of the same 10 KB
        db.commit([set_value(b"w/%03d" % j, b"v" * 100) for j in range(100)])
    shards = wait_for_splits(db, 30_000)
    assert len(shards) == 2  # recounted to its true 10 KB, not split
    assert db.status().extra["shard_bytes"][shards[0].id] == 100 * (len(b"w/000") + 100)


def test_a_shard_is_measured_in_chunks_as_pair_by_pair() -> None:
    """The splitter's one-pass measure finds its marks by bisection within chunks; the result is the
    one a pair-by-pair pass gives (a mark every ~1/1024 of the estimate, the first at or past half)."""
    rng = random.Random(5)
    pairs = sorted({b"k%06d" % rng.randrange(10**6): rng.randbytes(rng.randint(0, 300)) for _ in range(5000)}.items())

    def pair_by_pair(begin: bytes, estimate: int) -> tuple[int, tuple[bytes, int] | None]:
        grain = max(4096, estimate // 1024)
        marks, total, next_mark = [], 0, 0
        for k, v in pairs:
            if total >= next_mark and k > begin:
                marks.append((k, total))
                next_mark = total + grain
            total += len(k) + len(v)
        return total, next((m for m in marks if m[1] >= total // 2), None)

    for chunk in (1, 7, 1024):
        for begin in (pairs[0][0], b""):
            for estimate in (0, 10**5, 10**6, 10**8):
                chunks = [pairs[i : i + chunk] for i in range(0, len(pairs), chunk)]
                assert measure_pairs(chunks, begin, estimate) == pair_by_pair(begin, estimate)
    assert measure_pairs([], b"", 10**6) == (0, None)
    assert measure_pairs([[(b"a", b"1")]], b"a", 10**6) == (2, None)  # no key strictly inside


FILES = [(KeyRange(b"f/%d" % i, b"f/%d" % (i + 1)), 3_000) for i in range(9)] + [(KeyRange(b"f/9", b"f0"), 3_000)]
CUTS = [b"", b"f/2", b"f/4", b"f/6", b"f/8"]  # 30,000 bytes in ten files, cut two a shard (target 7,000)


@pytest.mark.parametrize(
    ("loaded", "other_bytes", "expected"),
    [
        (KeyRange(b"", b"\xff"), 0, list(zip(CUTS, [6_000] * 5, strict=True))),
        # other data can only lie after the loaded range: it counts in the last new shard
        (KeyRange(b"", b"f0"), 500, list(zip(CUTS, [6_000] * 4 + [6_500], strict=True))),
        # ... or only before it: in the first
        (KeyRange(b"f/", b"\xff"), 500, list(zip(CUTS, [6_500] + [6_000] * 4, strict=True))),
        # ... or at either end: the shard is left to the splitter
        (KeyRange(b"f/", b"f0"), 500, [(b"", 30_500)]),
    ],
)
def test_a_loaded_range_is_cut_at_its_files_without_a_scan(
    tmp_path: Path, loaded: KeyRange, other_bytes: int, expected: list[tuple[bytes, int]]
) -> None:
    store = Store(tmp_path, Knobs(shard_count=1, shard_target_bytes=7_000))
    try:
        dd = DataDistributor(store)
        wb = store.batch()
        dd.recover(wb)  # the initial shards, persisted
        dd.map[0].nbytes = 30_000 + other_bytes  # what replaced() counted
        dd.split_loaded(wb, loaded, FILES)
        assert [(s.begin, s.nbytes) for s in dd.map.states()[:-1]] == expected
        store.write(wb)
        persisted = DataDistributor(store).map.states()  # the new shards are in the batch
        assert [(s.begin, s.id) for s in persisted] == [(s.begin, s.id) for s in dd.map.states()]
    finally:
        store.close()


@pytest.mark.parametrize("measured_bytes", [5_000, 20_000])  # recounted small / cut in two
def test_a_count_that_moves_while_the_splitter_measures_is_kept(tmp_path: Path, measured_bytes: int) -> None:
    """The splitter counts a shard outside the commit lock; what an ingest or commit adds to the shard's
    count meanwhile must survive the exact count (it used to be overwritten by it)."""
    store = Store(tmp_path, Knobs(shard_count=1, shard_target_bytes=10_000))
    try:
        dd = DataDistributor(store)
        dd.recover(store.batch())
        dd.map[0].nbytes = 25_000  # the running count; its data really holds ``measured_bytes``

        def measure_while_an_ingest_lands(shard):
            dd.map[0].nbytes += 3_000  # what replaced() adds under the commit lock meanwhile
            return measured_bytes, (b"m", measured_bytes // 2)

        dd.split_oversized(measure_while_an_ingest_lands)
        assert sum(s.nbytes for s in dd.map.states()) == measured_bytes + 3_000
        assert len(dd.map.states()) == (3 if measured_bytes > 10_000 else 2)
    finally:
        store.close()
