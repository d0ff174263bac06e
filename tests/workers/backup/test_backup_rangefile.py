"""A range-file backup run by real worker processes while a workload keeps writing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, check_range_files_match_cluster, start_workload

WIDE_MVCC = 600_000_000  # keep 10 minutes of history so files can be checked at their versions


def test_rangefile_backup_becomes_restorable_and_matches_the_cluster(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = embedded_cluster_factory(name="source", max_read_transaction_life_versions=WIDE_MVCC, shard_count=4)
    source.cli("load", "--keys", "4000", "--value-size", "100")
    fleet.start_worker()
    workload = start_workload(source.cluster_file, keys=4000, rate=300, duration=6)
    base = tmp_path / "backups"
    result = fleet.run(
        ["fdbbackup", "start", "-C", str(source.cluster_file), "-d", f"file://{base}", "--mode", "rangefile", "-w"]
    )
    assert workload.wait(60) == 0, workload.stderr.read() if workload.stderr else ""
    assert result.returncode == 0, result.stdout + result.stderr + fleet.log(fleet.workers[0])[-4000:]
    assert "Submitted and now waiting for the backup on tag `default' to complete." in result.stdout
    assert "The backup on tag `default' has been completed." in result.stdout

    url = f"file://{backup_folder(base)}"
    desc = Catalog(open_container(url)).describe()
    assert desc.max_restorable is not None and desc.min_restorable is not None
    assert desc.max_restorable >= desc.min_restorable
    assert [s.kind.value for s in desc.snapshots] == ["rangefile"]
    assert check_range_files_match_cluster(url, source.driver) >= 4  # one per shard at least

    status = fleet.run(["fdbbackup", "status", "-C", str(source.cluster_file)])
    assert status.returncode == 0
    first = status.stdout.splitlines()[0]
    assert first.startswith("The previous backup on tag `default' at file://") and "completed at version" in first
    assert "Snapshot Mode: rangefile" in status.stdout
    followed = fleet.run(["fdbbackup", "status", "-C", str(source.cluster_file), "-w"])
    lines = followed.stdout.splitlines()
    assert lines[0].startswith("Range-file snapshot: ") and lines[0].endswith("complete")  # plain progress lines
    assert any(line.startswith("The previous backup on tag `default'") for line in lines)
