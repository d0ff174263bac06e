"""BulkDump and BulkLoad throughput beside the bare RocksDB operations they are built on (a script, not a test).

    python -m benchmarks.bulk_throughput [--keys 1000000] [--value-size 100] [--keep DIR]

For N random 16-byte keys with random values (which do not compress), it measures, on this machine:

- a bare ``SstFileWriter`` loop over the sorted pairs (uncompressed, as BulkDump writes);
- our BulkDump of the whole key space of a cluster holding them: the job-level command (one task per
  shard, all in parallel in the cluster's worker processes) into a ``file://`` container;
- a bare ``ingest_external_file`` of the dumped SSTs into a fresh RocksDB: moving them, and copying
  them first (what loading from a ``file://`` container must do at least);
- our BulkLoad of that dataset into a second cluster (with the BulkLoad knobs): the job-level command;

then ``embedded-cluster checksum`` of both clusters. MB/s counts key and value bytes (the logical
data), as the project's other benchmarks do. Both clusters run with default knobs otherwise; the
source waits for its shards to split and its background flushes to settle before dumping. The dump
runs twice: the first time the server starts its worker processes and each opens its RocksDB
secondary instance (replaying the write-ahead log), which a long-running server does once; the
load uses the second dump.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from rocksdict import DBCompressionType, IngestExternalFileOptions, Options, Rdict, SstFileWriter

from embedded_cluster.bulkjobs import dump_job, load_job
from embedded_cluster.rocks import rocksdb_options
from fdbcore.bulkdump_dataset import in_root
from fdbcore.container import open_container
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fixtures.cluster import EmbeddedCluster

USER_KEYS = KeyRange(b"", b"\xff")
BULKLOAD_KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}
COMMIT_BYTES = 1_000_000
SETTLE_SECONDS = 5
BARE_WRITER = "bare SstFileWriter loop"
BARE_COPY_INGEST = "bare copy + ingest_external_file"


def make_pairs(n: int, value_size: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(0)
    keys: set[bytes] = set()
    while len(keys) < n:
        key = rng.randbytes(16)
        keys.add(bytes([key[0] % 255]) + key[1:])  # user keys: never \xff first
    return [(k, rng.randbytes(value_size)) for k in sorted(keys)]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare_writer(pairs: list[tuple[bytes, bytes]], path: Path) -> None:
    opts = Options(raw_mode=True)
    opts.set_compression_type(DBCompressionType.none())
    writer = SstFileWriter(options=opts)
    writer.open(str(path))
    for k, v in pairs:
        writer[k] = v
    writer.finish()


def bare_ingest(ssts: list[Path], db_dir: Path, *, copy_to: Path | None) -> float:
    """Seconds to ingest ``ssts`` (moved) into a fresh database, after copying them when ``copy_to``."""
    db = Rdict(str(db_dir), rocksdb_options())
    opts = IngestExternalFileOptions()
    opts.set_move_files(True)
    try:
        started = time.perf_counter()
        if copy_to is not None:
            copy_to.mkdir()
            ssts = [Path(shutil.copy(p, copy_to / f"{i}.sst")) for i, p in enumerate(ssts)]
        db.ingest_external_file([str(p) for p in ssts], opts)
        return time.perf_counter() - started
    finally:
        db.close()


def fill(cluster: EmbeddedCluster, pairs: list[tuple[bytes, bytes]]) -> None:
    per_commit = max(1, COMMIT_BYTES // (len(pairs[0][0]) + len(pairs[0][1]) + 12))
    for i in range(0, len(pairs), per_commit):
        cluster.driver.commit([set_value(k, v) for k, v in pairs[i : i + per_commit]])


def wait_for_splits(cluster: EmbeddedCluster, target: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while max(cast(dict[str, int], cluster.driver.status().extra["shard_bytes"]).values()) > target:
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def checksum(cluster: EmbeddedCluster) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "cli.embedded_cluster", "checksum", "-C", str(cluster.cluster_file)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        run(args.keep, args.keys, args.value_size)
    else:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            run(Path(tmp), args.keys, args.value_size)


def run(work: Path, n: int, value_size: int) -> None:
    pairs = make_pairs(n, value_size)
    logical = sum(len(k) + len(v) for k, v in pairs)
    print(f"{n:,} keys x {value_size}-byte values, 16-byte keys: {logical / 1e6:.1f} MB of keys and values")
    print(f"{os.cpu_count()} CPUs; work folder {work}\n")
    rows: list[tuple[str, float, str]] = []

    bare_write = timed(lambda: bare_writer(pairs, work / "bare.sst"))
    rows.append((BARE_WRITER, bare_write, ""))

    source = EmbeddedCluster(work / "source", {})
    dest = EmbeddedCluster(work / "dest", BULKLOAD_KNOBS)
    for cluster in (source, dest):
        cluster.root.mkdir()
        cluster.start()
    try:
        started = time.perf_counter()
        fill(source, pairs)
        print(f"filled the source cluster by commits in {time.perf_counter() - started:.1f} s")
        wait_for_splits(source, 32 << 20)
        time.sleep(SETTLE_SECONDS)  # RocksDB's flushes and compactions after the fill compete for the CPUs
        url = f"file://{work}/backup"
        container = open_container(url)
        pieces = len([s for s in source.driver.shard_map() if s.range.intersects(USER_KEYS)])
        for when in ("first: workers start", "again"):
            job_id = new_uid()
            summary, batches = dump_job(source.driver, container, url, USER_KEYS, job_id)
            assert summary.keys == n and summary.bytes == logical, summary
            name = f"our BulkDump job, {when} ({pieces} shards)"
            rows.append((name, summary.seconds, BARE_WRITER))

        ssts = [Path(url.removeprefix("file://")) / in_root(b.data_path) for b in batches if b.data_path]
        staged = work / "staged"
        staged.mkdir()
        moved = [Path(shutil.copy(p, staged / f"{i}.sst")) for i, p in enumerate(ssts)]
        rows.append(("bare ingest_external_file (move)", bare_ingest(moved, work / "bare-db-move", copy_to=None), ""))
        copy_ingest = bare_ingest(ssts, work / "bare-db-copy", copy_to=work / "copies")
        rows.append((BARE_COPY_INGEST, copy_ingest, ""))

        loaded = load_job(dest.driver, container, url, job_id, USER_KEYS)
        assert loaded.keys == n and loaded.bytes == logical, loaded
        name = f"our BulkLoad job ({loaded.tasks} calls, {loaded.files} files)"
        rows.append((name, loaded.seconds, BARE_COPY_INGEST))

        print_table(rows, logical)
        a, b = checksum(source), checksum(dest)
        same = {k: v for k, v in a.items() if k != "version"} == {k: v for k, v in b.items() if k != "version"}
        print(f"\nembedded-cluster checksum, source: {json.dumps(a)}")
        print(f"embedded-cluster checksum, dest:   {json.dumps(b)}")
        print(f"checksums match: {same}")
    finally:
        source.close()
        dest.close()


def print_table(rows: list[tuple[str, float, str]], logical: int) -> None:
    seconds = {name: s for name, s, _ in rows}
    print(f"\n{'operation':<52} {'seconds':>8} {'MB/s':>8}  ours/bare")
    for name, s, bare in rows:
        ratio = f"{seconds[bare] / s:.2f} x {bare}" if bare else ""
        print(f"{name:<52} {s:8.2f} {logical / s / 1e6:8.1f}  {ratio}")


if __name__ == "__main__":
    main()
