"""BulkDump against real servers: FDB's layout and manifests, each batch exactly the range at its own
version while writes continue, batches cut by size, re-runs and duplicate calls, S3 with the server's
own credentials, injected faults and timeouts."""

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
    check_batches_cover,
    in_root,
    read_job_manifest,
    verify_entry,
    write_job_manifest,
)
from fdbcore.cluster.interface import BulkDumpBatch
from fdbcore.container import BackupContainer, open_container
from fdbcore.formats.bulkdump_manifest import TRANSPORT_BLOBSTORE, TRANSPORT_CP, BatchManifest, JobManifestEntry
from fdbcore.formats.sst import read_sst
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fdbcore.cluster.util import Writer, read_all
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.s3 import S3Endpoint

W = KeyRange(b"w/", b"w0")  # the Writer's keys


def fill(db, n: int = 6000) -> None:
    db.commit([set_value(b"w/%05d" % i, b"x" * 50) for i in range(n)])


def check_batches(container: BackupContainer, batches: list[BulkDumpBatch], piece: KeyRange) -> list[BatchManifest]:
    """The batches cover ``piece`` exactly, in order; each manifest parses and agrees; each SST hashes to it."""
    check_batches_cover(batches, [piece])
    assert [b.range for b in batches] == sorted(b.range for b in batches)
    manifests = []
    for b in batches:
        m = BatchManifest.parse(container.read(in_root(b.manifest_path)))
        assert (m.range, m.version, m.total_bytes, m.key_count, m.checksum_value) == (
            b.range,
            b.version,
            b.bytes,
            b.key_count,
            b.checksum,
        )
        assert m.manifest_file_name == f"{b.version}-manifest.txt"
        assert b.data_path == (f"{m.relative_path}/{b.version}-data.sst" if b.key_count else "")
        verify_entry(container, JobManifestEntry.of(m))  # SHA-256 of the data file
        if b.data_path:
            assert container.size(in_root(b.data_path)) == b.data_file_size
        manifests.append(m)
    return manifests


def sst_pairs(container: BackupContainer, b: BulkDumpBatch, tmp_path: Path) -> list[tuple[bytes, bytes]]:
    if not b.data_path:
        return []
    local = tmp_path / "batch.sst"
    container.download_file(in_root(b.data_path), str(local))
    try:
        return list(read_sst(local, expected_key_count=b.key_count, expected_bytes=b.bytes))
    finally:
        local.unlink()


def test_batches_equal_reads_at_their_versions_while_writes_continue(embedded_cluster_factory, tmp_path) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(
        max_read_transaction_life_versions=120_000_000, bulkdump_parallelism=2
    )
    db = cluster.driver
    fill(db)
    url = f"file://{tmp_path}/backup"
    container = open_container(url)
    job, task = new_uid(), new_uid()
    with Writer(db) as writer:
        time.sleep(0.2)
        batches = db.bulk_dump(job, task, W, url, batch_bytes=40_000)
    assert writer.commits > 0
    manifests = check_batches(container, batches, W)
    assert len(batches) >= 5  # about 6000 keys of up to 87 bytes, cut at 40 KB
    versions = [b.version for b in batches]
    assert versions == sorted(versions) and len(set(versions)) > 1  # caught up before each batch
    for b in batches:
        pairs = read_all(db, b.range.begin, b.range.end, b.version)
        assert sst_pairs(container, b, tmp_path) == pairs
        if b is not batches[-1]:  # cut right after the pair that reached the batch size
            last = len(pairs[-1][0]) + len(pairs[-1][1])
            assert b.bytes >= 40_000 > b.bytes - last and b.range.end == pairs[-1][0] + b"\x00"

    m = manifests[0]
    assert m.root_path == f"{url}/{ROOT}" and m.transport_method == TRANSPORT_CP
    assert m.relative_path == f"{job}/{task}/0" and m.checksum_method == "sha256"
    write_job_manifest(container, job, batches, [W])
    assert [e.manifest_relative_path for e in read_job_manifest(container, job)] == [b.manifest_path for b in batches]
    assert not os.listdir(cluster.data_dir / "bulk")  # scratch files are gone


def test_a_range_without_keys_has_a_manifest_and_no_data_file(embedded_cluster, tmp_path) -> None:
    url = f"file://{tmp_path}/backup"
    batches = embedded_cluster.driver.bulk_dump(new_uid(), new_uid(), KeyRange(b"e/", b"e0"), url)
    assert len(batches) == 1 and batches[0].key_count == 0 and batches[0].data_path == ""
    m = check_batches(open_container(url), batches, KeyRange(b"e/", b"e0"))[0]
    assert m.data_file_name == "" and m.checksum_value == ""


def test_rerun_replaces_the_task_folder_and_duplicates_join(embedded_cluster_factory, tmp_path) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(enable_fault_injection=1)
    db = cluster.driver
    fill(db, 3000)
    url = f"file://{tmp_path}/backup"
    container = open_container(url)
    job, task = new_uid(), new_uid()
    first = db.bulk_dump(job, task, W, url, batch_bytes=50_000)
    db.commit([set_value(b"w/00000", b"changed")])
    second = db.bulk_dump(job, task, W, url, batch_bytes=50_000)
    assert {b.version for b in first}.isdisjoint(b.version for b in second)
    listed = [f.path for f in container.list(f"{ROOT}/{job}/{task}/")]
    expected = [in_root(p) for b in second for p in (b.data_path, b.manifest_path) if p]
    assert sorted(listed) == sorted(expected)

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
    assert read_all(dest.driver, b"", b"\xff", dest.driver.get_read_version()) == read_all(
        cluster.driver, b"", b"\xff", batches[-1].version
    )

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


def test_requests_are_checked(embedded_cluster, tmp_path) -> None:
    db = embedded_cluster.driver
    url = f"file://{tmp_path}/backup"
    with pytest.raises(errors.KeyOutsideLegalRange):
        db.bulk_dump(new_uid(), new_uid(), KeyRange(b"a", b"\xff\x01"), url)
    with pytest.raises(errors.InvalidOptionValue):
        db.bulk_dump(new_uid(), new_uid(), KeyRange(b"a", b"a"), url)
    with pytest.raises(errors.BackupInvalidUrl):
        db.bulk_dump(new_uid(), new_uid(), W, "ftp://x")
    with pytest.raises(errors.ClientInvalidOperation):
        db.bulk_dump(new_uid(), new_uid(), W, url, root="../up")


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
