"""Corruption: one flipped byte, a truncation or a deletion in any file a restore reads is detected
before the destination changes, with a named error, and the damaged backup is left as it was.

One backup (mode ``both``, taken under a workload so its logs hold mutations) per module; each test
damages its own copy of it, restores into an empty destination, and checks: exit code, FDB error name
and code, the destination empty and unlocked, and every file of the copy exactly as before the restore.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fdbcore import bulkdump_dataset as ds
from fdbcore import naming
from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.modes import SnapshotKind
from tests.faults.helpers import (
    BULKLOAD_KNOBS,
    file_fingerprint,
    make_backup,
    restore,
    restore_exactly,
    source_cluster,
    worker_logs,
)
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import checksum

#: (file kind, restore mode that reads it, error every damage must give, except where DAMAGE_ERRORS says).
KINDS = {
    "sst": ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
    "batch_manifest": ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
    "job_manifest": ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
    "bulk_snapshot_manifest": ("bulkload", "restore_corrupted_data, 2362"),
    "range_file": ("rangefile", "restore_corrupted_data, 2362"),
    "range_snapshot_manifest": ("rangefile", "restore_corrupted_data, 2362"),
    "log_file": ("rangefile", "restore_corrupted_data, 2362"),
    "log_checksum": ("bulkload", "restore_corrupted_data, 2362"),
    "log_checksums_property": ("rangefile", "restore_corrupted_data, 2362"),
}
#: Where a damage gives another error than its kind's.
DAMAGE_ERRORS = {
    ("range_file", "delete"): "restore_missing_data, 2363",
    ("log_file", "delete"): "restore_missing_data, 2363",
    # A manifest that is no longer JSON: FDB's error for that (it cannot tell corruption from a wrong key).
    ("bulk_snapshot_manifest", "truncate"): "restore_error, 2301",
    ("range_snapshot_manifest", "truncate"): "restore_error, 2301",
    # Without its manifest the snapshot does not exist; the backup has no other of that kind.
    ("bulk_snapshot_manifest", "delete"): "restore_bulkload_dataset_incomplete, 2390",
    ("range_snapshot_manifest", "delete"): "restore_missing_data, 2363",
}
DAMAGES = ("flip", "truncate", "delete")


@dataclass(frozen=True)
class World:
    source: EmbeddedCluster
    folder: Path
    fleet: Fleet
    clusters: Callable[..., EmbeddedCluster]


@pytest.fixture(scope="module")
def world(module_cluster_factory: Callable[..., EmbeddedCluster], module_fleet: Fleet) -> Iterator[World]:
    source = source_cluster(module_cluster_factory)
    module_fleet.start_worker(concurrency=2)  # it stays up for the module's restores
    url = make_backup(module_fleet, source, f"file://{module_fleet.workdir}/backups", workload_seconds=2)
    yield World(source, Path(url[len("file://") :]), module_fleet, module_cluster_factory)


def victim(url: str, kind: str) -> str:
    """The container path of one file of ``kind`` in the backup (one with content, where that matters)."""
    container = open_container(url)
    catalog = Catalog(container)
    snaps = {s.kind: s for s in catalog.snapshots()}
    if kind == "log_checksums_property":
        return naming.property_path(naming.LOG_CHECKSUMS)
    if kind.endswith("snapshot_manifest"):
        return snaps[SnapshotKind.BULKDUMP if kind.startswith("bulk") else SnapshotKind.RANGEFILE].path
    if kind == "range_file":
        return max(catalog.range_files(), key=lambda f: f.size).path
    if kind in ("log_file", "log_checksum"):
        log = max(catalog.log_files(), key=lambda f: f.size).path
        return log if kind == "log_file" else naming.log_checksum_path(log)
    job_id = snaps[SnapshotKind.BULKDUMP].manifest.job_id  # type: ignore[union-attr]
    if kind == "job_manifest":
        return ds.job_manifest_path(job_id)
    batches = (ds.verify_entry(container, e) for e in ds.read_job_manifest(container, job_id))
    batch = next(b for b in batches if b.data_path)
    return batch.data_path if kind == "sst" else ds.in_root(batch.entry.manifest_relative_path)


def damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    assert len(data) > 2, f"{path} is too small to damage meaningfully"
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[-(len(data) // 3) :]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_damage_is_named_before_the_destination_changes(world: World, kind: str, how: str, tmp_path: Path) -> None:
    copy = tmp_path / "backup"
    shutil.copytree(world.folder, copy)
    url = f"file://{copy}"
    path = victim(url, kind)
    damage(copy / path, how)
    before = file_fingerprint(copy)
    mode, error = KINDS[kind]
    dest = world.clusters(f"dest-{kind}-{how}".replace("_", "-"), **BULKLOAD_KNOBS)
    code, out, err = restore(world.fleet, url, dest, "--mode", mode, "-t", f"{kind}-{how}".replace("_", "-"))
    logs = worker_logs(world.fleet)
    assert code != 0, f"a restore from a backup with {kind} {path} damaged ({how}) succeeded:\n{out}"
    expected = DAMAGE_ERRORS.get((kind, how), error)
    assert expected in err, f"{kind} {how}: expected {expected}, got:\n{out}\n{err}\n{logs}"
    assert code == (1 if "restore_error" in expected else 6), f"exit code {code} for {expected}"
    assert checksum(dest)["keys"] == 0, "the destination changed before the damage was found"
    assert json.loads(dest.cli("status", "--json").stdout)["locks"] == [], "the restore left its range lock"
    assert file_fingerprint(copy) == before, "the refused restore changed the backup"


def test_undamaged_copy_restores_exactly_in_both_modes(world: World, tmp_path: Path) -> None:
    """The control: the same copy, undamaged, restores exactly (so the refusals above are the damage's)."""
    copy = tmp_path / "backup"
    shutil.copytree(world.folder, copy)
    for mode in ("rangefile", "bulkload"):
        dest = world.clusters(f"control-{mode}", **BULKLOAD_KNOBS)
        restore_exactly(world.fleet, f"file://{copy}", world.source, dest, "--mode", mode, "-t", mode)
