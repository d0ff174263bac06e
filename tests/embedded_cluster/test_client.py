"""The embedded driver: found by connect() through its entry point, connection failures and restarts, fault RPCs."""

from __future__ import annotations

import threading
import time
from importlib.metadata import entry_points

import pytest

from embedded_cluster import DESCRIPTION
from embedded_cluster.client import EmbeddedClusterDriver
from fdbcore import errors
from fdbcore.cluster import DRIVER_GROUP, connect
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange
from tests.fixtures.cluster import EmbeddedCluster


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


def test_range_lock_faults_hold_or_refuse_the_lock(embedded_cluster_factory) -> None:
    db: EmbeddedCluster = embedded_cluster_factory(name="locks", enable_fault_injection=1)
    r = KeyRange(b"a", b"b")
    db.driver.inject_fault("lock_range", r, "fail", times=1)
    with pytest.raises(errors.RangeLockFailed, match="injected"):
        db.driver.lock_range(r, "restore:x")
    db.driver.inject_fault("lock_range", r, "stall", times=1, stall_seconds=1.0)
    started = time.monotonic()
    db.driver.lock_range(r, "restore:x")  # held, then taken
    assert time.monotonic() - started >= 1.0
    assert [lock.owner for lock in db.driver.status().locks] == ["restore:x"]
