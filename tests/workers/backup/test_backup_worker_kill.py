"""A worker SIGKILLed mid-backup: its tasks are redelivered to a new worker and the backup is exact."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, checksum, same_data, start_workload

WIDE_MVCC = 600_000_000


def test_backup_survives_sigkill_of_its_worker(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    # Fast redelivery: a dead worker's unacknowledged tasks come back after ~8 s + one 1 s sweep.
    fleet.extra_env.update(FDBBR_VISIBILITY_TIMEOUT="8", FDBBR_REDELIVERY_SWEEP="1", FDBBR_TASK_TIME_LIMIT="7")
    source = embedded_cluster_factory(name="source", max_read_transaction_life_versions=WIDE_MVCC, shard_count=8)
    source.cli("load", "--keys", "60000", "--value-size", "100")
    first = fleet.start_worker("w1", concurrency=2)
    workload = start_workload(source.cluster_file, keys=60000, rate=300, duration=12)
    base = tmp_path / "backups"
    cf = str(source.cluster_file)
    assert fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "-z"]).returncode == 0
    time.sleep(0.4)  # the snapshot's range-file tasks and the log chain are in flight now
    fleet.kill(first, signal.SIGKILL)
    assert not first.alive()
    fleet.start_worker("w2", concurrency=2)
    assert workload.wait(90) == 0
    done = fleet.run(["fdbbackup", "discontinue", "-C", cf, "-w"], timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr + fleet.log(fleet.workers[-1])[-3000:]
    assert "has been completed" in done.stdout

    url = f"file://{backup_folder(base)}"
    dest = embedded_cluster_factory(name="dest")
    res = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "-w"], timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    version = int(res.stdout.strip().splitlines()[-1].split()[-1])
    assert same_data(checksum(source, version), checksum(dest))
