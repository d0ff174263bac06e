"""BulkDump failure policy (design §Error Handling): fallback in mode both, a named failure in mode bulkdump."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import USER_KEYS
from fdbcore.modes import SnapshotKind
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, checksum, same_data
from workers import trace


def _source(factory: Callable[..., EmbeddedCluster]) -> EmbeddedCluster:
    source = factory(name="source", shard_count=4, enable_fault_injection=1)
    source.cli("load", "--keys", "2000", "--value-size", "50")
    return source


def _restores_from_range_files_only(
    fleet: Fleet, url: str, source: EmbeddedCluster, factory: Callable[..., EmbeddedCluster]
) -> None:
    """The fallback is real: ``--mode bulkload`` is refused (2390) and ``--mode rangefile`` is exact."""
    bulk = factory(name="bulk-dest", shard_encode_location_metadata=1, enable_read_lock_on_range=1)
    res = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(bulk.cluster_file), "--mode", "bulkload", "-w"])
    assert res.returncode == 6 and "restore_bulkload_dataset_incomplete, 2390" in res.stderr, res.stderr
    assert checksum(bulk)["keys"] == 0
    dest = factory(name="rf-dest")
    args = ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", "rangefile", "-t", "rf", "-w"]
    res = fleet.run(args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert same_data(checksum(source), checksum(dest))  # nothing writes to the source meanwhile


def test_bulkdump_failure_in_mode_both_falls_back_to_range_files(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = _source(embedded_cluster_factory)
    source.driver.inject_fault("bulk_dump", USER_KEYS, "fail", times=1000)
    fleet.start_worker()
    cf, base = str(source.cluster_file), tmp_path / "b"
    res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", "both", "-w"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "has been completed" in res.stdout
    status = fleet.run(["fdbbackup", "status", "-C", cf]).stdout
    assert "Snapshot Mode: both" in status and "BulkLoad Compatible: no" in status
    errs = json.loads(fleet.run(["fdbbackup", "status", "-C", cf, "--json"]).stdout)["Errors"]
    assert any(e["name"] == "backup_bulkdump_failed" and e["code"] == 2393 for e in errs)
    desc = Catalog(open_container(f"file://{backup_folder(base)}")).describe()
    assert [s.kind for s in desc.snapshots] == [SnapshotKind.RANGEFILE]  # no manifest claims the dump
    assert desc.restorable_range(SnapshotKind.RANGEFILE) is not None
    files = [f.path for f in open_container(f"file://{backup_folder(base)}").list("bulkdump_data/")]
    assert not [p for p in files if p.endswith("job-manifest.txt")]  # a failed dump is never marked complete
    events = trace.read_events(fleet.workdir / "trace")
    assert any(e["Type"] == "BackupBulkDumpIntegrationStart" and e["SnapshotMode"] == "both" for e in events)
    dual = [e for e in events if e["Type"] == "BackupDualSnapshotComplete"]
    assert dual and int(dual[0]["RangeFilesBytes"]) > 0 and dual[0]["BulkDumpPhase"] == "failed"
    _restores_from_range_files_only(fleet, f"file://{backup_folder(base)}", source, embedded_cluster_factory)


def test_bulkdump_past_its_deadline_is_a_timeout_in_mode_both(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = _source(embedded_cluster_factory)
    source.driver.inject_fault("bulk_dump", USER_KEYS, "stall", times=1000)  # stalls until the deadline
    fleet.start_worker()
    cf = str(source.cluster_file)
    args = ["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/b", "--mode", "both", "--bulkdump-timeout", "2"]
    res = fleet.run([*args, "-w"])
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(fleet.run(["fdbbackup", "status", "-C", cf, "--json"]).stdout)
    assert doc["State"] == "completed" and doc["BulkDumpSnapshot"]["Phase"] == "timed_out"
    assert any(e["name"] == "backup_bulkdump_timeout" and e["code"] == 2392 for e in doc["Errors"])
    assert doc["BulkLoadCompatible"] is False
    _restores_from_range_files_only(fleet, f"file://{backup_folder(tmp_path / 'b')}", source, embedded_cluster_factory)


def test_bulkdump_failure_in_mode_bulkdump_fails_the_backup(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = _source(embedded_cluster_factory)
    source.driver.inject_fault("bulk_dump", USER_KEYS, "fail", times=1000)
    fleet.start_worker()
    cf = str(source.cluster_file)
    res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/b", "--mode", "bulkdump", "-w"])
    assert res.returncode == 1, res.stdout + res.stderr
    assert "The backup on tag `default' has errored." in res.stdout
    status = fleet.run(["fdbbackup", "status", "-C", cf]).stdout
    assert "The previous backup on tag `default' at file://" in status and "has errored." in status
    assert "retry with --mode rangefile or --mode both" in status and "backup_bulkdump_failed, 2393" in status
    desc = Catalog(open_container(f"file://{backup_folder(tmp_path / 'b')}")).describe()
    assert desc.snapshots == [] and desc.max_restorable is None


def test_bulkdump_timeout_in_a_continuous_backup_is_tried_again_next_period(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    """Mode both, ``-z -s 2 --bulkdump-timeout 2``: period 1's BulkDump stalls past its deadline and times
    out; its range-file snapshot stays restorable, and the newest period then runs a BulkDump that completes."""
    source = _source(embedded_cluster_factory)
    source.driver.inject_fault("bulk_dump", USER_KEYS, "stall")  # one task: until its caller's deadline
    fleet.start_worker(concurrency=3)
    cf, base = str(source.cluster_file), tmp_path / "b"
    args = ["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", "both", "-z", "-s", "2"]
    assert fleet.run([*args, "--bulkdump-timeout", "2"]).returncode == 0

    def status() -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(fleet.run(["fdbbackup", "status", "-C", cf, "--json"]).stdout)
        return doc

    deadline = time.monotonic() + 60
    while not (doc := status())["BulkLoadCompatible"]:
        assert time.monotonic() < deadline, doc
        time.sleep(0.5)
    # BulkLoadCompatible means a BulkDump completed; with ``-s 2`` a later period's may already be running.
    assert doc["BulkDumpPeriod"] >= 2
    assert any(e["name"] == "backup_bulkdump_timeout" and e["code"] == 2392 for e in doc["Errors"])
    done = fleet.run(["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
    desc = Catalog(open_container(f"file://{backup_folder(base)}")).describe()
    first_rf = next(s for s in desc.snapshots if s.kind == SnapshotKind.RANGEFILE)
    first_bd = next(s for s in desc.snapshots if s.kind == SnapshotKind.BULKDUMP)
    assert first_rf.restorable and first_bd.restorable and first_bd.begin_version > first_rf.end_version
