"""discontinue: everything committed before the command is in the finished backup."""

from __future__ import annotations

import json
from pathlib import Path

from fdbcore.mutations import set_value
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet


def test_discontinued_backup_covers_commits_made_before_the_command(
    embedded_cluster: EmbeddedCluster, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.start_worker()
    cf = str(embedded_cluster.cluster_file)
    embedded_cluster.cli("load", "--keys", "500")
    assert fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/b", "-z"]).returncode == 0
    assert fleet.run(["fdbbackup", "status", "-C", cf, "-w"]).returncode == 0  # restorable now
    last = 0
    for i in range(200):  # writes after the snapshot, right up to the command
        last = embedded_cluster.driver.commit([set_value(b"late/%03d" % i, b"x" * 2000)])
    done = fleet.run(["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0, done.stderr
    doc = json.loads(fleet.run(["fdbbackup", "status", "-C", cf, "--json"]).stdout)
    assert doc["State"] == "completed" and doc["CompletedVersion"] >= last
