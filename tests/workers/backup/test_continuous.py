"""Continuous backup as operators run it (issue 13): ``-z`` with a snapshot every ``-s`` seconds.

One module-wide ``--mode both`` backup runs over four snapshot periods (``--initial-snapshot-interval
4``, then ``-s 5``) while a workload writes sets, clears, clear ranges and atomic adds. Period 2's
BulkDump is stalled past the end of its period: it completes in period 3, and period 3's BulkDump
starts only after it. Restores with each method to a version in each of the first three periods are
exact (each from the newest snapshot of its kind at or before the target), and ``expire`` in the
middle keeps the later versions restorable. The restore options that need a multi-snapshot backup
(``--snapshot-version`` and the older-snapshot fallback, ``--incremental``, ``-f``,
``--inconsistent-snapshot-only``, ``--keys-file``, ``--user-data``/``--system-metadata``) and
``fdbbackup query``/``describe --deep`` use the same backup; tests that change it work on a copy.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fdbcore import naming
from fdbcore.catalog import Catalog
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import open_container
from fdbcore.keys import KeyRange
from fdbcore.modes import RestoreMode, SnapshotKind
from fdbcore.mutations import set_value
from tests.faults.helpers import (
    BULKLOAD_KNOBS,
    assert_exact,
    container_fingerprint,
    restore_exactly,
    run,
    source_cluster,
    state_store,
    wait_for_exact_restore,
    wait_until,
)
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, checksum, read_all, same_data, start_workload
from workers.backup.job import BackupJob, BulkDumpSnapshot, RangeFileSnapshot, bulkdump_record, rangefile_record
from workers.state import JobStore

INITIAL, PERIOD, STALL = 4, 5, 6
SHARDS = 4
DAY_VERSIONS = 86_400_000_000


@dataclass(frozen=True)
class Backup:
    source: EmbeddedCluster
    url: str
    rf: list[RangeFileSnapshot]  # by period, 1..n
    bd: list[BulkDumpSnapshot]  # every BulkDump, oldest first
    root: Path

    def bd_of(self, period: int) -> BulkDumpSnapshot:
        [found] = [b for b in self.bd if b.seq == period]
        return found

    def period_begin(self, k: int) -> int:
        """The read version when period ``k`` opened (its range-file snapshot's folder version)."""
        return self.rf[k - 1].version

    def target(self, k: int, mode: RestoreMode) -> int:
        """A version inside period ``k`` that the mode restores from a snapshot finished by then."""
        end = self.period_begin(k + 1)
        if mode == RestoreMode.RANGEFILE:
            done = self.rf[k - 1].end_version
        else:
            done = max(b.end_version for b in self.bd if b.end_version is not None and b.end_version < end)
        assert done is not None
        lo = max(done, self.period_begin(k))
        assert lo < end, f"no {mode} snapshot finished inside period {k}"
        return (lo + end) // 2

    def copy(self, name: str) -> str:
        """A copy of the backup's folder, for tests that change it."""
        src = Path(self.url[len("file://") :])
        dst = self.root / name
        shutil.copytree(src, dst)
        return f"file://{dst}"


@contextmanager
def touching_every_shard(driver: ClusterDriver, interval: float = 0.25) -> Iterator[None]:
    """Writes into every shard while the block runs: the workload writes one shard only, and an idle
    log partition's files span up to 10 s, which would move an expire's cutoff back that far."""
    stop = threading.Event()
    shards = driver.shard_map()

    def tick() -> None:
        i = 0
        while not stop.wait(interval):
            driver.commit([set_value(s.range.begin + b"\x00tick", b"%d" % i) for s in shards])
            i += 1

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.fixture(scope="module")
def backup(
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
    module_dir: Path,
) -> Backup:
    source = source_cluster(module_cluster_factory, keys=3000, shard_count=SHARDS, bulkdump_batch_bytes=32 << 10)
    module_fleet.start_worker(concurrency=3)
    cf = str(source.cluster_file)
    base = module_dir / "backups"
    workload = start_workload(source.cluster_file, keys=3000, rate=300, duration=3 * PERIOD + INITIAL - 1)
    with touching_every_shard(source.driver):
        args = ["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--snapshot-mode", "both", "-z"]
        started = run(module_fleet, [*args, "-s", str(PERIOD), "--initial-snapshot-interval", str(INITIAL)])
        assert started.returncode == 0, started.stderr
        store: JobStore[BackupJob] = state_store(module_fleet, "backup")
        job = wait_until("the first BulkDump", lambda: (j := store.job_for_tag("default")) and j.bulkdump_end and j)
        # The next BulkDump (period 2's) stalls on the shard the workload writes, for longer than a period.
        source.driver.inject_fault("bulk_dump", source.driver.shard_map()[1].range, "stall", stall_seconds=STALL)
        assert workload.wait(120) == 0
    done = run(module_fleet, ["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
    job = store.get(job.uid)
    rf = [rangefile_record(store, job.uid, k).get() for k in range(1, job.snapshot_seq + 1)]
    bd = [s for k in range(1, job.bulkdump_seq + 1) if (s := bulkdump_record(store, job.uid, k).load())]
    return Backup(source, f"file://{backup_folder(base)}", rf, bd, module_dir)


def test_snapshot_periods_pacing_and_one_bulkdump_at_a_time(backup: Backup) -> None:
    assert len(backup.rf) >= 4, "the backup should have run over at least four periods"
    assert all(s.phase == "complete" and s.tasks_dispatched == s.tasks_total == SHARDS for s in backup.rf)
    # Range files are spread over their period: task i of n goes at i/n of the interval.
    for k in (2, 3):
        rf = backup.rf[k - 1]
        assert rf.end_version - rf.begin_version >= 0.4 * PERIOD * 1_000_000, (k, rf)  # type: ignore[operator]
    # Periods follow each other: each opens after the previous one's range files were done and its interval passed.
    for prev, nxt in zip(backup.rf, backup.rf[1:], strict=False):
        assert nxt.started_at >= (prev.finished_at or 0) and nxt.started_at - prev.started_at >= INITIAL - 0.01
    assert all(b.phase == "complete" for b in backup.bd) and len(backup.bd) >= 3
    # Period 2's BulkDump was stalled past its period's end and completed in period 3 ...
    stalled = backup.bd_of(2)
    assert stalled.finished_at is not None and stalled.finished_at > backup.rf[2].started_at
    assert stalled.end_version is not None and stalled.end_version > backup.period_begin(3)
    # ... and BulkDumps never overlap: period 3's started only after it, late in its own period.
    for prev, nxt in zip(backup.bd, backup.bd[1:], strict=False):
        assert prev.finished_at is not None and nxt.started_at >= prev.finished_at
    assert backup.bd_of(3).started_at > backup.rf[2].started_at
    # Each snapshot has its own manifest, with its type; every BulkDump snapshot restores with BulkLoad.
    desc = Catalog(open_container(backup.url)).describe()
    kinds = [s.kind for s in desc.snapshots]
    assert kinds.count(SnapshotKind.RANGEFILE) == len(backup.rf) and kinds.count(SnapshotKind.BULKDUMP) == len(
        backup.bd
    )
    assert {s.path for s in desc.snapshots} >= {s.manifest for s in [*backup.rf, *backup.bd]}
    assert all(s.restorable for s in desc.snapshots)


def test_restores_with_each_method_to_each_period_are_exact(
    backup: Backup,
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
) -> None:
    catalog = Catalog(open_container(backup.url))
    submitted = []
    for k in (1, 2, 3):
        for mode in RestoreMode:
            target = backup.target(k, mode)
            rs = catalog.restore_set(target, [KeyRange(b"", b"\xff")], mode)
            assert rs.snapshot is not None
            newest = [s for s in catalog.snapshots() if s.kind == mode.snapshot_kind and s.end_version <= target][-1]
            assert rs.snapshot.path == newest.path  # the newest snapshot of the mode's kind at or before the target
            if mode == RestoreMode.RANGEFILE:
                assert rs.snapshot.path == backup.rf[k - 1].manifest
            tag = f"p{k}-{mode}"
            dest = module_cluster_factory(name=tag, **BULKLOAD_KNOBS)
            args = ["fdbrestore", "start", "-r", backup.url, "-C", str(dest.cluster_file), "--mode", mode.value]
            res = run(module_fleet, [*args, "-t", tag, "-v", str(target)])
            assert res.returncode == 0, res.stderr
            submitted.append((tag, dest, target))
    # Period 2's BulkLoad restore comes from period 1's BulkDump (period 2's finished only in period 3).
    assert backup.target(2, RestoreMode.BULKLOAD) < (backup.bd_of(2).end_version or 0)
    for tag, dest, target in submitted:
        assert wait_for_exact_restore(module_fleet, backup.source, dest, tag) == target


def test_expire_in_the_middle_keeps_later_versions_restorable(
    backup: Backup,
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
) -> None:
    url = backup.copy("expired")
    cutoff = backup.period_begin(2)
    res = run(module_fleet, ["fdbbackup", "expire", "-d", url, "--expire-before-version", str(cutoff)])
    assert res.returncode == 0, res.stderr
    assert f"All data before version {cutoff} has been deleted." in res.stdout
    container = open_container(url)
    desc = Catalog(container).describe()
    assert all(s.begin_version >= cutoff for s in desc.snapshots)
    kept = {backup.rf[1].manifest, backup.rf[2].manifest, backup.bd_of(2).manifest}
    assert {s.path for s in desc.snapshots} >= kept
    assert backup.rf[0].manifest not in {s.path for s in desc.snapshots}
    gone = naming.bulkdump_job_dir(backup.bd_of(1).job_id)
    assert not list(container.list(f"{naming.BULKDUMP_ROOT}/{gone}/")), "period 1's BulkDump went with its snapshot"
    assert list(container.list(f"{naming.BULKDUMP_ROOT}/{naming.bulkdump_job_dir(backup.bd_of(2).job_id)}/"))
    for mode in RestoreMode:
        dest = module_cluster_factory(name=f"expired-{mode}", **BULKLOAD_KNOBS)
        target = backup.target(3, mode)
        restore_exactly(
            module_fleet, url, backup.source, dest, "--mode", mode.value, "-v", str(target), "-t", f"x{mode}"
        )
    early = backup.target(1, RestoreMode.RANGEFILE)
    dry = run(module_fleet, ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "-n", "-v", str(early)])
    assert dry.returncode == 2 and f"Insufficient data to restore to version {early}" in dry.stderr


def test_damaged_newest_bulkdump_names_the_older_one_and_uses_it_only_when_asked(
    backup: Backup,
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
) -> None:
    url = backup.copy("damaged")
    container = open_container(url)
    newest, older = backup.bd[-1], backup.bd[-2]
    folder = f"{naming.BULKDUMP_ROOT}/{naming.bulkdump_job_dir(newest.job_id)}/"
    data = sorted(i.path for i in container.list(folder) if i.path.endswith("data.sst"))[0]
    container.delete(data)
    deep = run(module_fleet, ["fdbbackup", "describe", "-d", url, "--deep"]).stdout
    line = next(i for i, text in enumerate(deep.splitlines()) if f"endVersion={newest.end_version}" in text)
    assert "restorable=false" in deep.splitlines()[line] and f"Damaged: data file {data} is missing" in deep
    assert "restorable=false" not in run(module_fleet, ["fdbbackup", "describe", "-d", url]).stdout

    dest = module_cluster_factory(name="fallback", **BULKLOAD_KNOBS)
    args = ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", "bulkload", "-w", "-t", "fb"]
    refused = run(module_fleet, args)
    assert refused.returncode == 6 and "restore_bulkload_dataset_incomplete, 2390" in refused.stderr
    assert data in refused.stderr and f"pass --snapshot-version {older.end_version} to use it" in refused.stderr
    assert checksum(dest)["keys"] == 0
    res = run(module_fleet, [*args, "--snapshot-version", str(older.end_version)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert_exact(backup.source, dest, int(res.stdout.split()[-1]))


def test_incremental_force_inconsistent_and_key_options(
    backup: Backup,
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
) -> None:
    t2, t3 = backup.target(2, RestoreMode.RANGEFILE), backup.target(3, RestoreMode.RANGEFILE)
    keys_file = backup.root / "keys.txt"
    keys_file.write_text("load/0000000500 load/0000001000\nload/0000002000 load/0000002500\n")
    dests: dict[str, EmbeddedCluster] = {}
    for tag, extra in (
        ("base", ["-v", str(t2)]),  # then --incremental and -f onto it
        ("inconsistent", ["--inconsistent-snapshot-only", "-v", str(t2)]),
        ("keys-file", ["--keys-file", str(keys_file)]),
        ("user-data", ["--user-data"]),
    ):
        dests[tag] = module_cluster_factory(name=tag)
        args = ["fdbrestore", "start", "-r", backup.url, "-C", str(dests[tag].cluster_file), "-t", tag, *extra]
        assert run(module_fleet, args).returncode == 0
    cmd = ["fdbrestore", "start", "-r", backup.url, "-C", str(dests["user-data"].cluster_file), "-n"]
    both = run(module_fleet, [*cmd, "--user-data", "--system-metadata"])
    assert both.returncode == 2 and "Please only specify one of --user-data or --system-metadata" in both.stderr
    extra = run(module_fleet, [*cmd, "--user-data", "-k", "a b"])
    assert extra.returncode == 2 and "Cannot specify additional ranges" in extra.stderr
    system = run(module_fleet, [*cmd, "--system-metadata"])
    assert system.returncode == 6 and "holds no system metadata" in system.stderr

    dest = dests["base"]
    assert wait_for_exact_restore(module_fleet, backup.source, dest, "base") == t2
    # --incremental: only the logs after --begin-version, onto the earlier restore (no emptiness check).
    args = ["--incremental", "--begin-version", str(t2), "-v", str(t3), "-t", "inc"]
    assert restore_exactly(module_fleet, backup.url, backup.source, dest, *args) == t3
    # A range-file restore into the now non-empty destination is refused; -f overwrites it exactly.
    refused = run(module_fleet, ["fdbrestore", "start", "-r", backup.url, "-C", str(dest.cluster_file), "-t", "re"])
    assert refused.returncode == 5 and "restore_destination_not_empty, 2370" in refused.stderr
    assert restore_exactly(module_fleet, backup.url, backup.source, dest, "-f", "-v", str(t2), "-t", "force") == t2

    # --inconsistent-snapshot-only: each range as of its own range file's version, no logs.
    rf = backup.rf[1]
    done = run(module_fleet, ["fdbrestore", "wait", "-t", "inconsistent"])
    assert done.returncode == 0 and f"Restored to version {rf.end_version}" in done.stdout, done.stdout + done.stderr
    catalog = Catalog(open_container(backup.url))
    [snap] = [s for s in catalog.snapshots() if s.path == rf.manifest]
    files = {f.path: f for f in catalog.range_files()}
    fresh = dests["inconsistent"]
    for path, key_range in snap.manifest.key_ranges.items():  # type: ignore[union-attr]
        want = read_all(backup.source.driver, key_range, files[path].version)
        got = read_all(fresh.driver, key_range, fresh.driver.get_read_version())
        assert got == want, f"{path}: not the source at the file's version"

    # --keys-file: only those ranges; --user-data: everything.
    done = run(module_fleet, ["fdbrestore", "wait", "-t", "keys-file"])
    assert done.returncode == 0, done.stderr
    version = int(done.stdout.split()[-1])
    pieces = [
        (b"load/0000000500".hex(), b"load/0000001000".hex()),
        (b"load/0000002000".hex(), b"load/0000002500".hex()),
    ]
    part = dests["keys-file"]
    for lo, hi in pieces:
        assert same_data(checksum(part, None, lo, hi), checksum(backup.source, version, lo, hi))
    assert checksum(part)["keys"] == sum(checksum(backup.source, version, lo, hi)["keys"] for lo, hi in pieces) > 0
    wait_for_exact_restore(module_fleet, backup.source, dests["user-data"], "user-data")


def test_query_lists_the_files_a_restore_reads(backup: Backup, module_fleet: Fleet) -> None:
    catalog = Catalog(open_container(backup.url))
    t2 = backup.target(2, RestoreMode.RANGEFILE)
    doc = json.loads(run(module_fleet, ["fdbbackup", "query", "-d", backup.url, "-qrv", str(t2)]).stdout)
    rs = catalog.restore_set(t2, [KeyRange(b"", b"\xff")], RestoreMode.RANGEFILE)
    assert doc["restore_version"] == t2 and doc["destination_container"] == backup.url
    assert [r["file_name"] for r in doc["ranges"]] == [f.path for f in rs.range_files]
    assert doc["total_range_files_size"] == sum(f.size for f in rs.range_files) > 0
    assert {lf["file_name"] for lf in doc["logs"]} == {f.path for f in rs.log_files}
    assert doc["total_log_files_size"] == sum(f.size for f in rs.log_files)
    oldest = json.loads(run(module_fleet, ["fdbbackup", "query", "-d", backup.url, "-qrv", "-3"]).stdout)
    assert oldest["restore_version"] == backup.rf[0].end_version
    newest = json.loads(run(module_fleet, ["fdbbackup", "query", "-d", backup.url]).stdout)
    assert newest["restore_version"] == Catalog(open_container(backup.url)).describe().max_restorable
    # An older snapshot, then the logs: --query-restore-snapshot-version.
    args = ["fdbbackup", "query", "-d", backup.url, "-qrv", str(t2), "--query-restore-snapshot-version"]
    older = json.loads(run(module_fleet, [*args, str(backup.rf[0].end_version)]).stdout)
    assert older["snapshot_version"] == backup.rf[0].end_version
    assert all(r["version"] <= backup.rf[0].end_version for r in older["ranges"])  # type: ignore[operator]
    assert older["total_log_files_size"] > doc["total_log_files_size"]
    # -k keeps the files that hold the range; --mode bulkload lists the dataset's files.
    args = ["fdbbackup", "query", "-d", backup.url, "-qrv", str(t2), "-k", "load/0000000001 load/0000000002"]
    one = json.loads(run(module_fleet, args).stdout)
    assert len(one["ranges"]) == 1 and one["key_ranges_filter"] == "[{ begin=load/0000000001  end=load/0000000002 }]"
    bulk = json.loads(run(module_fleet, ["fdbbackup", "query", "-d", backup.url, "--mode", "bulkload"]).stdout)
    assert (
        bulk["ranges"] == []
        and bulk["bulkdump_files"]
        and bulk["total_bulkdump_files_size"] == sum(f["file_size"] for f in bulk["bulkdump_files"])
    )
    assert any(f["file_name"].endswith("data.sst") for f in bulk["bulkdump_files"])
    # A version nothing restores: FDB's JSON with "error", named.
    bad = run(module_fleet, ["fdbbackup", "query", "-d", backup.url, "-qrv", "5"])
    assert bad.returncode == 2 and json.loads(bad.stdout)["error_name"] == "restore_invalid_version"


def test_expire_options(backup: Backup, module_fleet: Fleet) -> None:
    end = Catalog(open_container(backup.url)).describe().max_log_end
    assert end is not None
    p2, p3 = backup.period_begin(2), backup.period_begin(3)
    # --delete-before-days counts back from the newest log's end.
    url = backup.copy("days")
    days = (end - p2) / DAY_VERSIONS
    res = run(module_fleet, ["fdbbackup", "expire", "-d", url, "--delete-before-days", repr(days)])
    assert res.returncode == 0, res.stderr
    versions = int(days * DAY_VERSIONS)
    assert (
        f"All data before {versions} versions ({days:g} days) prior to latest backup log has been deleted."
        in res.stdout
    )
    desc = Catalog(open_container(url)).describe()
    assert backup.rf[0].manifest not in {s.path for s in desc.snapshots}
    assert all(s.begin_version >= end - versions for s in desc.snapshots)

    # A restorability demand no snapshot after the cutoff meets is refused (and nothing changes), unless -f.
    url = backup.copy("restorable")
    before = container_fingerprint(url)
    unsafe = "Requested expiration would be unsafe.  Backup would not meet minimum restorability."
    demands = (
        ["--restorable-after-version", str(p3)],
        ["--min-restorable-days", repr((end - p3) / DAY_VERSIONS)],
    )
    for demand in demands:
        res = run(module_fleet, ["fdbbackup", "expire", "-d", url, "--expire-before-version", str(p3), *demand])
        assert res.returncode == 5 and unsafe in res.stderr and "backup_cannot_expire, 2316" in res.stderr, demand
    assert container_fingerprint(url) == before
    forced = run(
        module_fleet, ["fdbbackup", "expire", "-d", url, "--expire-before-version", str(p3), *demands[0], "-f"]
    )
    assert forced.returncode == 0 and f"All data before version {p3} has been deleted." in forced.stdout

    # Timestamps resolve through the cluster's timekeeper (-C).
    url = backup.copy("timestamps")
    cf = str(backup.source.cluster_file)
    t = backup.source.driver.time_at_version(p3)
    assert t is not None
    stamp = time.strftime("%Y/%m/%d.%H:%M:%S+0000", time.gmtime(t))
    version = backup.source.driver.version_at_time(t)
    args = ["fdbbackup", "expire", "-d", url, "-C", cf, "--expire-before-timestamp", stamp]
    refused = run(module_fleet, [*args, "--restorable-after-timestamp", stamp])
    assert refused.returncode == 5 and unsafe in refused.stderr
    res = run(module_fleet, args)
    assert res.returncode == 0 and f"All data before version {version} has been deleted." in res.stdout, res.stderr
