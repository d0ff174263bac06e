"""S3 misbehaving through a fault-injecting proxy, during backup and during restore.

Every S3 request of the fleet (CLIs and workers) and of the clusters' BulkDump and BulkLoad goes
through the proxy; a seeded share of them gets 500 InternalError, 503 SlowDown, a connection reset
(before the store saw the request, or after it handled it), a slow answer, or a GET body cut off
halfway. The outcome must be the same as without faults: a backup that restores exactly, in both
restore modes. ``--long`` runs many seeds.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tests.faults.helpers import S3Rig, restore_exactly, run, worker_logs
from tests.fixtures.s3 import S3FaultProxy

#: The URL's read timeout (``request_timeout_min``), and an answer slower than it.
READ_TIMEOUT, SLOWER_THAN_TIMEOUT = 2, 3.0
#: Faults armed at the start of each phase, one of each kind, on the backup's own objects (the chaos
#: adds more at random): (kind as counted by the proxy, how to arm it).
WRITE_FAULTS: list[tuple[str, Callable[[S3FaultProxy, str], None]]] = [
    ("status:500", lambda p, path: p.fail(1, methods="PUT,POST", path=path)),
    ("reset", lambda p, path: p.reset(1, methods="PUT", path=path)),
    ("reset_after", lambda p, path: p.reset(1, methods="PUT", path=path, after_upstream=True)),
]
READ_FAULTS: list[tuple[str, Callable[[S3FaultProxy, str], None]]] = [
    ("status:503", lambda p, path: p.throttle(1, methods="GET,HEAD", path=path)),
    ("slow", lambda p, path: p.slow(1, SLOWER_THAN_TIMEOUT, methods="GET", path=path)),
    ("truncate", lambda p, path: p.truncate(1, path=path)),
    ("reset", lambda p, path: p.reset(1, methods="GET", path=path)),
]


def _arm(proxy: S3FaultProxy, faults: list[tuple[str, Callable[[S3FaultProxy, str], None]]], path: str) -> set[str]:
    proxy.injected.clear()
    for _, arm in faults:
        arm(proxy, path)
    return {kind for kind, _ in faults}


def test_s3_faults_during_backup_and_restore_still_restore_exactly(seed: int, s3_rig: S3Rig) -> None:
    proxy, fleet = s3_rig.proxy, s3_rig.fleet
    source = s3_rig.source(bulkdump_batch_bytes=32 << 10)
    fleet.start_worker(concurrency=2)
    url = s3_rig.url("chaos", f"rtom={READ_TIMEOUT}")
    ours = "/data/chaos/"

    proxy.chaos(random.Random(seed).uniform(0.05, 0.2), seed)
    wanted = _arm(proxy, WRITE_FAULTS + READ_FAULTS, ours)
    cf = str(source.cluster_file)
    res = run(fleet, ["fdbbackup", "start", "-C", cf, "-d", url, "--mode", "both", "-w"])
    assert res.returncode == 0, res.stdout + res.stderr + worker_logs(fleet)
    assert "has been completed" in res.stdout
    assert wanted <= set(proxy.injected), f"backup: not every fault was injected: {proxy.injected}"
    status = fleet.run(["fdbbackup", "status", "-C", cf]).stdout
    assert "BulkLoad Compatible: yes" in status, status

    for mode in ("bulkload", "rangefile"):
        wanted = _arm(proxy, READ_FAULTS, ours)
        restore_exactly(fleet, url, source, s3_rig.dest(f"dest-{mode}"), "--mode", mode, "-t", mode)
        assert wanted <= set(proxy.injected), f"{mode}: not every fault was injected: {proxy.injected}"
