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
from collections import Counter
from pathlib import Path

from fdbcore.keys import USER_KEYS
from tests.backup.helpers import check_bulkdump_matches_cluster, check_range_files_match_cluster
from tests.faults.helpers import S3Rig, make_backup, restore_exactly
from tests.fixtures.fleet import Fleet

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
RESTORE_HOLDS = [
    (r"/snapshots/", "GET", 1),  # restore.start, after the CLI's own reads of the two snapshot manifests
    (r"/bulkdump_data/.*data\.sst", "GET", 2),  # restore.verify
    (r"/kvranges/", "GET", 2),  # restore.rangefile
    (r"/plogs/", "GET", 2),  # restore.replay
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
    make_backup(fleet, source, url, "both")
    status = json.loads(fleet.run(["fdbbackup", "status", "-C", str(source.cluster_file), "--json"]).stdout)
    assert status["BulkLoadCompatible"] is True and status["Errors"] == [], json.dumps(status, indent=1)
    assert check_range_files_match_cluster(url, source.driver, [str(s3_rig.creds)]) >= 4
    assert check_bulkdump_matches_cluster(url, source.driver, tmp_path, [str(s3_rig.creds)]) >= 4
    seen = duplicated_tasks(fleet)
    assert all(seen[t] for t in BACKUP_TASKS), f"not every kind of backup task ran twice: {seen}"

    for mode, tasks in RESTORE_TASKS.items():
        dest = s3_rig.dest(f"dest-{mode}")
        dest.driver.inject_fault("bulk_load", USER_KEYS, "stall", times=1, stall_seconds=HOLD)
        proxy.clear()
        for path, methods, times in RESTORE_HOLDS:
            proxy.slow(times, HOLD, methods=methods, path=path, skip=2 if "snapshots" in path else 0)
        restore_exactly(fleet, url, source, dest, "--mode", mode, "-t", mode)
        now = duplicated_tasks(fleet)
        assert all(now[t] > seen[t] for t in tasks), f"{mode}: not every kind of restore task ran twice: {now - seen}"
        seen = now
