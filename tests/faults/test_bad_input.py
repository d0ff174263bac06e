"""Bad input: a clear message with FDB's error name and code, a non-zero exit code, nothing changed.

Every row runs the real CLI against a real backup (on file:// and, for the S3 rows, the same backup
in a bucket) and real clusters, with no agent running: a request that got through would be
submitted, not refused. After each row the backups' files, the destination's keys and the job
records are what they were. Rows already covered elsewhere are listed in docs/faults.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fdbcore.catalog import Catalog
from fdbcore.container import open_container
from fdbcore.keys import KeyRange
from fdbcore.modes import SnapshotKind
from tests.faults.helpers import container_fingerprint, file_fingerprint, make_backup, source_cluster, state_store
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.fixtures.s3 import S3Endpoint, S3FaultProxy
from tests.support.backups import read_all


@dataclass(frozen=True)
class World:
    source: EmbeddedCluster
    url: str  # file:// backup
    s3_bucket: str  # the same backup as ``s3://<bucket>/data/copy/``
    lo: int
    hi: int
    empty: EmbeddedCluster  # a destination with no keys
    full: EmbeddedCluster  # a destination with keys
    stopped: EmbeddedCluster  # a destination whose server is down
    root: Path


@pytest.fixture(scope="module")
def world(
    module_cluster_factory: Callable[..., EmbeddedCluster],
    module_fleet: Fleet,
    module_dir: Path,
    s3_endpoint: S3Endpoint,
) -> Iterator[World]:
    source = source_cluster(module_cluster_factory)
    module_fleet.start_worker(concurrency=2)
    url = make_backup(module_fleet, source, f"file://{module_dir}/backups", workload_seconds=1)
    module_fleet.stop()
    lo, hi = Catalog(open_container(url)).describe().restorable_range(SnapshotKind.RANGEFILE)  # type: ignore[misc]
    bucket = f"bad-input-{uuid.uuid4().hex[:12]}"
    s3 = s3_endpoint.client()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="backups/copy", Body=b"")
    folder = Path(url[len("file://") :])
    for f in folder.rglob("*"):
        if f.is_file():
            s3.put_object(Bucket=bucket, Key=f"data/copy/{f.relative_to(folder)}", Body=f.read_bytes())
    full = module_cluster_factory("full")
    full.cli("load", "--keys", "10", "--value-size", "10")
    stopped = module_cluster_factory("stopped")
    stopped.stop()
    yield World(source, url, bucket, lo, hi, module_cluster_factory("empty"), full, stopped, module_dir)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


@dataclass(frozen=True)
class Row:
    args: list[str]
    code: int
    texts: tuple[str, ...]
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class Ctx:
    w: World
    s3: S3Endpoint
    proxy: S3FaultProxy
    tmp: Path

    @property
    def empty(self) -> str:
        return str(self.w.empty.cluster_file)

    @property
    def cf(self) -> str:
        return str(self.w.source.cluster_file)

    @property
    def s3_url(self) -> str:
        return self.s3.url(self.w.s3_bucket, "copy")

    @property
    def no_creds(self) -> dict[str, str]:
        return {"FDB_BLOB_CREDENTIALS": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": str(self.tmp)}


RESTORE = ["fdbrestore", "start", "-r"]


def _key(c: Ctx) -> list[str]:
    path = c.tmp / "backup.key"
    path.write_bytes(os.urandom(32))
    return ["--encryption-key-file", str(path)]


def _garbled(c: Ctx) -> dict[str, str]:
    path = c.tmp / "garbled.json"
    path.write_text("{not json")
    return {**c.no_creds, "FDB_BLOB_CREDENTIALS": str(path)}


#: Every refused request: what to run, the exit code, and texts the error must contain.
ROWS: dict[str, Callable[[Ctx], Row]] = {
    # URLs
    "restore-url-unknown-scheme": lambda c: Row(
        [*RESTORE, "ftp://host/b", "-C", c.empty], 2, ("backup_invalid_url, 2314",)
    ),
    "restore-url-relative-path": lambda c: Row([*RESTORE, "file://relative/b", "-C", c.empty], 2, ("2314",)),
    "restore-url-no-bucket": lambda c: Row(
        [*RESTORE, "blobstore://@127.0.0.1/b", "-C", c.empty], 2, ("bucket_not_in_url, 2322",)
    ),
    "restore-url-unknown-parameter": lambda c: Row(
        [*RESTORE, c.s3_url + "&colour=blue", "-C", c.empty], 2, ("backup_invalid_url, 2314", "colour")
    ),
    "backup-url-unknown-scheme": lambda c: Row(["fdbbackup", "start", "-C", c.cf, "-d", "ftp://host/b"], 2, ("2314",)),
    "backup-url-unknown-parameter": lambda c: Row(
        ["fdbbackup", "start", "-C", c.cf, "-d", c.s3.url(c.w.s3_bucket, "new") + "&colour=blue"], 2, ("2314", "colour")
    ),
    # buckets, backups and credentials
    "restore-missing-bucket": lambda c: Row(
        [*RESTORE, c.s3.url(f"no-such-{uuid.uuid4().hex[:8]}", "copy"), "-C", c.empty],
        4,
        ("backup_does_not_exist, 2319", "bucket does not exist"),
    ),
    "restore-nonexistent-backup": lambda c: Row([*RESTORE, f"file://{c.w.root}/none", "-C", c.empty], 4, ("2319",)),
    "restore-nonexistent-backup-s3": lambda c: Row(
        [*RESTORE, c.s3.url(c.w.s3_bucket, "none"), "-C", c.empty], 4, ("2319",)
    ),
    "restore-missing-credentials": lambda c: Row(
        [*RESTORE, c.s3_url, "-C", c.empty], 8, ("backup_auth_missing, 2317",), c.no_creds
    ),
    "backup-missing-credentials": lambda c: Row(
        ["fdbbackup", "start", "-C", c.cf, "-d", c.s3.url(c.w.s3_bucket, "new")], 8, ("2317",), c.no_creds
    ),
    "restore-unreadable-credentials": lambda c: Row(
        [*RESTORE, c.s3_url, "-C", c.empty], 8, ("backup_auth_unreadable, 2318",), _garbled(c)
    ),
    "restore-bad-credentials": lambda c: Row(
        [*RESTORE, c.proxy.url(c.w.s3_bucket, "copy", secret_in_url=False), "-C", c.empty],
        8,
        ("backup_auth_unreadable, 2318", "InvalidAccessKeyId"),
    ),
    # modes
    "backup-mode-unknown": lambda c: Row(
        ["fdbbackup", "start", "-C", c.cf, "-d", c.w.url, "--mode", "fast"], 2, ("invalid_option_value, 2006", "fast")
    ),
    "restore-mode-unknown": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "--mode", "fast"], 2, ("invalid_option_value, 2006", "fast")
    ),
    "restore-mode-backup-word": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "--mode", "bulkdump"],
        2,
        ("invalid_option_value, 2006", "A BulkDump snapshot is restored with --mode bulkload"),
    ),
    # versions
    "restore-version-below-range": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "-v", str(c.w.lo - 1)],
        2,
        ("restore_invalid_version, 2361", f"{c.w.lo} through {c.w.hi}"),
    ),
    "restore-version-above-range": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "-v", str(c.w.hi + 1)], 2, ("2361",)
    ),
    # clusters
    "restore-destination-unreachable": lambda c: Row(
        [*RESTORE, c.w.url, "-C", str(c.w.stopped.cluster_file)], 7, ("connection_failed, 1026",)
    ),
    "restore-no-cluster-file": lambda c: Row(
        [*RESTORE, c.w.url, "-C", str(c.tmp / "none.cluster")], 8, ("no_cluster_file_found, 1515",)
    ),
    "restore-destination-not-empty": lambda c: Row(
        [*RESTORE, c.w.url, "-C", str(c.w.full.cluster_file)], 5, ("restore_destination_not_empty, 2370",)
    ),
    # key ranges and prefixes
    "restore-range-reversed": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "-k", "b a"], 2, ("inverted_range, 2005",)
    ),
    "restore-range-empty": lambda c: Row([*RESTORE, c.w.url, "-C", c.empty, "-k", "a a"], 2, ("2005",)),
    "backup-range-empty": lambda c: Row(["fdbbackup", "start", "-C", c.cf, "-d", c.w.url, "-k", "a a"], 2, ("2005",)),
    "restore-remove-prefix-not-held": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "--remove-prefix", "zz/"], 2, ("invalid_option_value, 2006", "zz/")
    ),
    "restore-prefix-into-system-keys": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, "-k", "a b", "--add-prefix", "\\xff\\xff"], 2, ("2004",)
    ),
    # file-level encryption on a plain backup (the encrypted rows are in test_encryption.py)
    "restore-key-for-plain-backup": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.empty, *_key(c)], 1, ("restore_error, 2301", "Backup is not encrypted")
    ),
    "describe-key-for-plain-backup": lambda c: Row(
        ["fdbbackup", "describe", "-d", c.s3_url, *_key(c)], 1, ("restore_error, 2301", "Backup is not encrypted")
    ),
    "backup-encrypted-into-plain-container": lambda c: Row(
        ["fdbbackup", "start", "-C", c.cf, "-d", c.s3_url, *_key(c)],
        1,
        ("backup_error, 2300", "already holds a backup with no encryption"),
    ),
}


def _everything(driver_of: EmbeddedCluster) -> list[tuple[bytes, bytes]]:
    d = driver_of.driver
    return read_all(d, KeyRange(b"", b"\xff\xff"), d.get_read_version())


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_is_refused_by_name_and_changes_nothing(
    name: str,
    world: World,
    s3_endpoint: S3Endpoint,
    s3_fault_proxy: S3FaultProxy,
    fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FDB_BLOB_CREDENTIALS", str(s3_endpoint.write_credentials_file(tmp_path / "creds.json")))
    s3_fault_proxy.require_key("the-only-key-s3-knows")  # the credentials file holds another
    row = ROWS[name](Ctx(world, s3_endpoint, s3_fault_proxy, tmp_path))
    backups = file_fingerprint(world.root / "backups")
    s3_copy = container_fingerprint(s3_endpoint.url(world.s3_bucket, "copy", secret_in_url=True))
    dests = [_everything(c) for c in (world.empty, world.full)]

    res = fleet.run(row.args, env=row.env or {})
    assert res.returncode == row.code, f"exit {res.returncode}, want {row.code}:\n{res.stdout}{res.stderr}"
    last = res.stderr.splitlines()[-1] if res.stderr else ""
    assert last.startswith("ERROR: ") and all(t in last for t in row.texts), res.stderr
    assert "Traceback" not in res.stderr, res.stderr

    assert file_fingerprint(world.root / "backups") == backups
    assert container_fingerprint(s3_endpoint.url(world.s3_bucket, "copy", secret_in_url=True)) == s3_copy
    assert [_everything(c) for c in (world.empty, world.full)] == dests
    assert state_store(fleet, "backup").all_uids() == [] and state_store(fleet, "restore").all_uids() == []
    assert sorted(p.name for p in (world.root / "backups").iterdir()) == [Path(world.url).name]
