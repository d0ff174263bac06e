"""Backup under a live workload, then range-file restores to exact versions (real fleet, real clusters)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.modes import SnapshotKind
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, checksum, same_data, start_workload

WIDE_MVCC = 600_000_000


@pytest.fixture
def backed_up(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> tuple[EmbeddedCluster, str]:
    source = embedded_cluster_factory(name="source", max_read_transaction_life_versions=WIDE_MVCC)
    source.cli("load", "--keys", "3000", "--value-size", "64")
    fleet.start_worker(concurrency=2)
    workload = start_workload(source.cluster_file, keys=3000, rate=400, duration=5)
    base = tmp_path / "backups"
    res = fleet.run(["fdbbackup", "start", "-C", str(source.cluster_file), "-d", f"file://{base}", "-z", "-s", "3600"])
    assert res.returncode == 0, res.stderr
    assert workload.wait(60) == 0
    done = fleet.run(["fdbbackup", "discontinue", "-C", str(source.cluster_file), "-w"])
    assert done.returncode == 0, done.stdout + done.stderr
    return source, f"file://{backup_folder(base)}"


def test_rangefile_restore_to_exact_versions(
    backed_up: tuple[EmbeddedCluster, str], embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet
) -> None:
    source, url = backed_up
    desc = Catalog(open_container(url)).describe()
    snap = next(s for s in desc.snapshots if s.kind == SnapshotKind.RANGEFILE)
    lo, hi = desc.restorable_range(SnapshotKind.RANGEFILE)  # type: ignore[misc]
    assert lo == snap.end_version and hi > lo
    targets = {"snapshot end": lo, "middle": (lo + hi) // 2, "latest": None}
    seen = set()
    for name, target in targets.items():
        dest = embedded_cluster_factory(name=f"dest-{name.replace(' ', '-')}")
        args = ["fdbrestore", "start", "-r", url, "--dest-cluster-file", str(dest.cluster_file), "-w"]
        args += ["-t", f"t{abs(hash(name)) % 1000}"]
        if target is not None:
            args += ["-v", str(target)]
        res = fleet.run(args)
        assert res.returncode == 0, f"{name}: {res.stdout}\n{res.stderr}\n{fleet.log(fleet.workers[0])[-3000:]}"
        restored_to = target if target is not None else hi
        assert f"Restored to version {restored_to}" in res.stdout
        want, got = checksum(source, restored_to), checksum(dest)
        assert want["keys"] > 0
        assert same_data(want, got), f"{name} ({restored_to}): source {want} != destination {got}"
        seen.add(want["sha256"])
    assert len(seen) == 3, "the workload must change the data between the three targets"


def test_dry_run_and_invalid_versions(
    backed_up: tuple[EmbeddedCluster, str], embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet
) -> None:
    source, url = backed_up
    dest = embedded_cluster_factory(name="dest")
    lo, hi = Catalog(open_container(url)).describe().restorable_range(SnapshotKind.RANGEFILE)  # type: ignore[misc]
    ok = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "-n", "-v", str(lo)])
    assert ok.returncode == 0 and ok.stdout.strip() == f"Backup can be used to restore to version {lo}"
    bad = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "-n", "-v", str(hi + 10**9)])
    assert bad.returncode == 2
    assert f"Insufficient data to restore to version {hi + 10**9}." in bad.stderr
    assert "restore_invalid_version, 2361" in bad.stderr and f"{lo} through {hi}" in bad.stderr
    mode = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", "fast"])
    assert mode.returncode == 2 and "Unknown restore mode 'fast'" in mode.stderr
    # a non-empty destination is refused before anything is submitted
    source_copy = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(source.cluster_file)])
    assert source_copy.returncode == 5 and "restore_destination_not_empty, 2370" in source_copy.stderr
