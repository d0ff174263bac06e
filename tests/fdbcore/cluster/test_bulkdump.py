"""BulkDump through the driver: FDB's layout and manifests, each batch exactly the range at its own
version while writes continue, batches cut by size, re-runs, checked requests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fdbcore import errors
from fdbcore.bulkdump_dataset import ROOT, in_root, read_job_manifest, write_job_manifest
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import open_container
from fdbcore.formats.bulkdump_manifest import TRANSPORT_CP
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fdbcore.cluster.bulk import W, check_batches, fill, sst_pairs
from tests.fdbcore.cluster.conftest import ClusterFactory
from tests.fdbcore.cluster.util import Writer, read_all


def test_batches_equal_reads_at_their_versions_while_writes_continue(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory(max_read_transaction_life_versions=120_000_000, bulkdump_parallelism=2)
    driver = cluster.driver
    fill(driver)
    url = f"file://{tmp_path}/backup"
    container = open_container(url)
    job, task = new_uid(), new_uid()
    with Writer(driver) as writer:
        time.sleep(0.2)
        batches = driver.bulk_dump(job, task, W, url, batch_bytes=40_000)
    assert writer.commits > 0
    manifests = check_batches(container, batches, W)
    assert len(batches) >= 5  # about 6000 keys of up to 87 bytes, cut at 40 KB
    versions = [b.version for b in batches]
    assert versions == sorted(versions) and len(set(versions)) > 1  # caught up before each batch
    for b in batches:
        pairs = read_all(driver, b.range.begin, b.range.end, b.version)
        assert sst_pairs(container, b, tmp_path) == pairs
        if b is not batches[-1]:  # cut right after the pair that reached the batch size
            last = len(pairs[-1][0]) + len(pairs[-1][1])
            assert b.bytes >= 40_000 > b.bytes - last and b.range.end == pairs[-1][0] + b"\x00"

    m = manifests[0]
    assert m.root_path == f"{url}/{ROOT}" and m.transport_method == TRANSPORT_CP
    assert m.relative_path == f"{job}/{task}/0" and m.checksum_method == "sha256"
    write_job_manifest(container, job, batches, [W])
    assert [e.manifest_relative_path for e in read_job_manifest(container, job)] == [b.manifest_path for b in batches]
    assert cluster.scratch_files() == []  # scratch files are gone


def test_a_range_without_keys_has_a_manifest_and_no_data_file(driver: ClusterDriver, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/backup"
    batches = driver.bulk_dump(new_uid(), new_uid(), KeyRange(b"e/", b"e0"), url)
    assert len(batches) == 1 and batches[0].key_count == 0 and batches[0].data_path == ""
    m = check_batches(open_container(url), batches, KeyRange(b"e/", b"e0"))[0]
    assert m.data_file_name == "" and m.checksum_value == ""


def test_rerun_replaces_the_task_folder(driver: ClusterDriver, tmp_path: Path) -> None:
    fill(driver, 3000)
    url = f"file://{tmp_path}/backup"
    container = open_container(url)
    job, task = new_uid(), new_uid()
    first = driver.bulk_dump(job, task, W, url, batch_bytes=50_000)
    driver.commit([set_value(b"w/00000", b"changed")])
    second = driver.bulk_dump(job, task, W, url, batch_bytes=50_000)
    assert {b.version for b in first}.isdisjoint(b.version for b in second)
    listed = [f.path for f in container.list(f"{ROOT}/{job}/{task}/")]
    expected = [in_root(p) for b in second for p in (b.data_path, b.manifest_path) if p]
    assert sorted(listed) == sorted(expected)


def test_requests_are_checked(driver: ClusterDriver, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/backup"
    with pytest.raises(errors.KeyOutsideLegalRange):
        driver.bulk_dump(new_uid(), new_uid(), KeyRange(b"a", b"\xff\x01"), url)
    with pytest.raises(errors.InvalidOptionValue):
        driver.bulk_dump(new_uid(), new_uid(), KeyRange(b"a", b"a"), url)
    with pytest.raises(errors.BackupInvalidUrl):
        driver.bulk_dump(new_uid(), new_uid(), W, "ftp://x")
    with pytest.raises(errors.ClientInvalidOperation):
        driver.bulk_dump(new_uid(), new_uid(), W, url, root="../up")
