"""Whole BulkDump and BulkLoad jobs, as fdbcli's ``bulkdump dump`` and ``bulkload load`` run them.

A dump job is one BulkDump task per shard of the range, run in parallel (the cluster spreads them over
its worker processes), then ``job-manifest.txt``, written only after the batches are checked to cover
the range exactly. A load job reads that manifest, takes the entries the range needs (they must cover
it exactly), groups consecutive entries by destination shard, at most
``MANIFEST_COUNT_MAX_PER_BULKLOAD_TASK`` per group as FDB does, and loads the groups in parallel.
Both go through the :class:`~fdbcore.cluster.interface.ClusterDriver` interface only; the operator
commands (``embedded-cluster bulkdump``/``bulkload``) and the benchmark use them.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.cluster.interface import BulkDumpBatch, ClusterDriver, Shard
from fdbcore.container import BackupContainer
from fdbcore.formats.bulkdump_manifest import JobManifestEntry
from fdbcore.keys import KeyRange

#: FDB's ``MANIFEST_COUNT_MAX_PER_BULKLOAD_TASK``.
MANIFESTS_PER_LOAD = 10
#: Calls in flight at once; each holds a server RPC thread while the cluster's workers do the work.
PARALLEL_CALLS = 16


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a job moved: ``tasks`` calls, ``files`` batches (dump) or SSTs ingested (load)."""

    job_id: str
    tasks: int
    files: int
    keys: int
    bytes: int
    seconds: float

    def to_json(self, files_name: str) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "tasks": self.tasks,
            files_name: self.files,
            "keys": self.keys,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.bytes / max(self.seconds, 1e-9) / 1e6, 1),
        }


def _check_range(range: KeyRange) -> None:
    if range.empty:
        raise errors.InvalidOptionValue(f"the job's range {range} is empty")


def shard_pieces(shards: Sequence[Shard], range: KeyRange) -> list[KeyRange]:
    """The parts of ``range`` each shard holds, in key order."""
    return [part for s in shards if (part := s.range.intersection(range)) is not None]


def dump_job(
    driver: ClusterDriver,
    container: BackupContainer,
    url: str,
    range: KeyRange,
    job_id: str,
    *,
    batch_bytes: int = 0,
    parallelism: int = PARALLEL_CALLS,
) -> tuple[JobSummary, list[BulkDumpBatch]]:
    """Dump ``range`` as job ``job_id`` into ``url`` (``container`` is the same place, reached with
    this process's credentials) and write the job manifest."""
    started = time.perf_counter()
    _check_range(range)
    pieces = shard_pieces(driver.shard_map(), range)

    def dump(piece: KeyRange) -> list[BulkDumpBatch]:
        return driver.bulk_dump(job_id, naming.new_uid(), piece, url, root=ds.ROOT, batch_bytes=batch_bytes)

    with ThreadPoolExecutor(min(parallelism, len(pieces)), thread_name_prefix="bulkdump") as pool:
        batches = [b for task in pool.map(dump, pieces) for b in task]
    ds.write_job_manifest(container, job_id, batches, [range])
    summary = JobSummary(
        job_id,
        len(pieces),
        len(batches),
        sum(b.key_count for b in batches),
        sum(b.bytes for b in batches),
        time.perf_counter() - started,
    )
    return summary, batches


@dataclass(frozen=True, slots=True)
class LoadGroup:
    range: KeyRange
    entries: tuple[JobManifestEntry, ...]


def load_groups(entries: Sequence[JobManifestEntry], shards: Sequence[Shard], range: KeyRange) -> list[LoadGroup]:
    """Consecutive entries by the destination shard their part of ``range`` starts in, at most
    ``MANIFESTS_PER_LOAD`` each; a group loads the union of its entries' ranges within ``range``."""
    begins = [s.range.begin for s in shards]

    def shard_of(e: JobManifestEntry) -> int:
        return bisect_right(begins, max(e.begin_key, range.begin)) - 1

    groups: list[list[JobManifestEntry]] = []
    for e in sorted(entries, key=lambda e: e.begin_key):
        current = groups[-1] if groups else None
        if current is None or len(current) == MANIFESTS_PER_LOAD or shard_of(current[0]) != shard_of(e):
            groups.append([e])
        else:
            current.append(e)
    return [
        LoadGroup(KeyRange(max(g[0].begin_key, range.begin), min(g[-1].end_key, range.end)), tuple(g)) for g in groups
    ]


def load_job(
    driver: ClusterDriver,
    container: BackupContainer,
    url: str,
    job_id: str,
    range: KeyRange,
    *,
    parallelism: int = PARALLEL_CALLS,
) -> JobSummary:
    """Load ``range`` from BulkDump job ``job_id`` in ``url`` (read through ``container``)."""
    started = time.perf_counter()
    _check_range(range)
    entries = ds.select_entries(ds.read_job_manifest(container, job_id), [range])
    groups = load_groups(entries, driver.shard_map(), range)

    def load(group: LoadGroup) -> tuple[int, int, int]:
        paths = [e.manifest_relative_path for e in group.entries]
        r = driver.bulk_load(job_id, group.range, url, paths, root=ds.ROOT)
        return r.keys_loaded, r.bytes_loaded, r.files_ingested

    with ThreadPoolExecutor(min(parallelism, len(groups)), thread_name_prefix="bulkload") as pool:
        results = list(pool.map(load, groups))
    keys, nbytes, files = (sum(column) for column in zip(*results, strict=True))
    return JobSummary(job_id, len(groups), files, keys, nbytes, time.perf_counter() - started)
