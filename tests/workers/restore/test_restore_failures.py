"""Restore failure policy: every failure is named, and nothing touches the destination before verify."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fdbcore import bulkdump_dataset as ds
from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import USER_KEYS, KeyRange
from fdbcore.modes import SnapshotKind
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import backup_folder, checksum, read_all, same_data

BULKLOAD_KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}
WIDE_MVCC = 600_000_000


@pytest.fixture
def backup(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> tuple[EmbeddedCluster, str]:
    """A completed mode-both backup of a small dataset, and a running worker."""
    source = embedded_cluster_factory(name="source", shard_count=4, max_read_transaction_life_versions=WIDE_MVCC)
    source.cli("load", "--keys", "2000", "--value-size", "50")
    fleet.start_worker()
    res = fleet.run(
        ["fdbbackup", "start", "-C", str(source.cluster_file), "-d", f"file://{tmp_path}/b", "--mode", "both", "-w"]
    )
    assert res.returncode == 0, res.stderr
    return source, f"file://{backup_folder(tmp_path / 'b')}"


def _restore(fleet: Fleet, url: str, dest: EmbeddedCluster, *extra: str) -> tuple[int, str, str]:
    res = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "-w", *extra], timeout=180)
    return res.returncode, res.stdout, res.stderr


def _batches(url: str) -> list[ds.VerifiedBatch]:
    container = open_container(url)
    [snap] = [s for s in Catalog(container).snapshots() if s.kind == SnapshotKind.BULKDUMP]
    return [ds.verify_entry(container, e) for e in ds.read_job_manifest(container, snap.manifest.job_id)]  # type: ignore[union-attr]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_sst", "delete_manifest", "delete_job_manifest"])
def test_damaged_dataset_is_refused_before_the_destination_changes(
    damage: str,
    backup: tuple[EmbeddedCluster, str],
    embedded_cluster_factory: Callable[..., EmbeddedCluster],
    fleet: Fleet,
) -> None:
    _, url = backup
    container = open_container(url)
    victim = next(b for b in _batches(url) if b.data_path)
    if damage == "flip":
        data = bytearray(container.read(victim.data_path))
        data[len(data) // 3] ^= 0x40
        container.write(victim.data_path, bytes(data))
    elif damage == "truncate":
        container.write(victim.data_path, container.read(victim.data_path)[:-7])
    elif damage == "delete_sst":
        container.delete(victim.data_path)
    elif damage == "delete_manifest":
        container.delete(ds.in_root(victim.entry.manifest_relative_path))
    else:
        container.delete(ds.job_manifest_path(victim.manifest.relative_path.split("/")[0]))
    dest = embedded_cluster_factory(name="dest", **BULKLOAD_KNOBS)
    code, _, err = _restore(fleet, url, dest, "--mode", "bulkload")
    assert code == 6, err
    assert (
        "restore_bulkload_dataset_incomplete, 2390" in err
        and "BulkDump dataset incomplete. Use --mode rangefile" in err
    )
    assert checksum(dest)["keys"] == 0  # untouched
    ok, _, err = _restore(fleet, url, dest, "--mode", "rangefile", "-t", "fallback")
    assert ok == 0, err  # the range files are the fallback


def test_bulkload_knobs_off_is_a_configuration_error(
    backup: tuple[EmbeddedCluster, str], embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet
) -> None:
    _, url = backup
    dest = embedded_cluster_factory(name="dest", enable_read_lock_on_range=1)
    code, _, err = _restore(fleet, url, dest, "--mode", "bulkload")
    assert code == 8, err
    assert "bulkload_invalid_configuration, 1250" in err and "--knob_shard_encode_location_metadata=1" in err
    assert checksum(dest)["keys"] == 0


def test_bulkload_failures_retry_then_name_the_shard(
    backup: tuple[EmbeddedCluster, str], embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet
) -> None:
    source, url = backup
    transient = embedded_cluster_factory(name="transient", enable_fault_injection=1, **BULKLOAD_KNOBS)
    transient.driver.inject_fault("bulk_load", USER_KEYS, "fail", times=1)
    code, out, err = _restore(fleet, url, transient, "--mode", "bulkload")
    assert code == 0, err
    version = int(out.strip().splitlines()[-1].split()[-1])
    assert same_data(checksum(source, version), checksum(transient))

    broken = embedded_cluster_factory(name="broken", enable_fault_injection=1, **BULKLOAD_KNOBS)
    broken.driver.inject_fault("bulk_load", USER_KEYS, "fail", times=1000)
    code, out, err = _restore(fleet, url, broken, "--mode", "bulkload", "-t", "broken")
    assert code == 1, out + err
    assert "restore_bulkload_failed, 2391" in err and "BulkLoad of shard" in err
    status = fleet.run(["fdbrestore", "status", "-t", "broken"]).stdout
    assert "State: aborted" in status and "2391" in status
    assert checksum(broken)["keys"] == 0, "every BulkLoad failed, yet keys arrived"
    assert json.loads(broken.cli("status", "--json").stdout)["locks"] == [], "the aborted restore kept its lock"


def test_key_ranges_prefixes_and_timestamp(
    backup: tuple[EmbeddedCluster, str], embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet
) -> None:
    source, url = backup
    desc = Catalog(open_container(url)).describe()
    _, hi = desc.restorable_range(SnapshotKind.BULKDUMP)  # type: ignore[misc]
    keys = [k for k, _ in read_all(source.driver, USER_KEYS, hi)]
    part = KeyRange(keys[100], keys[700])
    for mode in ("bulkload", "rangefile"):
        dest = embedded_cluster_factory(name=f"dest-{mode}", **BULKLOAD_KNOBS)
        k = f"{part.begin.decode('latin-1')} {part.end.decode('latin-1')}"
        code, _, err = _restore(fleet, url, dest, "--mode", mode, "-k", k, "--add-prefix", "copy/", "-t", mode)
        assert code == 0, err
        got = read_all(dest.driver, USER_KEYS, dest.driver.get_read_version())
        want = [(b"copy/" + key, v) for key, v in read_all(source.driver, part, hi)]
        assert got == want and len(got) == 600
    stamp = source.driver.time_at_version(hi)
    assert stamp is not None
    ts = time.strftime("%Y/%m/%d.%H:%M:%S%z", time.localtime(stamp))
    resolved = source.driver.version_at_time(float(stamp))
    dest = embedded_cluster_factory(name="dest-ts", **BULKLOAD_KNOBS)
    res = fleet.run(
        [
            "fdbrestore",
            "start",
            "-r",
            url,
            "-C",
            str(dest.cluster_file),
            "--timestamp",
            ts,
            "--orig-cluster-file",
            str(source.cluster_file),
            "-n",
        ]
    )
    assert f"Timestamp '{ts}' resolves to version {resolved}" in res.stdout
    rf_lo, rf_hi = desc.restorable_range(SnapshotKind.RANGEFILE)  # type: ignore[misc]  # the mode -n checks
    if rf_lo <= resolved <= rf_hi:  # the timekeeper keeps about one entry per second
        assert res.returncode == 0 and f"Backup can be used to restore to version {resolved}" in res.stdout
    else:
        assert res.returncode == 2 and f"Insufficient data to restore to version {resolved}." in res.stderr
    bad = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--add-prefix", "\\xff"])
    assert bad.returncode == 2 and "key_outside_legal_range, 2004" in bad.stderr
