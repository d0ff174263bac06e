"""SIGKILL of whole services mid-job, then a restart: the job resumes and the restore is exact.

- the whole worker fleet (every worker and its pool), during a backup's snapshot and during a
  restore's replay, then a new fleet;
- the embedded cluster server, ``kill -9`` then restart on its data: the source during a backup's
  snapshot and log capture, the destination during a BulkLoad;
- Redis with AOF persistence (``appendfsync always``), ``kill -9`` then restart: the broker's queues
  and unacknowledged tasks, chord counters and every job record survive on disk.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from fdbcore.keys import USER_KEYS
from tests.faults.helpers import (
    BULKLOAD_KNOBS,
    backup_view,
    fast_redelivery,
    restore_job,
    run,
    source_cluster,
    state_store,
    wait_for_exact_restore,
    wait_until,
    worker_logs,
)
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.fixtures.redis import RedisServer
from tests.support.backups import backup_folder, start_workload

STALL = 3.0


def _backup_until_snapshot(fleet: Fleet, source: EmbeddedCluster, base: Path) -> None:
    """Start a continuous mode-both backup while a workload writes; return once the snapshot runs
    (one shard's BulkDump stalls, so the snapshot is still in flight)."""
    source.driver.inject_fault("bulk_dump", source.driver.shard_map()[0].range, "stall", stall_seconds=STALL)
    cf = str(source.cluster_file)
    res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", "both", "-z"])
    assert res.returncode == 0, res.stderr
    wait_until(
        "the BulkDump snapshot to run", lambda: (v := backup_view(fleet)) and v.bulkdump and v.bulkdump.tasks_total > 0
    )


def _finish_backup(fleet: Fleet, source: EmbeddedCluster, base: Path) -> str:
    done = run(fleet, ["fdbbackup", "discontinue", "-C", str(source.cluster_file), "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr + worker_logs(fleet)
    status = fleet.run(["fdbbackup", "status", "-C", str(source.cluster_file)]).stdout
    assert "BulkLoad Compatible: yes" in status, status
    return f"file://{backup_folder(base)}"


def _restore_until_bulkload(fleet: Fleet, url: str, dest: EmbeddedCluster) -> None:
    """Submit a BulkLoad restore into ``dest`` (its BulkLoad stalls); return once a BulkLoad runs."""
    dest.driver.inject_fault("bulk_load", USER_KEYS, "stall", times=1, stall_seconds=STALL)
    res = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", "bulkload"])
    assert res.returncode == 0, res.stderr
    store = state_store(fleet, "restore")
    wait_until("a BulkLoad", lambda: (j := restore_job(fleet)) and store.results(j.uid, "bulkload_started"))


def test_whole_fleet_killed_mid_backup_and_mid_restore(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    fast_redelivery(fleet, visibility=6)
    source = source_cluster(embedded_cluster_factory)
    for name in ("a1", "a2"):
        fleet.start_worker(name)
    workload = start_workload(source.cluster_file, keys=2000, rate=300, duration=4)
    _backup_until_snapshot(fleet, source, tmp_path / "b")
    fleet.kill_all(signal.SIGKILL)
    for name in ("b1", "b2"):
        fleet.start_worker(name)
    assert workload.wait(60) == 0
    url = _finish_backup(fleet, source, tmp_path / "b")

    dest = embedded_cluster_factory(name="dest", enable_fault_injection=1, **BULKLOAD_KNOBS)
    _restore_until_bulkload(fleet, url, dest)
    fleet.kill_all(signal.SIGKILL)
    for name in ("c1", "c2"):
        fleet.start_worker(name)
    wait_for_exact_restore(fleet, source, dest)


def test_cluster_servers_killed_and_restarted(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = source_cluster(embedded_cluster_factory)
    fleet.start_worker(concurrency=3)
    workload = start_workload(source.cluster_file, keys=2000, rate=300, duration=4)
    _backup_until_snapshot(fleet, source, tmp_path / "b")
    source.kill9()  # the snapshot, the BulkDump and the log capture lose their cluster
    time.sleep(1.0)
    source.restart()
    assert workload.wait(60) in (0, 1)  # the workload itself may die with the server; it is not under test
    url = _finish_backup(fleet, source, tmp_path / "b")

    dest = embedded_cluster_factory(name="dest", enable_fault_injection=1, **BULKLOAD_KNOBS)
    _restore_until_bulkload(fleet, url, dest)
    dest.kill9()  # mid-BulkLoad, holding the restore's range lock
    time.sleep(1.0)
    dest.restart()
    wait_for_exact_restore(fleet, source, dest)


class Supervisor:
    """Restarts a worker that exits, as the deploy units do (``Restart=on-failure``), and records how
    each one ended. (On losing the broker, kombu 5.7.0's worker can fail to close its channel --
    ``AttributeError: 'NoneType' object has no attribute 'hostname'`` in ``restore_unacked`` -- and
    exits with "Unrecoverable error" instead of reconnecting.)"""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.exits: list[int] = []
        self._handled: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for w in [w for w in self.fleet.workers if not w.alive() and w.name not in self._handled]:
                self._handled.add(w.name)
                self.exits.append(int(w.proc.returncode or 0))
                # With Redis still down the replacement is not ready in time; it is supervised in turn.
                with contextlib.suppress(Exception):
                    self.fleet.start_worker(f"{w.name}r")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_redis_killed_and_restarted_with_persistence(
    persistent_redis: RedisServer, embedded_cluster_factory: Callable[..., EmbeddedCluster], tmp_path: Path
) -> None:
    fleet = Fleet(persistent_redis.url, tmp_path / "fleet")
    fleet.workdir.mkdir()
    fast_redelivery(fleet, visibility=6)
    supervisor = Supervisor(fleet)
    try:
        source = source_cluster(embedded_cluster_factory)
        fleet.start_worker(concurrency=3)
        workload = start_workload(source.cluster_file, keys=2000, rate=300, duration=4)
        _backup_until_snapshot(fleet, source, tmp_path / "b")
        persistent_redis.stop(kill=True)
        time.sleep(1.0)
        persistent_redis.start()
        assert workload.wait(60) == 0
        url = _finish_backup(fleet, source, tmp_path / "b")

        dest = embedded_cluster_factory(name="dest", enable_fault_injection=1, **BULKLOAD_KNOBS)
        _restore_until_bulkload(fleet, url, dest)
        persistent_redis.stop(kill=True)
        time.sleep(1.0)
        persistent_redis.start()
        wait_for_exact_restore(fleet, source, dest)
        assert all(code != 0 for code in supervisor.exits), supervisor.exits  # a crash, never a clean exit
    finally:
        supervisor.stop()
        fleet.stop()


def _drop_log_rounds(redis_url: str) -> int:
    """Delete every queued or unacknowledged log-round message but the guards, as the broker loses one
    when a worker dies between popping it and recording it as unacknowledged; returns how many."""
    broker = redis.Redis.from_url(f"{redis_url}/0")

    def is_round(raw: bytes) -> bool:
        message = json.loads(raw)
        message = message[0] if isinstance(message, list) else message  # unacked: [message, exchange, key]
        if message["headers"].get("task") != "backup.capture_logs":
            return False
        args = json.loads(base64.b64decode(message["body"]))[0]
        return len(args) < 3 or not args[2]

    dropped = sum(int(broker.lrem("mutationlog", 0, m)) for m in broker.lrange("mutationlog", 0, -1) if is_round(m))
    for tag, raw in broker.hgetall("unacked").items():
        if is_round(raw):
            broker.hdel("unacked", tag)
            broker.zrem("unacked_index", tag)
            dropped += 1
    return dropped


def test_a_lost_log_round_is_run_by_its_guard(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    """The whole fleet dies and the broker has lost the backup's next log round: only the round's
    guard is left, and the backup must still complete."""
    fast_redelivery(fleet, visibility=6)
    source = source_cluster(embedded_cluster_factory)
    cf = str(source.cluster_file)
    fleet.start_worker("a1")
    res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path / 'b'}", "--mode", "rangefile", "-z"])
    assert res.returncode == 0, res.stderr
    wait_until("three log rounds", lambda: (v := backup_view(fleet)) and v.job.log_round >= 3)
    fleet.kill_all(signal.SIGKILL)
    assert _drop_log_rounds(fleet.redis_url) >= 1
    fleet.start_worker("b1")
    done = run(fleet, ["fdbbackup", "discontinue", "-C", cf, "-w"], timeout=120)
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
