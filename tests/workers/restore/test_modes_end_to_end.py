"""Issues 4 and 5 end to end: every backup mode, on file:// and S3, under a live workload; then every
allowed restore mode to (a) the snapshot's end, (b) the middle of the logs, (c) the newest version.

One shard's BulkDump is stalled while the workload runs, so atomic adds land between the per-shard
batch versions: a restore that replayed from one snapshot version would apply them twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.modes import SnapshotKind
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.fixtures.s3 import S3Endpoint
from tests.support.backups import (
    backup_folder,
    check_bulkdump_matches_cluster,
    check_range_files_match_cluster,
    checksum,
    same_data,
    start_workload,
)

WIDE_MVCC = 600_000_000
BULKLOAD_KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}
RESTORE_MODES = {"rangefile": ["rangefile"], "bulkdump": ["bulkload"], "both": ["bulkload", "rangefile"]}


@dataclass
class Storage:
    kind: str
    base_url: str
    env: dict[str, str] = field(default_factory=dict)
    credentials: list[Path] = field(default_factory=list)

    def backup_url(self, tmp: Path, started: str) -> str:
        return f"file://{backup_folder(Path(self.base_url[len('file://') :]))}" if self.kind == "file" else started


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return Storage("file", f"file://{tmp_path}/backups")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    creds = endpoint.write_credentials_file(tmp_path / "blob-credentials.json")
    return Storage("s3", endpoint.url(bucket, "e2e"), endpoint.env(creds), [creds])


@pytest.mark.parametrize("mode", ["rangefile", "bulkdump", "both"])
def test_backup_and_restore_modes(
    mode: str,
    storage: Storage,
    embedded_cluster_factory: Callable[..., EmbeddedCluster],
    fleet: Fleet,
    tmp_path: Path,
) -> None:
    fleet.extra_env.update(storage.env)
    source = embedded_cluster_factory(
        name="source",
        blob_credentials=storage.credentials,
        max_read_transaction_life_versions=WIDE_MVCC,
        shard_count=4,
        bulkdump_batch_bytes=64 << 10,
        enable_fault_injection=1,
    )
    source.cli("load", "--keys", "4000", "--value-size", "100")
    if mode != "rangefile":  # one shard dumps 1.5 s after the others, while adds keep landing
        source.driver.inject_fault("bulk_dump", source.driver.shard_map()[1].range, "stall", stall_seconds=1.5)
    fleet.start_worker(concurrency=3)
    workload = start_workload(source.cluster_file, keys=4000, rate=400, duration=4)
    cf = str(source.cluster_file)
    started = fleet.run(["fdbbackup", "start", "-C", cf, "-d", storage.base_url, "--mode", mode, "-z"])
    assert started.returncode == 0, started.stderr
    assert workload.wait(60) == 0
    done = fleet.run(["fdbbackup", "discontinue", "-C", cf, "-w"], timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr + fleet.log(fleet.workers[0])[-3000:]

    url = storage.backup_url(tmp_path, storage.base_url)
    creds = [str(c) for c in storage.credentials]
    container = open_container(url, credential_files=creds)
    desc = Catalog(container).describe()
    kinds = {s.kind.value for s in desc.snapshots}
    assert kinds == ({"rangefile", "bulkdump"} if mode == "both" else {mode})
    if mode in ("rangefile", "both"):
        assert check_range_files_match_cluster(url, source.driver, creds) >= 4
    if mode in ("bulkdump", "both"):
        assert check_bulkdump_matches_cluster(url, source.driver, tmp_path, creds) >= 4
        versions = {e.version for e in _entries(url, storage)}
        assert len(versions) > 1, "batches must be read at their own versions"
    status = fleet.run(["fdbbackup", "status", "-C", cf])
    assert f"Snapshot Mode: {mode}" in status.stdout
    if mode != "rangefile":
        assert "BulkLoad Compatible: yes" in status.stdout

    for restore_mode in RESTORE_MODES[mode]:
        kind = SnapshotKind.BULKDUMP if restore_mode == "bulkload" else SnapshotKind.RANGEFILE
        lo, hi = desc.restorable_range(kind)  # type: ignore[misc]
        targets = {"end": lo, "middle": (lo + hi) // 2, "latest": None}
        for name, target in targets.items():
            dest = embedded_cluster_factory(
                name=f"dest-{restore_mode}-{name}", blob_credentials=storage.credentials, **BULKLOAD_KNOBS
            )
            args = ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", restore_mode, "-w"]
            args += ["-t", f"{restore_mode}-{name}"] + ([] if target is None else ["-v", str(target)])
            res = fleet.run(args, timeout=240)
            assert res.returncode == 0, f"{restore_mode}/{name}: {res.stdout}\n{res.stderr}"
            version = target if target is not None else hi
            assert f"Restored to version {version}" in res.stdout
            want, got = checksum(source, version), checksum(dest)
            assert same_data(want, got), f"{mode} -> {restore_mode} at {name} ({version}): {want} != {got}"

    if mode == "bulkdump":  # a range-file restore never picks a BulkDump-only snapshot
        dest = embedded_cluster_factory(name="dest-refused", blob_credentials=storage.credentials)
        res = fleet.run(["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", "rangefile"])
        assert res.returncode == 6 and "restore_missing_data, 2363" in res.stderr
        assert checksum(dest)["keys"] == 0


def _entries(url: str, storage: Storage) -> list:  # type: ignore[type-arg]
    from fdbcore import bulkdump_dataset as ds

    container = open_container(url, credential_files=[str(c) for c in storage.credentials])
    [snap] = [s for s in Catalog(container).snapshots() if s.kind == SnapshotKind.BULKDUMP][-1:]
    return ds.read_job_manifest(container, snap.manifest.job_id)  # type: ignore[union-attr]
