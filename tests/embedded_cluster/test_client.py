"""The client side: cluster files, connect(), connection failures, the Transaction helper, fault RPCs."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from embedded_cluster import DESCRIPTION
from embedded_cluster.client import EmbeddedClusterDriver
from fdbcore import errors
from fdbcore.cluster import DRIVER_GROUP, clusterfile, connect
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.cluster.transaction import Transaction, run
from fdbcore.keys import KeyRange
from fdbcore.mutations import MutationType, set_value
from tests.fixtures.cluster import EmbeddedCluster


def test_cluster_file_format(tmp_path: Path) -> None:
    cf = clusterfile.parse("# comment\nembedded:abc123@127.0.0.1:4500,10.0.0.2:4501:tls\n")
    assert cf.description == "embedded" and cf.id == "abc123"
    assert cf.addresses == (("127.0.0.1", 4500), ("10.0.0.2", 4501))
    for bad in ("", "embedded@127.0.0.1:1", "a:b@host", "a:b@h:99999", "a b:c@h:1"):
        with pytest.raises(errors.ConnectionStringInvalid):
            clusterfile.parse(bad)
    path = tmp_path / "x.cluster"
    clusterfile.write_atomic(path, cf)
    assert clusterfile.read(path) == cf
    with pytest.raises(errors.FileNotFound):
        clusterfile.read(tmp_path / "missing.cluster")
    path.write_text("prod:abc@127.0.0.1:4500\n")
    with pytest.raises(errors.ClientInvalidOperation, match=r"only embedded clusters \(description 'embedded'\)"):
        connect(path)


def test_connect_finds_the_driver_by_its_entry_point() -> None:
    """The core names no driver: the one for ``serve``'s description is registered in pyproject.toml."""
    (entry,) = entry_points(group=DRIVER_GROUP, name=DESCRIPTION)
    assert entry.load() is EmbeddedClusterDriver


def test_connect_and_unreachable_server(embedded_cluster: EmbeddedCluster) -> None:
    db = connect(embedded_cluster.cluster_file)
    assert isinstance(db, ClusterDriver) and isinstance(db, EmbeddedClusterDriver)
    assert db.get_read_version() > 0
    with pytest.raises(errors.InvalidOptionValue, match="job_id"):  # server-side checks cross the wire
        db.bulk_dump("job", "task", KeyRange(b"", b"\xff"), "file:///tmp/x")
    with pytest.raises(errors.BulkloadInvalidConfiguration):
        db.bulk_load("job", KeyRange(b"", b"\xff"), "file:///tmp/x", [])

    embedded_cluster.stop()
    slow = EmbeddedClusterDriver(embedded_cluster.cluster_file, connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(errors.ConnectionFailed) as info:
        slow.get_read_version()
    assert info.value.code == 1026 and str(embedded_cluster.cluster_file) in str(info.value)
    assert time.monotonic() - started < 5
    with pytest.raises(errors.ConnectionFailed):  # a commit that never reached a server is not "unknown"
        slow.commit([])

    # A driver waiting for a restarting server gets through once it is back (on its new port).
    restarter = threading.Timer(0.3, embedded_cluster.start)
    restarter.start()
    try:
        assert EmbeddedClusterDriver(embedded_cluster.cluster_file, connect_timeout=20).get_read_version() > 0
    finally:
        restarter.join()


def _commit_in_child(driver: EmbeddedClusterDriver, results) -> None:
    try:
        results.put([driver.commit([set_value(b"fork/%d/%d" % (os.getpid(), i), b"")]) for i in range(3)])
    except Exception as exc:
        results.put(repr(exc))


def test_driver_survives_fork(embedded_cluster: EmbeddedCluster) -> None:
    """Celery prefork: children forked after the parent used the driver get channels of their own."""
    db = embedded_cluster.driver
    assert db.get_read_version() > 0
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    children = [ctx.Process(target=_commit_in_child, args=(db, results)) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join()
    assert all(isinstance(o, list) and len(o) == 3 for o in outcomes), outcomes
    assert len(db.get_range(b"fork/", b"fork0", db.get_read_version()).kvs) == 12


def test_transaction_helper(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    tr = Transaction(db)
    tr.set(b"t/a", b"1")
    tr.atomic_op(MutationType.ADD_VALUE, b"t/n", b"\x01")
    tr.atomic_op(MutationType.SET_VERSIONSTAMPED_VALUE, b"t/vs", b"\x00" * 10 + b"\x00\x00\x00\x00")
    v = tr.commit()
    assert tr.versionstamp == v.to_bytes(8, "big") + b"\x00\x00"
    assert db.get(b"t/vs", v) == tr.versionstamp

    # Restore's pattern: a batch of decoded mutations plus its applied-through marker, exactly once.
    marker = b"\xff\x02/restore/applied"
    batch = [set_value(b"t/r/%d" % i, b"x" * 10) for i in range(5)]

    def apply_batch(t: Transaction) -> bool:
        if t.get(marker) == b"5":
            return False
        t.add_mutations(batch)
        t.set(marker, b"5")
        return True

    assert run(db, apply_batch) is True
    assert run(db, apply_batch) is False
    sized = Transaction(db)
    sized.add_mutations(batch)
    assert sized.size == sum(m.byte_size() for m in batch)
    stale = Transaction(db)
    stale.set_read_version(v)  # older than the marker's commit
    assert stale.get(marker) is None
    stale.set(marker, b"again")
    with pytest.raises(errors.NotCommitted):
        stale.commit()

    # Read-modify-write with a conflict: the loser retries on a fresh read version.
    def increment(t: Transaction) -> int:
        value = int(t.get(b"t/counter") or b"0")
        t.set(b"t/counter", b"%d" % (value + 1))
        return value

    threads = [threading.Thread(target=lambda: [run(db, increment) for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.get(b"t/counter", db.get_read_version()) == b"40"

    # A limited range read conflicts only on what it read.
    db.commit([])
    t1 = Transaction(db)
    t1.set(b"t/x/0", b"")
    for i in range(1, 6):
        t1.set(b"t/x/%d" % i, b"")
    t1.commit()
    t2 = Transaction(db)
    assert [k for k, _ in t2.get_range(b"t/x/", b"t/x0", limit=2)] == [b"t/x/0", b"t/x/1"]
    db.commit([set_value(b"t/x/4", b"changed")])
    t2.set(b"t/out", b"")
    t2.commit()
    t3 = Transaction(db)
    t3.get_range(b"t/x/", b"t/x0")
    db.commit([set_value(b"t/x/4", b"again")])
    t3.set(b"t/out", b"")
    with pytest.raises(errors.NotCommitted):
        t3.commit()


def test_fault_injection_rpcs(embedded_cluster_factory) -> None:
    off: EmbeddedCluster = embedded_cluster_factory(name="off")
    with pytest.raises(errors.ClientInvalidOperation, match="enable_fault_injection"):
        off.driver.inject_fault("bulk_dump", KeyRange(b"a", b"b"), "fail")
    on: EmbeddedCluster = embedded_cluster_factory(name="on", enable_fault_injection=1)
    on.driver.inject_fault("bulk_load", KeyRange(b"a", b"b"), "stall", times=3, stall_seconds=2)
    faults = on.driver.status().extra["faults"]
    assert faults == [
        {"operation": "bulk_load", "range": ["61", "62"], "action": "stall", "times": 3, "stall_seconds": 2}
    ]
    with pytest.raises(errors.InvalidOptionValue):
        on.driver.inject_fault("bulk_load", KeyRange(b"a", b"b"), "explode")
    on.driver.clear_faults()
    assert on.driver.status().extra["faults"] == []
