"""The embedded cluster's BulkLoad beyond the driver contract (tests/fdbcore/cluster/test_bulkload.py):
the operator commands give an identical checksum; commits into a loading range; injected faults and
timeouts."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable

import pytest

from fdbcore import errors
from fdbcore.bulkdump_dataset import read_job_manifest
from fdbcore.container import open_container
from fdbcore.keys import KeyRange
from fdbcore.mutations import set_value
from tests.fdbcore.cluster.bulk import KNOBS, Dataset, dump_dataset
from tests.fdbcore.cluster.util import read_all
from tests.fixtures.cluster import EmbeddedCluster, cluster_factory


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Dataset:
    """A dataset dumped once from an embedded cluster, whose server is stopped again."""
    root = tmp_path_factory.mktemp("bulkload-source")
    with cluster_factory(root) as make:
        return dump_dataset(make, root)


@pytest.fixture
def dest(embedded_cluster_factory) -> EmbeddedCluster:
    return embedded_cluster_factory(name="dest", enable_fault_injection=1, **KNOBS)


def test_load_job_gives_an_identical_checksum(source: Dataset, embedded_cluster_factory, tmp_path) -> None:
    """The operator commands: ``bulkdump`` from one cluster, ``bulkload`` into another."""
    src: EmbeddedCluster = embedded_cluster_factory(name="src", shard_count=3)
    dst: EmbeddedCluster = embedded_cluster_factory(name="dst", shard_count=2, **KNOBS)
    src.driver.commit([set_value(k, v) for k, v in source.pairs])
    url = f"file://{tmp_path}/backup"

    out = src.cli("bulkdump", "--url", url, "--batch-bytes", "5000").stdout.splitlines()
    job_id = re.fullmatch(r"Received Job ID: ([0-9a-f]{32})", out[0])[1]  # type: ignore[index]
    dumped = json.loads(out[1])
    assert dumped["job_id"] == job_id and dumped["tasks"] == 3 and dumped["keys"] == len(source.pairs)
    assert dumped["batches"] > 4 and set(dumped) >= {"bytes", "seconds", "mb_per_s"}

    loaded = json.loads(dst.cli("bulkload", "--url", url, "--job", job_id).stdout)
    assert (loaded["keys"], loaded["bytes"]) == (dumped["keys"], dumped["bytes"])
    entries = read_job_manifest(open_container(url), job_id)
    assert len(entries) == dumped["batches"] and loaded["files"] == sum(1 for e in entries if e.total_bytes)

    def checksum(c: EmbeddedCluster) -> dict[str, object]:
        return {k: v for k, v in json.loads(c.cli("checksum").stdout).items() if k != "version"}

    assert checksum(src) == checksum(dst)
    status = dst.driver.status()
    assert sum(status.extra["shard_bytes"].values()) == dumped["bytes"] and status.locks == []
    assert not os.listdir(dst.data_dir / "bulk")

    # A sub-range of the same job, into a third cluster.
    sub: EmbeddedCluster = embedded_cluster_factory(name="sub", **KNOBS)
    sub.cli("bulkload", "--url", url, "--job", job_id, "--begin", b"a/0100".hex(), "--end", b"b/0200".hex())
    assert read_all(sub.driver, b"", b"\xff", sub.driver.get_read_version()) == source.expect(
        KeyRange(b"a/0100", b"b/0200")
    )


def test_a_load_cuts_the_shards_it_fills_at_its_files(source: Dataset, embedded_cluster_factory) -> None:
    """The shards a load fills past the target are cut at the loaded files' boundaries at once, from
    the files' known bytes, rather than scanned and cut by the splitter afterwards."""
    dst: EmbeddedCluster = embedded_cluster_factory(name="dst", shard_count=2, shard_target_bytes=8_000, **KNOBS)
    dst.cli("bulkload", "--url", source.url, "--job", source.job_id)
    # A batch begins at keyAfter(the last key of the batch before): never a stored key, so never a
    # point where the splitter (which cuts at a stored key) would cut.
    batch_begins = {e.range.begin for e in source.entries} - {b""}
    cut_at_batches = [s for s in dst.driver.shard_map() if s.range.begin in batch_begins]
    assert len(cut_at_batches) >= 3
    total = sum(len(k) + len(v) for k, v in source.pairs)
    assert sum(dst.driver.status().extra["shard_bytes"].values()) == total
    assert read_all(dst.driver, b"", b"\xff", dst.driver.get_read_version()) == source.pairs


def load_in_background(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except errors.FDBError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wait_for_lock(db, owner: str) -> None:
    deadline = time.monotonic() + 10
    while not any(lk.owner == owner for lk in db.status().locks):
        assert time.monotonic() < deadline, "the BulkLoad never took its lock"
        time.sleep(0.05)


def test_commits_into_a_loading_range_are_rejected(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    b = KeyRange(b"b/", b"b0")
    db.inject_fault("bulk_load", b, "stall", stall_seconds=1.5)
    thread, outcome = load_in_background(lambda: db.bulk_load(source.job_id, b, source.url, source.paths(b)))
    wait_for_lock(db, "BulkLoad")
    with pytest.raises(errors.TransactionRejectedRangeLocked) as info:
        db.commit([set_value(b"b/0007", b"racing")])
    assert info.value.code == 1242
    db.commit([set_value(b"c", b"elsewhere")])
    with pytest.raises(errors.RangeLockReject):  # a second load into the same range meanwhile
        db.bulk_load(source.job_id, b, source.url, source.paths(b))
    thread.join()
    assert outcome[0].keys_loaded == 400  # type: ignore[union-attr]
    assert db.status().locks == []
    assert read_all(db, b"b/", b"b0", db.get_read_version()) == source.expect(b)


def test_injected_failure_then_success_and_stall_past_a_timeout(source: Dataset, dest: EmbeddedCluster) -> None:
    db = dest.driver
    a = KeyRange(b"a/", b"a0")
    db.inject_fault("bulk_load", KeyRange(b"a/0010", b"a/0011"), "fail", times=1)
    with pytest.raises(errors.BulkloadTaskFailed, match="injected"):
        db.bulk_load(source.job_id, a, source.url, source.paths(a))
    assert db.status().locks == [] and read_all(db, b"", b"\xff", db.get_read_version()) == []
    assert db.bulk_load(source.job_id, a, source.url, source.paths(a)).keys_loaded == 400

    db.inject_fault("bulk_load", a, "stall", stall_seconds=0)  # until the caller gives up
    started = time.monotonic()
    with pytest.raises(errors.TimedOut):
        db.bulk_load(source.job_id, a, source.url, source.paths(a), timeout=1.0)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while db.status().locks:  # the server noticed, stopped, and let go of the range
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert db.bulk_load(source.job_id, a, source.url, source.paths(a), timeout=30).keys_loaded == 400
