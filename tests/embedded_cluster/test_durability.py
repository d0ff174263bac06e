"""What survives kill -9 of the server: committed data, log captures and their retained mutations,
the shard map, range locks."""

from __future__ import annotations

import os
import signal
import time

from fdbcore import errors
from fdbcore.keys import KeyRange
from fdbcore.mutations import clear_range, set_value
from tests.embedded_cluster.util import wait_for_splits
from tests.fdbcore.cluster.util import digest_at, drain
from tests.fixtures.cluster import EmbeddedCluster


def test_committed_state_survives_kill9(embedded_cluster_factory) -> None:
    cluster: EmbeddedCluster = embedded_cluster_factory(shard_target_bytes=50_000, commit_fsync=1)
    db = cluster.driver
    v0 = db.start_log_capture("bk", [KeyRange(b"d/", b"d0")])
    for i in range(30):
        db.commit([set_value(b"d/%02d/%03d" % (i, j), b"x" * 100) for j in range(50)])
    last = db.commit([clear_range(b"d/05", b"d/07"), set_value(b"d/zz", b"last")])
    db.lock_range(KeyRange(b"locked/", b"locked0"), "owner-1")
    before = digest_at(db, b"", b"\xff", db.get_read_version())
    logged_before, _ = drain(db, "bk", v0)
    shards_before = wait_for_splits(db, 50_000)
    assert len(shards_before) > 5  # 4 initial user shards + the system shard, then splits

    cluster.kill9()
    cluster.start()

    assert digest_at(db, b"", b"\xff", db.get_read_version()) == before
    assert drain(db, "bk", v0)[0] == logged_before
    assert logged_before[-1].version == last
    assert db.shard_map() == shards_before
    assert [(lk.range, lk.owner) for lk in db.status().locks] == [(KeyRange(b"locked/", b"locked0"), "owner-1")]


def _children(pid: int) -> set[int]:
    """Children of every thread of ``pid`` (each thread lists those it started)."""
    out = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return out


def _pool_workers(pid: int) -> set[int]:
    """The server's worker processes (not multiprocessing's resource tracker, also its child)."""
    out = set()
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    out.add(child)
        except FileNotFoundError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_server_worker_processes_end_with_a_killed_server(embedded_cluster_factory) -> None:
    """The server's scan/dump worker processes (warmed at start-up) exit once a kill -9 takes their server."""
    cluster: EmbeddedCluster = embedded_cluster_factory()
    assert cluster.process is not None
    deadline = time.monotonic() + 30
    while not (workers := _children(cluster.process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers, "the server started no worker processes"
    cluster.kill9()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def test_a_killed_worker_process_is_replaced(embedded_cluster_factory) -> None:
    """kill -9 of one of the server's worker processes (as the OOM killer would) costs at most the
    calls it was running, as the retryable broken_promise; the server starts new ones for the next."""
    cluster: EmbeddedCluster = embedded_cluster_factory()
    assert cluster.process is not None
    db = cluster.driver
    db.commit([set_value(b"w/%04d" % i, b"v" * 50) for i in range(1000)])
    want = db.checksum(b"w/", b"w0")
    assert want["keys"] == 1000
    deadline = time.monotonic() + 30
    while len(workers := _pool_workers(cluster.process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    while _alive(victim) and time.monotonic() < deadline:
        time.sleep(0.05)
    failures = []
    for _ in range(3):
        try:
            got = db.checksum(b"w/", b"w0")
            break
        except errors.BrokenPromise as exc:
            failures.append(exc)
    else:
        raise AssertionError(f"the server never recovered from a dead worker process: {failures}")
    assert (got["keys"], got["sha256"]) == (want["keys"], want["sha256"])
    assert len(failures) <= 1
    assert victim not in _children(cluster.process.pid)  # reaped, not left a zombie
    assert len(_pool_workers(cluster.process.pid)) >= 1
    assert db.checksum(b"w/", b"w0")["sha256"] == want["sha256"]
