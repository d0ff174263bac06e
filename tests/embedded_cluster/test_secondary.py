"""Reading the data directory from other processes (RocksDB secondary instances) while the primary is
written: every read sees a whole commit, i.e. the data exactly as of the version it reports."""

from __future__ import annotations

from embedded_cluster.secondary import WorkerPool, digest_range, secondary_view
from fdbcore.cluster.checksum import RangeDigest
from fdbcore.mutations import set_value
from tests.fdbcore.cluster.util import Writer, digest_at
from tests.fixtures.cluster import EmbeddedCluster


def test_secondary_view_reads_whole_commits(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    db.commit([set_value(b"w/%05d" % i, b"x" * 50) for i in range(6000)])
    with Writer(db) as writer, secondary_view(embedded_cluster.data_dir) as view:
        seen = set()
        for _ in range(6):
            version = view.catch_up()
            d = RangeDigest()
            d.update(view.scan(b"w/", b"w0"))
            assert (d.keys, d.bytes, d.hexdigest()) == digest_at(db, b"w/", b"w0", version)
            seen.add(version)
        assert len(seen) > 1 and writer.commits > 0


def test_shard_digests_in_worker_processes(embedded_cluster_factory) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(shard_count=8, bulkdump_parallelism=2)
    db = cluster.driver
    db.commit([set_value(bytes([b]) + b"/%03d" % i, b"y" * 30) for b in range(0, 250, 10) for i in range(100)])
    with Writer(db):
        digests = db.shard_digests()
        assert [(d["id"], d["begin"], d["end"]) for d in digests] == [
            (s.id, s.range.begin, s.range.end) for s in db.shard_map()
        ]
        for d in digests:
            assert (d["keys"], d["bytes"], d["sha256"]) == digest_at(db, d["begin"], d["end"], d["version"])
    assert sum(d["keys"] for d in digests) >= 2500


def test_worker_pool_uses_spawned_processes(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    db.commit([set_value(b"p/%d" % i, b"v") for i in range(100)])
    pool = WorkerPool(2)
    try:
        results = pool.map(digest_range, [(str(embedded_cluster.data_dir), b"p/", b"p0")] * 3)
    finally:
        pool.close()
    assert {(r.keys, r.sha256) for r in results} == {digest_at(db, b"p/", b"p0", results[0].version)[::2]}
