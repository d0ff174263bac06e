"""Redelivery: every task runs twice, concurrently, and backup and restore still end exactly.

The broker's visibility timeout is set far below how long tasks take (every S3 request is held by
the proxy, every BulkDump and BulkLoad stalls in the cluster), so the broker hands each running task
to a second worker process while the first is still at it: two copies of every step race, as after a
network partition or a worker too slow for its visibility timeout. The test counts the duplicates, so
it cannot pass without them.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import Settings
from fdbcore.container import open_container
from fdbcore.keys import USER_KEYS
from fdbcore.modes import RestoreMode
from tests.faults.helpers import S3Rig, assert_exact, make_backup, restore_exactly, source_cluster, verify_reads
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import check_bulkdump_matches_cluster, check_range_files_match_cluster
from workers.context import Context
from workers.restore import control, lifecycle, log_phase, replay, snapshot_phase
from workers.restore import rangefile as rangefile_restore
from workers.restore.job import RestoreState, Rewrite
from workers.state import connect_state

_RECEIVED = re.compile(r"Task ([\w.]+)\[([0-9a-f-]+)\] received")


def duplicated_tasks(fleet: Fleet) -> Counter[str]:
    """Per task name, how many task ids were delivered more than once."""
    seen: Counter[tuple[str, str]] = Counter()
    for w in fleet.workers:
        seen.update(_RECEIVED.findall(fleet.log(w)))
    return Counter(name for (name, _), n in seen.items() if n > 1)


#: Held longer than the visibility timeout: the broker hands the task to a second process meanwhile.
HOLD = 3.0
#: Requests held in each phase (path pattern, methods, how many), so that every kind of task that
#: touches S3 outlives the visibility timeout at least once.
BACKUP_HOLDS = [
    (r"/properties/", "PUT", 1),  # backup.start
    (r"/kvranges/", "PUT,POST", 2),  # backup.rangefile
    (r"/plogs/", "PUT,POST", 2),  # backup.capture_logs
    (r"/snapshots/", "PUT", 2),  # backup.finish_rangefile, backup.finish_bulkdump
]
#: ``restore.verify`` first reads every range file (rangefile mode) and log file whole; the holds for
#: ``restore.rangefile`` and ``restore.replay`` let those reads pass (:func:`verify_reads`).
#: ``restore.start`` reads nothing from S3 (the CLI planned the restore); the destination holds its
#: range-lock request instead.
RESTORE_HOLDS = [
    (r"/bulkdump_data/.*data\.sst", "GET", 2),  # restore.verify
    (r"/data/[^/]+/kvranges/", "GET", 2),  # restore.rangefile
    (r"/data/[^/]+/plogs/", "GET", 2),  # restore.replay (not logsums/plogs/: the verify's records)
]
BACKUP_TASKS = ["backup.start", "backup.rangefile", "backup.bulkdump", "backup.capture_logs"]
RESTORE_TASKS = {
    "bulkload": ["restore.start", "restore.verify", "restore.bulkload", "restore.replay"],
    "rangefile": ["restore.start", "restore.rangefile", "restore.replay"],
}


def test_every_task_twice_concurrently_still_gives_one_exact_result(s3_rig: S3Rig, tmp_path: Path) -> None:
    fleet, proxy = s3_rig.fleet, s3_rig.proxy
    fleet.extra_env.update(FDBBR_VISIBILITY_TIMEOUT="2", FDBBR_REDELIVERY_SWEEP="1", FDBBR_TASK_TIME_LIMIT="120")
    source = s3_rig.source()
    source.driver.inject_fault("bulk_dump", USER_KEYS, "stall", times=4, stall_seconds=HOLD)
    for name in ("w1", "w2"):
        fleet.start_worker(name, concurrency=2)
    url = s3_rig.url("twice")
    for path, methods, times in BACKUP_HOLDS:
        proxy.slow(times, HOLD, methods=methods, path=path)
    # The workload outlasts the stalled BulkDump (3 s after its start), so the BulkLoad restore replays logs.
    make_backup(fleet, source, url, "both", workload_seconds=6)
    status = json.loads(fleet.run(["fdbbackup", "status", "-C", str(source.cluster_file), "--json"]).stdout)
    assert status["BulkLoadCompatible"] is True and status["Errors"] == [], json.dumps(status, indent=1)
    assert check_range_files_match_cluster(url, source.driver, [str(s3_rig.creds)]) >= 4
    assert check_bulkdump_matches_cluster(url, source.driver, tmp_path, [str(s3_rig.creds)]) >= 4
    seen = duplicated_tasks(fleet)
    assert all(seen[t] for t in BACKUP_TASKS), f"not every kind of backup task ran twice: {seen}"

    for mode, tasks in RESTORE_TASKS.items():
        dest = s3_rig.dest(f"dest-{mode}")
        dest.driver.inject_fault("bulk_load", USER_KEYS, "stall", times=1, stall_seconds=HOLD)
        dest.driver.inject_fault("lock_range", USER_KEYS, "stall", times=1, stall_seconds=HOLD)
        proxy.clear()
        skips = verify_reads(url, s3_rig.creds, mode == "bulkload")
        for path, methods, times in RESTORE_HOLDS:
            skip = next((n for part, n in skips.items() if part in path), 0)
            proxy.slow(times, HOLD, methods=methods, path=path, skip=skip)
        restore_exactly(fleet, url, source, dest, "--mode", mode, "-t", mode)
        now = duplicated_tasks(fleet)
        assert all(now[t] > seen[t] for t in tasks), f"{mode}: not every kind of restore task ran twice: {now - seen}"
        seen = now


# --- late copies, step by step -----------------------------------------------------------------------
# The races above depend on timing; these two pin the worst interleavings down by driving the restore's
# steps in this process (real Redis, real clusters, the fleet's own functions) and holding one copy of a
# task at a chosen point while the restore moves on.


@dataclass
class Steps:
    ctx: Context
    uid: str
    dest: EmbeddedCluster

    def snapshot(self, skip: int | None = None) -> None:
        tasks = lifecycle.plan_of(self.ctx, self.uid).snapshot_tasks
        for i in range(tasks):
            if i != skip:
                snapshot_phase.rangefile_task(self.ctx, self.uid, i)
        assert snapshot_phase.snapshot_done(self.ctx, self.uid)

    def replay_all(self) -> None:
        for s in range(len(lifecycle.plan_of(self.ctx, self.uid).streams)):
            while not log_phase.replay_task(self.ctx, self.uid, s):
                pass

    def finish(self) -> int:
        lifecycle.finish(self.ctx, self.uid)
        job = lifecycle.load(self.ctx, self.uid)
        assert job.state == RestoreState.COMPLETED, job
        return job.target_version


@pytest.fixture(scope="module")
def logged_backup(
    module_cluster_factory: Callable[..., EmbeddedCluster], module_fleet: Fleet, module_dir: Path
) -> tuple[EmbeddedCluster, str]:
    """A file:// mode-both backup whose logs change the snapshot's keys (sets, clears, adds)."""
    source = source_cluster(module_cluster_factory)
    module_fleet.start_worker(concurrency=2)
    url = make_backup(module_fleet, source, f"file://{module_dir}/backups")
    module_fleet.stop()
    return source, url


@pytest.fixture
def steps(
    logged_backup: tuple[EmbeddedCluster, str], embedded_cluster_factory: Callable[..., EmbeddedCluster], redis_url: str
) -> Steps:
    """A range-file restore of ``logged_backup``, submitted and planned, no step run yet."""
    _, url = logged_backup
    dest = embedded_cluster_factory(name="dest")
    ctx = Context(Settings(redis_url=redis_url), connect_state(f"{redis_url}/2"))
    req = control.RestoreRequest(
        "late", url, str(dest.cluster_file), RestoreMode.RANGEFILE, None, [USER_KEYS], Rewrite()
    )
    plan = control.check(open_container(url), dest.driver, req)
    uid = control.submit(ctx.restores, req, plan)
    assert lifecycle.start(ctx, uid) is not None
    return Steps(ctx, uid, dest)


def _held(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> tuple[threading.Event, threading.Event]:
    """Make ``module.name`` wait, in threads named "late" only, until released; returns (reached, release)."""
    reached, release = threading.Event(), threading.Event()
    original = getattr(module, name)

    def held(*args: object, **kwargs: object) -> object:
        if threading.current_thread().name == "late":
            reached.set()
            assert release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
    return reached, release


def _late(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(target()), name="late", daemon=True)
    thread.start()
    return thread, out


def test_a_range_file_copy_held_past_the_snapshot_phase_writes_nothing(
    steps: Steps, logged_backup: tuple[EmbeddedCluster, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = logged_backup
    files = lifecycle.plan_of(steps.ctx, steps.uid).range_files
    biggest = max(range(len(files)), key=lambda i: files[i].size)
    reached, release = _held(monkeypatch, rangefile_restore, "iter_range_file")
    late, _ = _late(lambda: snapshot_phase.rangefile_task(steps.ctx, steps.uid, biggest))  # read, not yet written
    assert reached.wait(30)
    steps.snapshot()  # the first copy restores the file too, and the replay starts
    steps.replay_all()
    release.set()
    late.join(60)
    assert not late.is_alive()
    assert_exact(source, steps.dest, steps.finish())


def test_a_replay_copy_that_loses_its_race_after_finish_replays_nothing(
    steps: Steps, logged_backup: tuple[EmbeddedCluster, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = logged_backup
    steps.snapshot()
    streams = lifecycle.plan_of(steps.ctx, steps.uid).streams
    busiest = max(range(len(streams)), key=lambda s: sum(f.size for f in streams[s]))
    reached, release = _held(monkeypatch, replay.Replayer, "run")
    late, out = _late(lambda: log_phase.replay_task(steps.ctx, steps.uid, busiest))  # position read, nothing applied
    assert reached.wait(30)
    steps.replay_all()
    version = steps.finish()  # clears the replay positions and the lock
    release.set()
    late.join(60)
    assert out == [True]
    assert_exact(source, steps.dest, version)
