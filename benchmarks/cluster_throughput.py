"""Throughput of the embedded cluster's reads, commits and log through its RPC (a script, not a test).

    python -m benchmarks.cluster_throughput [--transactions 100] [--value-size 100]

Starts a server in a temporary folder and measures, with one client process:

- commit: sets of ``value-size``-byte values under 16-byte keys, in transactions of about 1 MB;
- get_range: the whole data set at one version, in chunks of about 1 MB;
- read_log: the same data as mutations retained by a log capture, in batches of about 1 MB;
- commit again over half of the keys, then get_range at the version before those overwrites (how a
  backup reads while the database keeps changing).

MB/s counts key and value bytes (the logical data), as the other benchmarks of this project do.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from tests.fixtures.cluster import EmbeddedCluster

KEY_FORMAT = b"bench/%010d"  # 16 bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=100)
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cluster = EmbeddedCluster(Path(tmp), {})
        cluster.start()
        try:
            run(cluster, args.transactions, args.value_size)
        finally:
            cluster.close()


def report(name: str, nbytes: int, seconds: float, extra: str = "") -> None:
    print(f"{name:<28} {nbytes / 1e6:8.1f} MB in {seconds:6.2f} s = {nbytes / seconds / 1e6:7.1f} MB/s {extra}")


def run(cluster: EmbeddedCluster, transactions: int, value_size: int) -> None:
    db = cluster.driver
    per_txn = 1_000_000 // (16 + value_size)
    rng = random.Random(0)
    batches = [
        [set_value(KEY_FORMAT % (t * per_txn + i), rng.randbytes(value_size)) for i in range(per_txn)]
        for t in range(transactions)
    ]
    data_bytes = sum(len(m.param1) + len(m.param2) for batch in batches for m in batch)
    capture_begin = db.start_log_capture("bench", [KeyRange(b"bench/", b"bench0")])

    started = time.perf_counter()
    for batch in batches:
        db.commit(batch)
    report("commit (new keys)", data_bytes, time.perf_counter() - started, f"({per_txn} keys per commit)")

    started = time.perf_counter()
    read_range(db, db.get_read_version(), transactions * per_txn)
    report("get_range (1 MB chunks)", data_bytes, time.perf_counter() - started)

    started = time.perf_counter()
    begin, mutations = capture_begin, 0
    while True:
        logged = db.read_log("bench", begin, limit_bytes=1 << 20)
        if not logged.mutations:
            break
        mutations += len(logged.mutations)
        begin = logged.end_version
    assert mutations == transactions * per_txn
    report("read_log (1 MB batches)", data_bytes, time.perf_counter() - started)

    before_overwrites = db.get_read_version()
    started = time.perf_counter()
    for batch in batches[: transactions // 2]:
        db.commit(batch)
    half = sum(len(m.param1) + len(m.param2) for batch in batches[: transactions // 2] for m in batch)
    report("commit (overwrites)", half, time.perf_counter() - started)

    # The backup case: a snapshot read at a version older than half of the data's latest writes.
    started = time.perf_counter()
    read_range(db, before_overwrites, transactions * per_txn)
    report("get_range, older version", data_bytes, time.perf_counter() - started, "(half the keys rewritten since)")


def read_range(db: ClusterDriver, version: int, expected_keys: int) -> None:
    cursor, keys = b"bench/", 0
    while True:
        chunk = db.get_range(cursor, b"bench0", version, limit_bytes=1 << 20)
        keys += len(chunk.kvs)
        if not chunk.more:
            break
        cursor = chunk.kvs[-1][0] + b"\x00"
    assert keys == expected_keys


if __name__ == "__main__":
    main()
