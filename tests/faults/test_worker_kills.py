"""SIGKILL of fleet processes in every phase of backup and restore: the job resumes and ends exactly.

Each phase is made long enough to be hit on purpose: the S3 proxy holds the phase's first request
(a range file's PUT, a log file's PUT, a BulkDump batch's upload, a verify's or a replay's GET) for a
few seconds, or the cluster stalls a BulkLoad, and the kill lands while the task is inside it.

Two kinds of kill: the task's pool processes only (the worker's main process sees them die and hands
their tasks back at once: ``task_reject_on_worker_lost``), or the whole worker with its process group
(the tasks stay unacknowledged until the broker's visibility timeout gives them to another worker).
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from fdbcore.keys import USER_KEYS
from tests.faults.conftest import LONG_ONLY
from tests.faults.helpers import (
    S3Rig,
    fast_redelivery,
    make_backup,
    restore_exactly,
    restore_job,
    run,
    source_cluster,
    state_store,
    verify_reads,
    wait_for_exact_restore,
    wait_until,
    worker_logs,
)
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet, Worker
from tests.fixtures.s3 import S3Endpoint
from tests.support.backups import check_bulkdump_matches_cluster, check_range_files_match_cluster


def pool_children(worker: Worker) -> list[int]:
    """Pids of the worker's prefork pool processes."""
    path = Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children")
    return [int(p) for p in path.read_text().split()]


def kill_pool(worker: Worker) -> list[int]:
    """SIGKILL every pool process of ``worker`` (its main process lives on and replaces them)."""
    pids = pool_children(worker)
    assert pids, "the worker has no pool processes"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def kill(fleet: Fleet, worker: Worker, whole: bool) -> None:
    """SIGKILL the worker's pool processes, or the whole worker (then start a replacement)."""
    if whole:
        fleet.kill(worker, signal.SIGKILL)
        fleet.start_worker(f"w{len(fleet.workers) + 1}", concurrency=2)
    else:
        kill_pool(worker)


def phases_and_kinds(phases: Mapping[str, tuple[object, object, str]]) -> list[object]:
    """``(phase, whole)`` for every phase and both kinds of kill; the kind a phase does not name as
    its default runs with ``--long`` only."""
    return [
        pytest.param(phase, kind == "worker", id=f"{phase}-{kind}", marks=() if kind == default else LONG_ONLY)
        for phase, (_, _, default) in phases.items()
        for kind in ("pool", "worker")
    ]


def lock_requested(dest: EmbeddedCluster) -> bool:
    """The stalled lock_range fault was taken: restore.start is inside its lock request."""
    return not dest.driver.status().extra["faults"]


def bulkload_started(fleet: Fleet) -> bool:
    job = restore_job(fleet)
    return job is not None and bool(state_store(fleet, "restore").results(job.uid, "bulkload_started"))


#: The request that marks each backup phase (path pattern, methods), and the default kind of kill.
BACKUP_PHASES = {
    "start": (r"/properties/", "PUT", "worker"),
    "rangefile": (r"/kvranges/", "PUT,POST", "worker"),
    "bulkdump": (r"/bulkdump_data/.*data\.sst", "PUT,POST", "pool"),
    "logs": (r"/plogs/", "PUT,POST", "pool"),
    "finish": (r"/snapshots/", "PUT", "pool"),
}


@pytest.mark.seeds(long=3)
@pytest.mark.parametrize(("phase", "whole"), phases_and_kinds(BACKUP_PHASES))
def test_kill_in_backup_phase_resumes_and_restores_exactly(
    phase: str, whole: bool, seed: int, s3_rig: S3Rig, tmp_path: Path
) -> None:
    fleet, proxy = s3_rig.fleet, s3_rig.proxy
    fast_redelivery(fleet, visibility=8)
    source = s3_rig.source()
    url = s3_rig.url("kill")
    pattern, methods, _ = BACKUP_PHASES[phase]
    cf = str(source.cluster_file)
    res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", url, "--mode", "both"])  # no worker yet
    assert res.returncode == 0, res.stderr
    proxy.slow(1, 3.0, methods=methods, path=pattern)
    first = fleet.start_worker("w1", concurrency=2)
    proxy.wait_for(pattern, methods, timeout=60)
    time.sleep(random.Random(seed).uniform(0, 2.0))  # somewhere inside the held request
    kill(fleet, first, whole)
    done = run(fleet, ["fdbbackup", "wait", "-C", cf])
    assert done.returncode == 0, done.stdout + done.stderr + worker_logs(fleet)
    assert "has been completed" in done.stdout
    creds = [str(s3_rig.creds)]
    assert check_range_files_match_cluster(url, source.driver, creds) >= 4
    assert check_bulkdump_matches_cluster(url, source.driver, tmp_path, creds) >= 4
    restore_exactly(fleet, url, source, s3_rig.dest(), "--mode", "bulkload" if phase == "bulkdump" else "rangefile")


# --- restore -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedBackup:
    source: EmbeddedCluster
    bucket: str
    name: str


@pytest.fixture(scope="module")
def s3_backup(
    s3_endpoint: S3Endpoint,
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
    module_dir: Path,
) -> Iterator[SharedBackup]:
    """One mode-both backup on S3, taken under a workload, that the restore tests restore again and again."""
    bucket = f"kills-{uuid.uuid4().hex[:12]}"
    s3 = s3_endpoint.client()
    s3.create_bucket(Bucket=bucket)
    creds = s3_endpoint.write_credentials_file(module_dir / "creds.json")
    module_fleet.extra_env.update(s3_endpoint.env(creds))
    source = source_cluster(module_cluster_factory, blob_credentials=[creds])
    module_fleet.start_worker(concurrency=2)
    make_backup(module_fleet, source, s3_endpoint.url(bucket, "shared"))
    module_fleet.stop()
    yield SharedBackup(source, bucket, "shared")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


#: Restore phases: the mode, the request that marks the phase (or a cluster operation the destination
#: stalls: "lock_range" when restore.start takes its ranges, "bulk_load"), and the default kind of kill.
RESTORE_PHASES: dict[str, tuple[str, tuple[str, str] | str, str]] = {
    "start": ("rangefile", "lock_range", "worker"),
    "verify": ("bulkload", (r"/bulkdump_data/.*data\.sst", "GET"), "worker"),
    "bulkload": ("bulkload", "bulk_load", "pool"),
    "rangefile": ("rangefile", (r"/data/[^/]+/kvranges/", "GET"), "pool"),
    "replay": ("rangefile", (r"/data/[^/]+/plogs/", "GET"), "worker"),
}


@pytest.mark.seeds(long=3)
@pytest.mark.parametrize(("phase", "whole"), phases_and_kinds(RESTORE_PHASES))
def test_kill_in_restore_phase_resumes_and_restores_exactly(
    phase: str, whole: bool, seed: int, s3_backup: SharedBackup, s3_rig: S3Rig
) -> None:
    fleet, proxy = s3_rig.fleet, s3_rig.proxy
    fast_redelivery(fleet, visibility=8)
    mode, trigger, _ = RESTORE_PHASES[phase]
    dest = s3_rig.dest()
    url = s3_rig.url(s3_backup.name, bucket=s3_backup.bucket)
    submitted = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", mode])
    assert submitted.returncode == 0, submitted.stderr  # no worker yet: nothing has started
    if isinstance(trigger, str):
        dest.driver.inject_fault(trigger, USER_KEYS, "stall", times=1, stall_seconds=3)
    else:  # past the verify's reads of the same files
        reads = verify_reads(url, s3_rig.creds, mode == "bulkload")
        skip = {"rangefile": reads["kvranges"], "replay": reads["plogs"]}.get(phase, 0)
        skip_past = proxy.seen(trigger[0], trigger[1]) + skip
        proxy.slow(1, 3.0, methods=trigger[1], path=trigger[0], skip=skip)
    first = fleet.start_worker("w1", concurrency=2)
    if trigger == "bulk_load":
        wait_until("a BulkLoad to start", lambda: bulkload_started(fleet))
    elif trigger == "lock_range":
        wait_until("the restore to take its destination", lambda: lock_requested(dest))
    else:
        proxy.wait_for(trigger[0], trigger[1], count=skip_past + 1, timeout=60)
        if skip:
            job = restore_job(fleet)
            assert job is not None and job.verified_at, "the hold caught a verify read, not the phase's"
    time.sleep(random.Random(seed).uniform(0, 2.0))
    kill(fleet, first, whole)
    wait_for_exact_restore(fleet, s3_backup.source, dest)
