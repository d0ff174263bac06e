"""fdbbackup's steering verbs against the real fleet (issue 13): pause/resume, modify, cleanup, and the
start options ``--snapshot-mode``, ``--keys-file``, ``--incremental`` with FDB's texts and exit codes.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from fdbcore import errors
from fdbcore.backup_encryption import open_backup
from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import USER_KEYS
from fdbcore.mutations import set_value
from tests.faults.helpers import WIDE_MVCC, restore_exactly, run, state_store, wait_until
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, checksum, same_data, start_workload
from workers.backup.job import BackupJob
from workers.state import JobStore

RANGE = ("load/0000000000", "load/0000001000")


def _source(factory: Callable[..., EmbeddedCluster], name: str = "source", seed: int = 7) -> EmbeddedCluster:
    cluster = factory(name=name, shard_count=2, max_read_transaction_life_versions=WIDE_MVCC)
    cluster.cli("load", "--keys", "1500", "--value-size", "40", "--seed", str(seed))
    return cluster


def _restorable(url: str, key_file: str | None = None) -> bool:
    try:
        return Catalog(open_backup(url, key_file=key_file)).describe().max_restorable is not None
    except errors.BackupDoesNotExist:
        return False


def test_pause_resume_modify_and_start_options(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = _source(embedded_cluster_factory)
    fleet.start_worker(concurrency=2)
    cf = str(source.cluster_file)
    keys_file = tmp_path / "keys"
    keys_file.write_text(" ".join(RANGE) + "\n")
    base1, url2 = tmp_path / "one", f"file://{tmp_path}/two"
    # -s 600: period 2 opens when the first snapshot is done and lasts 600 s (its first task is due
    # after 150 s), so no period opens or sends anything on its own while the test runs.
    args = ["fdbbackup", "start", "-C", cf, "-d", f"file://{base1}", "-z", "-s", "600", "--keys-file", str(keys_file)]
    assert run(fleet, [*args, "--snapshot-mode", "rangefile"]).returncode == 0
    assert run(fleet, ["fdbbackup", "status", "-C", cf, "-w"]).returncode == 0  # restorable
    status = run(fleet, ["fdbbackup", "status", "-C", cf]).stdout
    assert "Snapshot Mode: rangefile" in status and "Snapshot interval is 600 seconds." in status
    doc = json.loads(run(fleet, ["fdbbackup", "status", "-C", cf, "--json"]).stdout)
    assert doc["Ranges"] == [[RANGE[0].encode().hex(), RANGE[1].encode().hex()]]
    store: JobStore[BackupJob] = state_store(fleet, "backup")
    uid = doc["UID"]

    # pause: the log chain and snapshots stop; the cluster keeps the mutations, so resume loses nothing.
    paused = run(fleet, ["fdbbackup", "pause", "-C", cf])
    assert paused.returncode == 0 and paused.stdout == "All backup agents have been paused.\n"
    assert run(fleet, ["fdbbackup", "status", "-C", cf]).stdout.endswith("\nAll backup agents have been paused.\n")
    assert json.loads(run(fleet, ["fdbbackup", "status", "-C", cf, "--json"]).stdout)["BackupAgentsPaused"] is True

    def saved() -> tuple[int | None, int, int]:
        job = store.get(uid)
        return job.log_end_version, job.log_files, job.log_round

    def settled() -> tuple[int | None, int] | None:  # a round that was running when pause came has ended
        before = saved()
        time.sleep(1.0)
        after = saved()
        return before[:2] if before[:2] == after[:2] and after[2] > before[2] else None

    held = wait_until("the log chain to idle", settled)
    last = 0
    for i in range(50):
        last = source.driver.commit([set_value(b"load/0000000%03d" % i, b"written while paused")])
    time.sleep(2.0)
    assert saved()[:2] == held, "nothing is saved while paused (the rounds go on, idle)"
    resumed = run(fleet, ["fdbbackup", "resume", "-C", cf])
    assert resumed.returncode == 0 and resumed.stdout == "All backup agents have been resumed.\n"
    wait_until("the logs to pass the paused writes", lambda: (store.get(uid).log_end_version or 0) > last)

    # modify: FDB's refusals (backup_error, exit 1), then the changes.
    refusals = {
        ("-s", "4", "--verify-uid", "nope"): (
            f"UID verification failed, backup on tag 'default' is '{uid}' but 'nope' was specified."
        ),
        (): "No changes were specified, nothing to do!",
        ("-t", "other", "-s", "4"): "No backup exists on tag 'other'",
        ("-s", "0"): "snapshot interval must be positive",
    }
    for extra, text in refusals.items():
        res = run(fleet, ["fdbbackup", "modify", "-C", cf, *extra])
        assert res.returncode in (1, 2) and f"ERROR: {text}" in res.stderr, (extra, res.stderr)
    period = store.get(uid).snapshot_seq
    assert period == 2 and store.get(uid).period_seconds == 600
    ok = run(
        fleet, ["fdbbackup", "modify", "-C", cf, "-s", "2", "--verify-uid", uid, "--active-snapshot-interval", "1"]
    )
    assert ok.returncode == 0 and ok.stdout == "", ok.stderr  # FDB prints nothing
    assert "Snapshot interval is 2 seconds." in run(fleet, ["fdbbackup", "status", "-C", cf]).stdout
    # The current period now lasts 1 s: it sends its tasks, ends, and the next lasts 2 s.
    wait_until("the next period", lambda: (j := store.get(uid)).snapshot_seq > period and j.period_seconds == 2)
    # -d: later log files and snapshot periods go to the new container, which becomes restorable on its own.
    assert run(fleet, ["fdbbackup", "modify", "-C", cf, "-d", url2]).returncode == 0
    wait_until("the new container to be restorable", lambda: _restorable(url2), timeout=60)
    done = run(fleet, ["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
    late = run(fleet, ["fdbbackup", "modify", "-C", cf, "-s", "5"])
    assert late.returncode == 1 and "Backup on tag 'default' is not runnable." in late.stderr

    # The first container holds everything up to the switch, the writes made while paused included.
    dest = embedded_cluster_factory(name="dest")
    k = ["-k", " ".join(RANGE)]
    dry = run(fleet, ["fdbrestore", "start", "-r", url2, "-C", str(dest.cluster_file), "-n", *k])
    assert dry.returncode == 0 and dry.stdout.startswith("Backup can be used to restore to version "), dry.stderr
    res = run(
        fleet, ["fdbrestore", "start", "-r", f"file://{backup_folder(base1)}", "-C", str(dest.cluster_file), "-w", *k]
    )
    assert res.returncode == 0, res.stdout + res.stderr
    version = int(res.stdout.split()[-1])
    assert version >= last
    lo, hi = RANGE[0].encode().hex(), RANGE[1].encode().hex()
    assert same_data(checksum(dest), checksum(source, version, lo, hi)) and checksum(dest)["keys"] > 0


def test_incremental_backup_restores_its_logs_onto_an_earlier_copy(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source, dest = _source(embedded_cluster_factory), _source(embedded_cluster_factory, "dest")
    assert same_data(checksum(source), checksum(dest))  # the same data: dest is the copy the logs go onto
    fleet.start_worker(concurrency=2)
    cf, base = str(source.cluster_file), tmp_path / "inc"
    assert run(fleet, ["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--incremental", "-z"]).returncode == 0
    assert run(fleet, ["fdbbackup", "status", "-C", cf, "-w"]).returncode == 0
    assert start_workload(source.cluster_file, keys=1500, rate=300, duration=3).wait(60) == 0
    done = run(fleet, ["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
    url = f"file://{backup_folder(base)}"
    desc = Catalog(open_container(url)).describe()
    assert desc.snapshots == [] and desc.min_log_begin is not None and desc.contiguous_log_end is not None
    args = ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file)]
    for bad, text in (
        (["--incremental", "--mode", "bulkload"], "cannot be used with --mode bulkload"),
        (["--begin-version", "5"], "--begin-version applies only to an --incremental restore"),
        (["--incremental", "--inconsistent-snapshot-only"], "cannot be used with --inconsistent-snapshot-only"),
    ):
        res = run(fleet, [*args, *bad])
        assert res.returncode == 2 and text in res.stderr and "invalid_option_value, 2006" in res.stderr
    # Without a snapshot, only an incremental restore can use it; onto the copy it is exact.
    plain = run(fleet, [*args, "-n"])
    assert plain.returncode == 6 and "no restorable range-file snapshot" in plain.stderr
    assert restore_exactly(fleet, url, source, dest, "--incremental") == desc.contiguous_log_end - 1


def test_cleanup_finds_and_removes_the_log_retention_of_a_dead_backup(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    source = _source(embedded_cluster_factory)
    fleet.start_worker(concurrency=2)
    cf = str(source.cluster_file)
    assert (
        run(fleet, ["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/b", "-z", "-t", "dead"]).returncode == 0
    )
    assert run(fleet, ["fdbbackup", "status", "-C", cf, "-t", "dead", "-w"]).returncode == 0
    report = run(fleet, ["fdbbackup", "cleanup", "-C", cf]).stdout
    assert re.match(r"Found a Backup that is 0\.00\d\d hours behind\.\n", report), report
    assert re.search(r"Passing `--delete-data' would not delete the tag that is 0\.00\d\d hours behind\.", report)
    kept = run(fleet, ["fdbbackup", "cleanup", "-C", cf, "--delete-data"]).stdout
    assert "WARNING: Did not delete data because the tag is not at least 1.0000 hours behind." in kept
    assert source.driver.status().captures, "a live backup's retention stays"

    fleet.kill_all()  # the agents die: the backup's mutations pile up in the cluster
    time.sleep(1.5)
    args = ["fdbbackup", "cleanup", "-C", cf, "--min-cleanup-seconds", "1"]
    assert re.search(r"Passing `--delete-data' would delete the tag that is 0\.00\d\d hours", run(fleet, args).stdout)
    removed = run(fleet, [*args, "--delete-data"])
    assert removed.returncode == 0 and re.search(
        r"Successfully removed the tag that was 0\.00\d\d hours", removed.stdout
    )
    assert source.driver.status().captures == []
    status = run(fleet, ["fdbbackup", "status", "-C", cf, "-t", "dead"]).stdout
    assert "has errored." in status and "fdbbackup cleanup removed its mutation logs" in status
    dead = run(fleet, ["fdbbackup", "modify", "-C", cf, "-t", "dead", "-s", "5"])
    assert dead.returncode == 1 and "Backup on tag 'dead' is not runnable." in dead.stderr

    # Retention no backup record knows (its job state is gone) is an unknown tag.
    source.driver.start_log_capture("ab" * 16 + ".0", [USER_KEYS])
    unknown = run(fleet, ["fdbbackup", "cleanup", "-C", cf, "--delete-data", "--min-cleanup-seconds", "0"]).stdout
    assert unknown.startswith("WARNING: Found an unknown tag that is ") and "Successfully removed" in unknown
    assert source.driver.status().captures == []

    # An aborted backup cannot be modified.
    assert run(fleet, ["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/c", "-t", "gone"]).returncode == 0
    assert run(fleet, ["fdbbackup", "abort", "-C", cf, "-t", "gone"]).returncode == 0
    gone = run(fleet, ["fdbbackup", "modify", "-C", cf, "-t", "gone", "-s", "5"])
    assert gone.returncode == 1 and "Cannot modify aborted backup on tag 'gone' (backup_error, 2300)" in gone.stderr


def test_modify_query_and_restore_an_encrypted_continuous_backup(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    """``modify --encryption-key-file`` moves where agents find the key (the same key only), ``modify -d``
    starts the new container encrypted alike, and ``query`` reads an encrypted backup with its key."""
    source = _source(embedded_cluster_factory)
    fleet.start_worker(concurrency=2)
    cf = str(source.cluster_file)
    key, moved, other = tmp_path / "key", tmp_path / "moved.key", tmp_path / "other.key"
    key.write_bytes(os.urandom(32))
    moved.write_bytes(key.read_bytes())
    other.write_bytes(os.urandom(32))
    url2 = f"file://{tmp_path}/two"
    start = ["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/one", "-z", "-s", "600"]
    assert run(fleet, [*start, "--encryption-key-file", str(key)]).returncode == 0
    assert run(fleet, ["fdbbackup", "status", "-C", cf, "-w"]).returncode == 0  # restorable
    store: JobStore[BackupJob] = state_store(fleet, "backup")
    job = store.job_for_tag("default")
    assert job is not None

    wrong = run(fleet, ["fdbbackup", "modify", "-C", cf, "--encryption-key-file", str(other)])
    assert wrong.returncode == 2 and "holds a different key" in wrong.stderr, wrong.stderr
    assert "invalid_encryption_key_file, 2383" in wrong.stderr
    assert store.get(job.uid).encryption == job.encryption
    ok = run(fleet, ["fdbbackup", "modify", "-C", cf, "--encryption-key-file", str(moved)])
    assert ok.returncode == 0, ok.stderr
    assert store.get(job.uid).encryption_key_file == str(moved)
    # The current period ends now and later ones, 2 s each, go to the new container.
    change = ["-d", url2, "-s", "2", "--active-snapshot-interval", "1"]
    assert run(fleet, ["fdbbackup", "modify", "-C", cf, *change]).returncode == 0
    wait_until("the new container to be restorable", lambda: _restorable(url2, str(key)), timeout=60)

    query = ["fdbbackup", "query", "-d", url2]
    locked = run(fleet, query)
    assert locked.returncode == 1 and json.loads(locked.stdout)["error_name"] == "restore_error"
    doc = json.loads(run(fleet, [*query, "--encryption-key-file", str(key)]).stdout)
    assert "error" not in doc and doc["restore_version"] > 0 and doc["total_range_files_size"] > 0
    done = run(fleet, ["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
    dest = embedded_cluster_factory(name="dest")
    restore_exactly(fleet, url2, source, dest, "--encryption-key-file", str(key))

    # A plain backup has no key to move.
    assert (
        run(fleet, ["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/p", "-z", "-t", "plain"]).returncode == 0
    )
    plain = run(fleet, ["fdbbackup", "modify", "-C", cf, "-t", "plain", "--encryption-key-file", str(key)])
    assert plain.returncode == 1 and "is not encrypted; remove --encryption-key-file" in plain.stderr, plain.stderr
    assert run(fleet, ["fdbbackup", "abort", "-C", cf, "-t", "plain"]).returncode == 0
