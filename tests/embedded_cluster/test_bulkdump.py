"""The embedded cluster's BulkDump beyond the driver contract (tests/fdbcore/cluster/test_bulkdump.py):
duplicate calls, S3 with the server's own credentials, injected faults, timeouts and cancellation in
its worker processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from embedded_cluster.bulkdump import DumpTask, dump_task
from embedded_cluster.secondary import WorkerPool
from fdbcore import errors
from fdbcore.bulkdump_dataset import (
    ROOT,
    in_root,
)
from fdbcore.cluster.interface import BulkDumpBatch
from fdbcore.container import open_container
from fdbcore.formats.bulkdump_manifest import TRANSPORT_BLOBSTORE
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fdbcore.cluster.bulk import W, check_batches, fill, sst_pairs
from tests.fdbcore.cluster.util import read_all
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.s3 import S3Endpoint


def test_duplicate_calls_for_a_task_join(embedded_cluster_factory, tmp_path) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(enable_fault_injection=1)
    db = cluster.driver
    fill(db, 3000)
    url = f"file://{tmp_path}/backup"
    container = open_container(url)
    job, task = new_uid(), new_uid()
    db.bulk_dump(job, task, W, url, batch_bytes=50_000)  # an earlier run left the task's folder

    # Two calls for the same task at once: the second joins the first and gets the same batches.
    db.inject_fault("bulk_dump", W, "stall", stall_seconds=1.0)
    results: list[list[BulkDumpBatch]] = []
    callers = [
        threading.Thread(target=lambda: results.append(db.bulk_dump(job, task, W, url, batch_bytes=50_000)))
        for _ in range(2)
    ]
    for t in callers:
        t.start()
        time.sleep(0.2)
    for t in callers:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    check_batches(container, results[0], W)


def test_dump_into_s3_with_the_servers_own_credentials(
    embedded_cluster_factory, s3_endpoint: S3Endpoint, blobstore_url: str, blob_credentials_file: Path, tmp_path
) -> None:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "FDB_BLOB_CREDENTIALS"} | {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/x",
    }
    cluster: EmbeddedCluster = embedded_cluster_factory(blob_credentials=[blob_credentials_file], env=clean_env)
    fill(cluster.driver, 3000)
    container = open_container(blobstore_url)  # this test process finds FDB_BLOB_CREDENTIALS
    job = new_uid()
    batches = cluster.driver.bulk_dump(job, new_uid(), W, blobstore_url, batch_bytes=100_000)
    manifests = check_batches(container, batches, W)
    assert len(batches) >= 2
    root = manifests[0].root_path
    assert root.startswith(f"blobstore://@{s3_endpoint.host}:{s3_endpoint.port}/backup/{ROOT}?bucket=")
    assert manifests[0].transport_method == TRANSPORT_BLOBSTORE
    for b in batches:
        assert sst_pairs(container, b, tmp_path) == read_all(cluster.driver, b.range.begin, b.range.end, b.version)
    # Read now: starting a second cluster can take longer than the source's 5 s MVCC window.
    source_then = read_all(cluster.driver, b"", b"\xff", batches[-1].version)

    # And back from S3 into another cluster, again with that server's own credentials.
    dest: EmbeddedCluster = embedded_cluster_factory(
        name="dest",
        blob_credentials=[blob_credentials_file],
        env=clean_env,
        shard_encode_location_metadata=1,
        enable_read_lock_on_range=1,
    )
    loaded = dest.driver.bulk_load(job, W, blobstore_url, [b.manifest_path for b in batches])
    assert loaded.keys_loaded == 3000 and loaded.files_ingested == len(batches)
    assert read_all(dest.driver, b"", b"\xff", dest.driver.get_read_version()) == source_then

    # Without credentials of its own the server cannot write there (the caller's do not travel).
    bare: EmbeddedCluster = embedded_cluster_factory(name="bare", env=clean_env)
    with pytest.raises(errors.BackupAuthMissing):
        bare.driver.bulk_dump(job, new_uid(), W, blobstore_url)


def test_injected_failure_then_success(embedded_cluster_factory, tmp_path) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(enable_fault_injection=1)
    db = cluster.driver
    fill(db, 500)
    url = f"file://{tmp_path}/backup"
    db.inject_fault("bulk_dump", KeyRange(b"w/00100", b"w/00101"), "fail", times=1)
    db.bulk_dump(new_uid(), new_uid(), KeyRange(b"a", b"b"), url)  # does not intersect: unaffected
    job, task = new_uid(), new_uid()
    with pytest.raises(errors.BulkdumpTaskFailed, match="injected"):
        db.bulk_dump(job, task, W, url)
    check_batches(open_container(url), db.bulk_dump(job, task, W, url), W)


def test_stall_past_the_callers_timeout(embedded_cluster_factory, tmp_path) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(enable_fault_injection=1)
    db = cluster.driver
    fill(db, 500)
    url = f"file://{tmp_path}/backup"
    db.inject_fault("bulk_dump", W, "stall", stall_seconds=60)
    started = time.monotonic()
    with pytest.raises(errors.TimedOut) as info:
        db.bulk_dump(new_uid(), new_uid(), W, url, timeout=1.0)
    assert info.value.code == 1004 and time.monotonic() - started < 5
    assert db.status().extra["faults"] == []
    check_batches(open_container(url), db.bulk_dump(new_uid(), new_uid(), W, url, timeout=30), W)


def test_a_cancelled_dump_removes_its_output(embedded_cluster, tmp_path) -> None:
    """The worker side of cancellation: once the server raises the flag, the task stops and cleans up."""
    fill(embedded_cluster.driver, 3000)
    url = f"file://{tmp_path}/backup"
    flag = tmp_path / "cancel"
    flag.touch()
    task = DumpTask(
        str(embedded_cluster.data_dir), new_uid(), new_uid(), W, url, ROOT, 10_000, (), str(tmp_path), str(flag)
    )
    stale = in_root(f"{task.job_id}/{task.task_id}/0/1-manifest.txt")  # from an earlier run of the task
    open_container(url).write(stale, b"old")
    pool = WorkerPool(1)  # a worker process, as the server runs it
    try:
        with pytest.raises(errors.TimedOut):
            pool.submit(dump_task, task).result()
    finally:
        pool.close()
    assert list(open_container(url).list(f"{ROOT}/")) == []


def test_a_timeout_stops_the_worker_midway(embedded_cluster, tmp_path) -> None:
    db = embedded_cluster.driver
    for start in range(0, 60_000, 15_000):
        db.commit([set_value(b"w/%06d" % i, b"x" * 50) for i in range(start, start + 15_000)])
    url = f"file://{tmp_path}/backup"
    container = open_container(url)
    db.bulk_dump(new_uid(), new_uid(), KeyRange(b"a", b"b"), url)  # the worker process is up
    job, task = new_uid(), new_uid()
    with pytest.raises(errors.TimedOut):  # some 350 batches take seconds; a hundred or more are written by then
        db.bulk_dump(job, task, W, url, batch_bytes=10_000, timeout=1.0)
    deadline = time.monotonic() + 10
    while list(container.list(f"{ROOT}/{job}/")) or os.listdir(embedded_cluster.data_dir / "bulk"):
        assert time.monotonic() < deadline, "the abandoned dump went on, or left files behind"
        time.sleep(0.1)
    assert len(db.bulk_dump(job, task, W, url, batch_bytes=1_000_000)) == 4
