"""Issue 15: restores into a live cluster, one range at a time, while a workload uses the others.

One backup (mode both, taken while a workload wrote sets, clears and atomic adds) is restored again
and again into one destination that holds other data and serves a checked workload throughout:

- each method, with and without ``--add-prefix``, to the minimum, middle and maximum restorable
  versions: the restored range equals the source at that version, the workload's keys equal its own
  model, the other data is untouched, and the range's old contents are gone;
- ``-n`` names what would be replaced; while the restore runs, writes and reads of the range are
  refused with ``transaction_rejected_range_locked`` (1242) and other ranges serve;
- SIGKILL of the worker fleet and of the destination server mid-restore: the restore resumes exactly;
- an abort, and a failure, put the range's old contents back (a BulkLoad still in flight included).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fdbcore import errors
from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import KeyRange, printable
from fdbcore.modes import SnapshotKind
from fdbcore.mutations import set_value
from tests.faults.helpers import (
    BULKLOAD_KNOBS,
    fast_redelivery,
    make_backup,
    restore_job,
    restored_version,
    run,
    source_cluster,
    state_store,
    wait_until,
    worker_logs,
)
from tests.fixtures.cluster import EmbeddedCluster, cluster_factory
from tests.fixtures.fleet import Fleet
from tests.fixtures.redis import RedisServer
from tests.support.live import Workload, read_range

#: The restored source range: part of the load keys and the atomic counters the backup's workload adds to.
SOURCE_RANGE = KeyRange(b"load/0000000900", b"load/d")
#: Data of the destination that no restore touches.
OTHER = KeyRange(b"other/", b"other0")
WORKLOAD_PREFIX = b"live/"
KINDS = {"bulkload": SnapshotKind.BULKDUMP, "rangefile": SnapshotKind.RANGEFILE}


@dataclass
class Rig:
    source: EmbeddedCluster
    dest: EmbeddedCluster
    url: str
    fleet: Fleet
    #: Per method and target name: the version and the source range's pairs at it.
    targets: dict[tuple[str, str], tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=dict)
    tags: int = 0

    def tag(self) -> str:
        self.tags += 1
        return f"live{self.tags}"

    def restore_args(self, method: str, prefix: bytes, tag: str, *extra: str) -> list[str]:
        args = ["fdbrestore", "start", "-r", self.url, "-C", str(self.dest.cluster_file), "--mode", method, "-t", tag]
        args += ["-k", f"{printable(SOURCE_RANGE.begin)} {printable(SOURCE_RANGE.end)}"]
        return args + (["--add-prefix", printable(prefix)] if prefix else []) + list(extra)


@pytest.fixture(scope="module")
def rig(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("live_restore")
    redis_server.client().flushall()
    fleet = Fleet(redis_server.url, root / "fleet")
    fleet.workdir.mkdir(parents=True)
    with cluster_factory(root) as clusters:
        try:
            fleet.start_worker("w1", concurrency=3)
            source = source_cluster(clusters, keys=1500)
            url = make_backup(fleet, source, f"file://{root}/backups", "both")
            dest = clusters(name="dest", shard_count=4, enable_fault_injection=1, **BULKLOAD_KNOBS)
            dest.driver.commit([set_value(OTHER.begin + b"%04d" % i, b"o" * 40) for i in range(300)])
            rig = Rig(source, dest, url, fleet)
            desc = Catalog(open_container(url)).describe()
            for method, kind in KINDS.items():
                lo, hi = desc.restorable_range(kind)  # type: ignore[misc]
                for name, version in (("min", lo), ("mid", (lo + hi) // 2), ("max", hi)):
                    rig.targets[method, name] = (version, read_range(source.driver, SOURCE_RANGE, version))
            yield rig
        finally:
            fleet.stop()


def dest_range(prefix: bytes) -> KeyRange:
    return KeyRange(prefix + SOURCE_RANGE.begin, prefix + SOURCE_RANGE.end)


def put_stale(dest: EmbeddedCluster, r: KeyRange) -> list[tuple[bytes, bytes]]:
    """Give the destination range old contents (keys the backup has and keys it never had)."""
    stale = [set_value(r.begin + b"%04d" % i, b"stale %d" % i) for i in range(0, 400, 3)]
    stale.append(set_value(r.begin, b"stale begin"))
    dest.driver.commit(stale)
    return read_range(dest.driver, r)


def check_restored(rig: Rig, method: str, target: str, prefix: bytes, stdout: str) -> None:
    version, want = rig.targets[method, target]
    assert restored_version(stdout) == version
    assert want, "the source range is empty at that version; the comparison proves nothing"
    got = read_range(rig.dest.driver, dest_range(prefix))
    assert got == [(prefix + k, v) for k, v in want], f"{method} to {target} ({version}) is not exact"


def check_others(rig: Rig, other_before: list[tuple[bytes, bytes]], workload: Workload) -> None:
    workload.check_final(rig.dest.driver)
    assert read_range(rig.dest.driver, OTHER) == other_before
    assert rig.dest.driver.status().locks == []


CASES = [
    ("bulkload", "min", b""),
    ("bulkload", "mid", b"p/"),
    ("bulkload", "max", b""),
    ("rangefile", "min", b"p/"),
    ("rangefile", "mid", b""),
    ("rangefile", "max", b"p/"),
]


@pytest.mark.parametrize(
    ("method", "target", "prefix"), CASES, ids=[f"{m}-{t}-{'prefix' if p else 'plain'}" for m, t, p in CASES]
)
def test_live_restore_of_one_range(rig: Rig, method: str, target: str, prefix: bytes) -> None:
    put_stale(rig.dest, dest_range(prefix))
    other_before = read_range(rig.dest.driver, OTHER)
    version, _ = rig.targets[method, target]
    with Workload(rig.dest.cluster_file, WORKLOAD_PREFIX, seed=rig.tags + 1) as workload:
        time.sleep(0.5)
        workload.phase = "during"
        res = run(rig.fleet, rig.restore_args(method, prefix, rig.tag(), "-v", str(version), "-w"))
        workload.phase = "after"
        time.sleep(0.5)
    assert res.returncode == 0, res.stdout + res.stderr + worker_logs(rig.fleet)
    check_restored(rig, method, target, prefix, res.stdout)
    assert workload.errors() == [], "the workload outside the restored range saw errors"
    check_others(rig, other_before, workload)


def test_targets_differ(rig: Rig) -> None:
    """The backup's workload changed the restored range between the targets (else the matrix is weak)."""
    for method in KINDS:
        assert len({tuple(rig.targets[method, t][1]) for t in ("min", "mid", "max")}) == 3


def test_dry_run_names_what_would_be_replaced(rig: Rig) -> None:
    held = put_stale(rig.dest, dest_range(b""))
    res = run(rig.fleet, rig.restore_args("bulkload", b"", rig.tag(), "-n"))
    assert res.returncode == 0, res.stderr
    version = rig.targets["bulkload", "max"][0]
    nbytes = sum(len(k) + len(v) for k, v in held)
    assert res.stdout.splitlines() == [
        f"Backup can be used to restore to version {version}",
        f"Range '{printable(SOURCE_RANGE.begin)}'-'{printable(SOURCE_RANGE.end)}' would be replaced: "
        f"it holds {len(held)} keys, {nbytes} bytes ({nbytes / 1024:.2f} KB) now",
    ]
    empty = run(rig.fleet, rig.restore_args("rangefile", b"q/", rig.tag(), "-n"))  # nothing to replace there
    line = f"Backup can be used to restore to version {rig.targets['rangefile', 'max'][0]}"
    assert empty.returncode == 0 and empty.stdout.splitlines() == [line], empty.stdout
    assert read_range(rig.dest.driver, dest_range(b"")) == held, "a dry run changed the destination"
    assert rig.dest.driver.status().locks == []


def _start_stalled(rig: Rig, method: str, prefix: bytes, stall: float, *extra: str) -> str:
    """Start a BulkLoad restore whose load stalls; return its tag once the load runs (the range is
    then cleared, its old contents set aside, and locked against reads and writes)."""
    rig.dest.driver.inject_fault("bulk_load", dest_range(prefix), "stall", stall_seconds=stall)
    tag = rig.tag()
    res = run(rig.fleet, rig.restore_args(method, prefix, tag, *extra))
    assert res.returncode == 0, res.stderr
    store = state_store(rig.fleet, "restore")
    wait_until("the BulkLoad", lambda: (j := restore_job(rig.fleet, tag)) and store.results(j.uid, "bulkload_started"))
    return tag


def test_locked_range_refuses_writes_and_reads_by_name(rig: Rig) -> None:
    put_stale(rig.dest, dest_range(b""))
    db = rig.dest.driver
    inside = SOURCE_RANGE.begin + b"0"
    with Workload(rig.dest.cluster_file, WORKLOAD_PREFIX, seed=7) as workload:
        workload.phase = "during"
        tag = _start_stalled(rig, "bulkload", b"", 4.0)
        now = db.get_read_version()
        for attempt in (
            lambda: db.commit([set_value(inside, b"app write")]),
            lambda: db.get(inside, now),
            lambda: db.get_range(b"load/", b"load0", now),
        ):
            with pytest.raises(errors.TransactionRejectedRangeLocked) as refused:
                attempt()
            assert refused.value.code == 1242 and refused.value.retryable
        db.commit([set_value(OTHER.end + b"x", b"outside")])  # right beside it: served
        status = run(rig.fleet, ["fdbrestore", "status", "-t", tag]).stdout
        assert "Old Contents: " in status and "State: running" in status, status
        done = run(rig.fleet, ["fdbrestore", "wait", "-t", tag])
        workload.phase = "after"
    assert done.returncode == 0, done.stdout + done.stderr + worker_logs(rig.fleet)
    check_restored(rig, "bulkload", "max", b"", done.stdout)
    assert workload.errors() == []
    workload.check_final(db)


def test_abort_puts_the_old_contents_back(rig: Rig) -> None:
    """Abort while a BulkLoad is in flight: the old contents come back, and the load, when its stall
    ends, is refused (its lock was handed to the abort) instead of landing in the released range."""
    old = put_stale(rig.dest, dest_range(b""))
    other_before = read_range(rig.dest.driver, OTHER)
    stall = 5.0
    with Workload(rig.dest.cluster_file, WORKLOAD_PREFIX, seed=11) as workload:
        tag = _start_stalled(rig, "bulkload", b"", stall)
        started = time.monotonic()
        res = run(rig.fleet, ["fdbrestore", "abort", "-t", tag])
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            f"RESTORE_ABORT Tag: {tag}  State: aborted",
            f"Ranges: as before the restore (its old contents put back: {len(old)} keys)",
        ]
        assert read_range(rig.dest.driver, dest_range(b"")) == old
        time.sleep(max(0.0, stall + 2 - (time.monotonic() - started)))  # the stalled load gives up meanwhile
    assert read_range(rig.dest.driver, dest_range(b"")) == old, "a load of the aborted restore landed"
    assert workload.errors() == []
    check_others(rig, other_before, workload)
    status = run(rig.fleet, ["fdbrestore", "status", "-t", tag]).stdout
    assert "State: aborted" in status and "Ranges: as before the restore" in status, status


def test_abort_while_the_restore_takes_its_lock(rig: Rig) -> None:
    """Aborted before it changed anything: the range is untouched, and the lock the restore was still
    taking is released (the restore finds itself aborted once it has it)."""
    old = put_stale(rig.dest, dest_range(b""))
    rig.dest.driver.inject_fault("lock_range", dest_range(b""), "stall", stall_seconds=2.0)
    started = time.monotonic()
    tag = rig.tag()
    res = run(rig.fleet, rig.restore_args("rangefile", b"", tag))
    assert res.returncode == 0, res.stderr
    wait_until(
        "the restore to take its lock", lambda: (j := restore_job(rig.fleet, tag)) and j.state.value == "starting"
    )
    aborted = run(rig.fleet, ["fdbrestore", "abort", "-t", tag])
    assert aborted.stdout.splitlines()[-1] == "Ranges: as before the restore (it had not changed them)", aborted.stdout
    time.sleep(max(0.0, started + 3.0 - time.monotonic()))  # the stalled lock is taken meanwhile
    wait_until("the stalled lock to be released", lambda: rig.dest.driver.status().locks == [], timeout=30)
    assert read_range(rig.dest.driver, dest_range(b"")) == old


def test_failed_restore_rolls_back_by_itself(rig: Rig) -> None:
    old = put_stale(rig.dest, dest_range(b"p/"))
    rig.dest.driver.inject_fault("bulk_load", dest_range(b"p/"), "fail", times=20)
    tag = rig.tag()
    res = run(rig.fleet, rig.restore_args("bulkload", b"p/", tag, "-w"))
    rig.dest.driver.clear_faults()
    assert res.returncode != 0 and "restore_bulkload_failed, 2391" in res.stderr, res.stdout + res.stderr
    # -w returns once the rollback is done: the range holds its old contents and is released
    assert read_range(rig.dest.driver, dest_range(b"p/")) == old
    assert rig.dest.driver.status().locks == []
    job = restore_job(rig.fleet, tag)
    assert job is not None and job.rollback.value == "complete"


def test_worker_killed_mid_restore(rig: Rig) -> None:
    put_stale(rig.dest, dest_range(b"p/"))
    other_before = read_range(rig.dest.driver, OTHER)
    with Workload(rig.dest.cluster_file, WORKLOAD_PREFIX, seed=13) as workload:
        tag = _start_stalled(rig, "bulkload", b"p/", 2.0)
        rig.fleet.kill_all(signal.SIGKILL)
        saved = dict(rig.fleet.extra_env)
        fast_redelivery(rig.fleet, visibility=6)
        rig.fleet.start_worker("w2", concurrency=3)
        done = run(rig.fleet, ["fdbrestore", "wait", "-t", tag])
    rig.fleet.extra_env = saved
    assert done.returncode == 0, done.stdout + done.stderr + worker_logs(rig.fleet)
    check_restored(rig, "bulkload", "max", b"p/", done.stdout)
    assert workload.errors() == []
    check_others(rig, other_before, workload)


def test_destination_server_killed_mid_restore(rig: Rig) -> None:
    put_stale(rig.dest, dest_range(b""))
    other_before = read_range(rig.dest.driver, OTHER)
    with Workload(rig.dest.cluster_file, WORKLOAD_PREFIX, seed=17) as workload:
        tag = _start_stalled(rig, "bulkload", b"", 3.0)
        workload.phase = "outage"
        rig.dest.kill9()
        time.sleep(0.5)
        rig.dest.start()
        workload.phase = "during"
        done = run(rig.fleet, ["fdbrestore", "wait", "-t", tag])
    assert done.returncode == 0, done.stdout + done.stderr + worker_logs(rig.fleet)
    check_restored(rig, "bulkload", "max", b"", done.stdout)
    # only operations the outage overlapped may fail: a lost connection, a commit of unknown outcome,
    # or a read version taken before the kill, which the restarted server no longer serves
    disrupted = workload.errors(["outage"])
    assert workload.errors() == disrupted, workload.errors()
    assert all(any(code in e for code in ("(1026)", "(1021)", "(1007)")) for e in disrupted), disrupted
    check_others(rig, other_before, workload)
