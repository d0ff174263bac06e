"""What the fault tests share: sources with history, exact-restore checks, container fingerprints."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import USER_KEYS
from fdbcore.modes import RestoreMode
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.fixtures.s3 import S3Endpoint, S3FaultProxy
from tests.support.backups import backup_folder, checksum, same_data, start_workload
from workers.backup.job import BackupJob, BackupView, view
from workers.restore.job import RestoreJob
from workers.state import JobStore

#: MVCC window of every source: wide enough to checksum the source at any restored version.
WIDE_MVCC = 600_000_000
#: What a BulkLoad destination needs.
BULKLOAD_KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}


def source_cluster(factory: Callable[..., EmbeddedCluster], keys: int = 2000, **knobs: object) -> EmbeddedCluster:
    """A source with a wide MVCC window, fault hooks on, and ``keys`` keys of 50-byte values."""
    knobs = {"shard_count": 4, "max_read_transaction_life_versions": WIDE_MVCC, "enable_fault_injection": 1, **knobs}
    source = factory(name="source", **knobs)
    source.cli("load", "--keys", str(keys), "--value-size", "50")
    return source


def restored_version(stdout: str) -> int:
    """The version in ``fdbrestore start -w``'s last line, ``Restored to version N``."""
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("Restored to version "), stdout
    return int(last.split()[-1])


def assert_exact(source: EmbeddedCluster, dest: EmbeddedCluster, version: int) -> None:
    """The destination holds exactly the source's user keys at ``version`` (keys, bytes, SHA-256)."""
    want, got = checksum(source, version), checksum(dest)
    assert want["keys"] > 0, "the source is empty at that version; the comparison proves nothing"
    assert same_data(want, got), f"restored data differs from the source at {version}: {want} != {got}"


def restore(fleet: Fleet, url: str, dest: EmbeddedCluster, *extra: str, timeout: float = 240) -> tuple[int, str, str]:
    res = run(fleet, ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "-w", *extra], timeout=timeout)
    return res.returncode, res.stdout, res.stderr


def restore_exactly(
    fleet: Fleet, url: str, source: EmbeddedCluster, dest: EmbeddedCluster, *extra: str, timeout: float = 240
) -> int:
    """Restore with ``fdbrestore start -w``, demand success and an exact copy; returns the version."""
    code, out, err = restore(fleet, url, dest, *extra, timeout=timeout)
    assert code == 0, f"restore failed ({code}):\n{out}\n{err}\n{worker_logs(fleet)}"
    version = restored_version(out)
    assert_exact(source, dest, version)
    return version


def wait_for_exact_restore(fleet: Fleet, source: EmbeddedCluster, dest: EmbeddedCluster, tag: str = "default") -> int:
    """``fdbrestore wait`` for a restore already submitted; it must succeed with an exact copy."""
    done = run(fleet, ["fdbrestore", "wait", "-t", tag])
    assert done.returncode == 0, done.stdout + done.stderr + worker_logs(fleet)
    version = restored_version(done.stdout)
    assert_exact(source, dest, version)
    return version


def run(fleet: Fleet, args: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``fleet.run``, but a CLI that hangs fails the test with the job state and the workers' logs."""
    try:
        return fleet.run(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        status = {kind: fleet.run([cli, "status", "--json"], timeout=30).stdout for kind, cli in CLIS.items()}
        raise AssertionError(f"{' '.join(args)} hung for {timeout} s; status {status}\n{worker_logs(fleet)}") from None


CLIS = {"backup": "fdbbackup", "restore": "fdbrestore"}


def worker_logs(fleet: Fleet, tail: int = 3000) -> str:
    return "\n".join(f"--- {w.name}\n{fleet.log(w)[-tail:]}" for w in fleet.workers)


def file_fingerprint(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its SHA-256 (to prove a refused operation changed nothing)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def container_fingerprint(url: str, credentials: list[str] | None = None) -> dict[str, str]:
    """Every file of a backup container (file:// or S3) and its SHA-256."""
    c = open_container(url, credential_files=credentials or [])
    return {i.path: hashlib.sha256(c.read(i.path)).hexdigest() for i in c.list("")}


#: ``restore.verify`` reads files whole in pieces of this size (``BackupContainer.sha256`` on S3).
VERIFY_CHUNK = 8 << 20


def verify_reads(url: str, creds: Path, bulkload: bool) -> dict[str, int]:
    """How many GETs ``restore.verify`` makes of range files (``kvranges``) and log files (``plogs``)
    in a restore to the newest version; a hold meant for a later phase lets these through first."""
    catalog = Catalog(open_container(url, credential_files=[str(creds)]))
    rs = catalog.restore_set(None, [USER_KEYS], RestoreMode.BULKLOAD if bulkload else RestoreMode.RANGEFILE)
    return {
        "kvranges": sum(-(-f.size // VERIFY_CHUNK) for f in rs.range_files),
        "plogs": sum(-(-f.size // VERIFY_CHUNK) for f in rs.log_files),
    }


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 120, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def state_store(fleet: Fleet, kind: str) -> JobStore[Any]:
    record = BackupJob if kind == "backup" else RestoreJob
    return JobStore(redis.Redis.from_url(f"{fleet.redis_url}/2"), kind, record)


def backup_view(fleet: Fleet, tag: str = "default") -> BackupView | None:
    store: JobStore[BackupJob] = state_store(fleet, "backup")
    job = store.job_for_tag(tag)
    return view(store, job) if job else None


def restore_job(fleet: Fleet, tag: str = "default") -> RestoreJob | None:
    store: JobStore[RestoreJob] = state_store(fleet, "restore")
    return store.job_for_tag(tag)


def fast_redelivery(fleet: Fleet, visibility: int = 6) -> None:
    """A dead worker's unacknowledged tasks come back after ``visibility`` s plus a 1 s sweep."""
    fleet.extra_env.update(
        FDBBR_VISIBILITY_TIMEOUT=str(visibility), FDBBR_REDELIVERY_SWEEP="1", FDBBR_TASK_TIME_LIMIT=str(visibility - 1)
    )


def make_backup(
    fleet: Fleet,
    source: EmbeddedCluster,
    url: str,
    mode: str = "both",
    *,
    workload_seconds: float = 3.0,
    options: Sequence[str] = (),
) -> str:
    """A completed backup of ``source`` taken while a workload writes (so the logs hold sets, clears
    and atomic adds past the snapshot); returns the backup's own URL (file://: its folder).
    ``options`` go to ``fdbbackup start`` (e.g. ``--encryption-key-file``)."""
    cf = str(source.cluster_file)
    started = fleet.run(["fdbbackup", "start", "-C", cf, "-d", url, "--mode", mode, "-z", *options])
    assert started.returncode == 0, started.stderr
    keys = checksum(source)["keys"]
    workload = start_workload(source.cluster_file, keys=keys, rate=300, duration=workload_seconds)
    assert workload.wait(120) == 0, workload.stderr.read() if workload.stderr else ""
    done = run(fleet, ["fdbbackup", "discontinue", "-C", cf, "-w"])
    assert done.returncode == 0 and "has been completed" in done.stdout, done.stdout + done.stderr
    if url.startswith("file://"):
        return f"file://{backup_folder(Path(url[len('file://') :]))}"
    return url


@dataclass
class S3Rig:
    """A test's S3 setup: every request through the fault proxy, one credentials file (its ``@127.0.0.1``
    account serves the proxy and the endpoint alike) for the fleet and the clusters."""

    proxy: S3FaultProxy
    endpoint: S3Endpoint
    bucket: str
    creds: Path
    clusters: Callable[..., EmbeddedCluster]
    fleet: Fleet

    def url(self, name: str, params: str = "", *, bucket: str | None = None) -> str:
        """A backup URL through the proxy, without a secret."""
        return self.proxy.url(bucket or self.bucket, name, params, secret_in_url=False)

    def source(self, keys: int = 2000, **knobs: object) -> EmbeddedCluster:
        return source_cluster(self.clusters, keys, blob_credentials=[self.creds], **knobs)

    def dest(self, name: str = "dest", **knobs: object) -> EmbeddedCluster:
        """A destination ready for BulkLoad, with fault hooks on."""
        knobs = {**BULKLOAD_KNOBS, "enable_fault_injection": 1, **knobs}
        return self.clusters(name=name, blob_credentials=[self.creds], **knobs)
