"""Checks shared by the backup and restore end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from fdbcore import bulkdump_dataset as ds
from fdbcore.backup_encryption import open_backup
from fdbcore.catalog import Catalog
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.formats.io import ContainerSource
from fdbcore.formats.rangefile import iter_range_file
from fdbcore.formats.sst import read_sst
from fdbcore.keys import KeyRange
from fdbcore.modes import SnapshotKind

REPO = Path(__file__).resolve().parents[2]


def backup_folder(base: Path) -> Path:
    """The one ``backup-<timestamp>`` folder ``fdbbackup start`` made under a file:// base."""
    [folder] = [p for p in base.iterdir() if p.name.startswith("backup-")]
    return folder


def read_all(driver: ClusterDriver, r: KeyRange, version: int) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    begin = r.begin
    while True:
        chunk = driver.get_range(begin, r.end, version, limit_bytes=1 << 20)
        out += chunk.kvs
        if not chunk.more:
            return out
        begin = chunk.kvs[-1][0] + b"\x00"


def check_range_files_match_cluster(
    url: str, driver: ClusterDriver, credentials: Sequence[str] = (), key_file: str | None = None
) -> int:
    """Every range file of the newest range-file snapshot decodes and equals the cluster at its version.

    Returns the number of files checked. The cluster must keep history long enough (a wide MVCC
    window knob) for reads at the files' versions.
    """
    container = open_backup(url, credential_files=credentials, key_file=key_file)
    catalog = Catalog(container)
    [snap] = [s for s in catalog.snapshots() if s.kind == SnapshotKind.RANGEFILE][-1:]
    files = {f.path: f for f in catalog.range_files()}
    for path in snap.manifest.files:  # type: ignore[union-attr]
        ref = files[path]
        kvs: list[tuple[bytes, bytes]] = []
        file_range = None
        for block in iter_range_file(ContainerSource(container, path), ref.block_size):
            kvs += block.kvs
            file_range = block.range if file_range is None else KeyRange(file_range.begin, block.range.end)
        assert file_range == snap.manifest.key_ranges[path]  # type: ignore[union-attr]
        assert kvs == read_all(driver, file_range, ref.version), f"{path} differs from the cluster"
    return len(snap.manifest.files)  # type: ignore[union-attr]


def start_workload(cluster_file: Path, keys: int, rate: int, duration: float) -> subprocess.Popen[str]:
    """``embedded-cluster load`` writing in the background (sets, clears, clear ranges, adds)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.embedded_cluster",
            "load",
            "-C",
            str(cluster_file),
            "--keys",
            str(keys),
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--seed",
            "7",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


class EmbeddedClusterLike(Protocol):
    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def checksum(
    cluster: EmbeddedClusterLike, version: int | None = None, begin: str = "", end: str = "ff"
) -> dict[str, int]:
    """``embedded-cluster checksum`` as a dict (keys, bytes, sha256, version)."""
    args = ["checksum", "--begin", begin, "--end", end]
    if version is not None:
        args += ["--version", str(version)]
    return json.loads(cluster.cli(*args).stdout.splitlines()[-1])


def same_data(a: dict[str, int], b: dict[str, int]) -> bool:
    return (a["keys"], a["bytes"], a["sha256"]) == (b["keys"], b["bytes"], b["sha256"])


def check_bulkdump_matches_cluster(
    url: str, driver: ClusterDriver, tmp: Path, credentials: Sequence[str] = (), key_file: str | None = None
) -> int:
    """Every batch of the newest BulkDump dataset equals the cluster over its range at its own version.

    Returns the number of batches; the cluster must keep history back to the batches' versions.
    """
    container = open_backup(url, credential_files=credentials, key_file=key_file)
    [snap] = [s for s in Catalog(container).snapshots() if s.kind == SnapshotKind.BULKDUMP][-1:]
    entries = ds.read_job_manifest(container, snap.manifest.job_id)  # type: ignore[union-attr]
    for e in entries:
        batch = ds.verify_entry(container, e)
        want = read_all(driver, e.range, e.version)
        if not batch.data_path:
            assert want == [], f"batch {e.manifest_relative_path} claims no keys in {e.range}"
            continue
        local = tmp / "batch.sst"
        container.download_file(batch.data_path, str(local))
        assert list(read_sst(local)) == want, f"batch {e.manifest_relative_path} differs at version {e.version}"
    return len(entries)
