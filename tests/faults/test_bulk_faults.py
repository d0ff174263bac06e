"""BulkDump faults the existing tests leave out (see docs/faults.md for the whole table).

tests/backup/test_bulkdump_failures.py covers a BulkDump that always fails (mode both falls back to
range files; mode bulkdump errors with backup_bulkdump_failed) and one stalled past its deadline in
mode both; tests/restore/test_restore_failures.py covers BulkLoad failing once (retried) and always
(restore_bulkload_failed). Here: a stall past the deadline in mode bulkdump, and BulkDump failing a
few times (the design's "retry forever" for transient failures).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import USER_KEYS
from tests.faults.helpers import BULKLOAD_KNOBS, file_fingerprint, restore_exactly, source_cluster
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder


def test_bulkdump_stalled_past_its_deadline_fails_a_bulkdump_mode_backup(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = source_cluster(embedded_cluster_factory)
    source.driver.inject_fault("bulk_dump", USER_KEYS, "stall", times=1000)  # until the caller's deadline
    fleet.start_worker()
    cf, base = str(source.cluster_file), tmp_path / "b"
    args = ["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", "bulkdump", "--bulkdump-timeout", "2"]
    res = fleet.run([*args, "-w"])
    assert res.returncode == 1, res.stdout + res.stderr
    assert "The backup on tag `default' has errored." in res.stdout
    doc = json.loads(fleet.run(["fdbbackup", "status", "-C", cf, "--json"]).stdout)
    assert doc["State"] == "errored" and doc["BulkDumpSnapshot"]["Phase"] == "timed_out"
    assert doc["BulkLoadCompatible"] is False
    timeouts = [e for e in doc["Errors"] if e["name"] == "backup_bulkdump_timeout"]
    assert timeouts and all(e["code"] == 2392 for e in timeouts)
    assert any("retry with --mode rangefile or --mode both" in e["message"] for e in timeouts)
    folder = backup_folder(base)
    desc = Catalog(open_container(f"file://{folder}")).describe()
    assert desc.snapshots == [] and desc.max_restorable is None  # nothing claims a dump that never finished
    assert not list(folder.glob("bulkdump_data/*/job-manifest.txt"))
    before = file_fingerprint(folder)
    dest = embedded_cluster_factory(name="dest", **BULKLOAD_KNOBS)
    refused = fleet.run(
        ["fdbrestore", "start", "-r", f"file://{folder}", "-C", str(dest.cluster_file), "--mode", "bulkload"]
    )
    assert refused.returncode == 6 and "restore_bulkload_dataset_incomplete, 2390" in refused.stderr, refused.stderr
    assert file_fingerprint(folder) == before


def test_bulkdump_failing_a_few_times_is_retried_and_restores_exactly(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = source_cluster(embedded_cluster_factory)
    source.driver.inject_fault("bulk_dump", USER_KEYS, "fail", times=3)  # three task attempts fail, then none
    fleet.start_worker()
    cf, base = str(source.cluster_file), tmp_path / "b"
    res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", "bulkdump", "-w"])
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(fleet.run(["fdbbackup", "status", "-C", cf, "--json"]).stdout)
    assert doc["State"] == "completed" and doc["BulkLoadCompatible"] is True, doc
    assert source.driver.status().extra.get("faults", []) == []  # every injected failure was met
    dest = embedded_cluster_factory(name="dest", **BULKLOAD_KNOBS)
    restore_exactly(fleet, f"file://{backup_folder(base)}", source, dest, "--mode", "bulkload")
