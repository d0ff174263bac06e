"""Issues 4, 5 and 12 end to end: every backup mode, on file:// and S3, plain and with file-level
encryption, under a live workload; then every allowed restore mode to (a) the snapshot's end, (b) the
middle of the logs, (c) the newest version (the restores of one backup run at the same time).

One shard's BulkDump is stalled while the workload runs, so atomic adds land between the per-shard
batch versions: a restore that replayed from one snapshot version would apply them twice. Encrypted
backups use 16 KiB blocks, so range files, logs and SSTs span many blocks, and hold no plaintext.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from fdbcore import naming
from fdbcore.backup_encryption import open_backup
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
    #: S3: the base URL with the secret written into it, and that secret.
    secret_url: str = ""
    secret: str = ""

    def backup_url(self, tmp: Path, started: str) -> str:
        return f"file://{backup_folder(Path(self.base_url[len('file://') :]))}" if self.kind == "file" else started


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return Storage("file", f"file://{tmp_path}/backups")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    creds = endpoint.write_credentials_file(tmp_path / "blob-credentials.json")
    # Agents and clusters find the secret of a URL that names only the key under "<key>@<host>".
    accounts = json.loads(creds.read_text())["accounts"]
    accounts[f"{endpoint.access_key}@{endpoint.host}"] = {"secret": endpoint.secret_key}
    creds.write_text(json.dumps({"accounts": accounts}))
    secret_url = endpoint.url(bucket, "e2e", secret_in_url=True)
    return Storage("s3", endpoint.url(bucket, "e2e"), endpoint.env(creds), [creds], secret_url, endpoint.secret_key)


ENCRYPTED_BLOCK = 16384


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("mode", ["rangefile", "bulkdump", "both"])
def test_backup_and_restore_modes(
    mode: str,
    encrypted: bool,
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
    key: list[str] = []
    if encrypted:
        (tmp_path / "backup.key").write_bytes(os.urandom(32))
        key = ["--encryption-key-file", str(tmp_path / "backup.key")]
    workload = start_workload(source.cluster_file, keys=4000, rate=400, duration=4)
    cf = str(source.cluster_file)
    block = ["--encryption-block-size", str(ENCRYPTED_BLOCK)] if encrypted else []
    # Encrypted S3 runs put the secret in the URL: no job record, task, log or trace may keep it.
    given = storage.secret_url if encrypted and storage.secret_url else storage.base_url
    started = fleet.run(["fdbbackup", "start", "-C", cf, "-d", given, "--mode", mode, "-z", *key, *block])
    assert started.returncode == 0, started.stderr
    assert workload.wait(60) == 0
    done = fleet.run(["fdbbackup", "discontinue", "-C", cf, "-w"], timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr + fleet.log(fleet.workers[0])[-3000:]

    url = storage.backup_url(tmp_path, given)
    creds = [str(c) for c in storage.credentials]
    key_file = str(tmp_path / "backup.key") if encrypted else None
    container = open_backup(url, credential_files=creds, key_file=key_file)
    desc = Catalog(container).describe()
    assert (desc.encryption.enabled, desc.encryption.block_size) == (
        (True, ENCRYPTED_BLOCK) if encrypted else (False, 0)
    )
    kinds = {s.kind.value for s in desc.snapshots}
    assert kinds == ({"rangefile", "bulkdump"} if mode == "both" else {mode})
    if mode in ("rangefile", "both"):
        assert check_range_files_match_cluster(url, source.driver, creds, key_file) >= 4
    if mode in ("bulkdump", "both"):
        assert check_bulkdump_matches_cluster(url, source.driver, tmp_path, creds, key_file) >= 4
        versions = {e.version for e in _entries(url, storage, key_file)}
        assert len(versions) > 1, "batches must be read at their own versions"
    if encrypted:
        _assert_no_plaintext(url, creds, source)
    status = fleet.run(["fdbbackup", "status", "-C", cf])
    assert f"Snapshot Mode: {mode}" in status.stdout
    if mode != "rangefile":
        assert "BulkLoad Compatible: yes" in status.stdout

    submitted = []
    for restore_mode in RESTORE_MODES[mode]:
        kind = SnapshotKind.BULKDUMP if restore_mode == "bulkload" else SnapshotKind.RANGEFILE
        lo, hi = desc.restorable_range(kind)  # type: ignore[misc]
        targets = {"end": lo, "middle": (lo + hi) // 2, "latest": None}
        for name, target in targets.items():
            dest = embedded_cluster_factory(
                name=f"dest-{restore_mode}-{name}", blob_credentials=storage.credentials, **BULKLOAD_KNOBS
            )
            tag = f"{restore_mode}-{name}"
            args = ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", restore_mode, *key]
            args += ["-t", tag] + ([] if target is None else ["-v", str(target)])
            res = fleet.run(args, timeout=240)
            assert res.returncode == 0, f"{tag}: {res.stdout}\n{res.stderr}"
            submitted.append((tag, dest, target if target is not None else hi))
    for tag, dest, version in submitted:
        res = fleet.run(["fdbrestore", "wait", "-t", tag], timeout=240)
        assert res.returncode == 0 and f"Restored to version {version}" in res.stdout, (
            f"{tag}: {res.stdout}{res.stderr}"
        )
        want, got = checksum(source, version), checksum(dest)
        assert same_data(want, got), f"{mode} -> {tag} ({version}): {want} != {got}"
    if encrypted:
        _assert_no_secret_kept(fleet, tmp_path, [storage.secret] if storage.secret else [])

    if mode == "bulkdump":  # a range-file restore never picks a BulkDump-only snapshot
        dest = embedded_cluster_factory(name="dest-refused", blob_credentials=storage.credentials)
        args = ["fdbrestore", "start", "-r", url, "-C", str(dest.cluster_file), "--mode", "rangefile", *key]
        res = fleet.run(args)
        assert res.returncode == 6 and "restore_missing_data, 2363" in res.stderr
        assert checksum(dest)["keys"] == 0


def _entries(url: str, storage: Storage, key_file: str | None) -> list:  # type: ignore[type-arg]
    from fdbcore import bulkdump_dataset as ds

    container = open_backup(url, credential_files=[str(c) for c in storage.credentials], key_file=key_file)
    [snap] = [s for s in Catalog(container).snapshots() if s.kind == SnapshotKind.BULKDUMP][-1:]
    return ds.read_job_manifest(container, snap.manifest.job_id)  # type: ignore[union-attr]


def _assert_no_secret_kept(fleet: Fleet, tmp_path: Path, secrets: list[str]) -> None:
    """Neither the key nor the URL's secret is in Redis (broker and its task messages, results, job
    state), the workers' logs or the trace events."""
    key = (tmp_path / "backup.key").read_bytes()
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), *(s.encode() for s in secrets)]
    client = redis.Redis.from_url(fleet.redis_url)
    for db in range(16):
        c = client.connection_pool.connection_kwargs
        r = redis.Redis(host=c["host"], port=c["port"], db=db)
        for name in r.scan_iter():
            kind = r.type(name).decode()
            if kind == "string":
                values = [r.get(name) or b""]
            elif kind == "hash":
                values = [x for kv in r.hgetall(name).items() for x in kv]
            elif kind == "list":
                values = r.lrange(name, 0, -1)
            elif kind == "zset":
                values = [m for m, _ in r.zrange(name, 0, -1, withscores=True)]
            else:
                values = list(r.smembers(name)) if kind == "set" else []
            for blob in [name, *values]:
                assert not any(f in blob for f in forms), f"db {db} key {name!r} holds a secret"
    files = [w.logfile for w in fleet.workers] + [p for p in (fleet.workdir / "trace").rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert not any(f in data for f in forms), f"{path} holds a secret"


def _assert_no_plaintext(url: str, creds: list[str], source: EmbeddedCluster) -> None:
    """Every stored file but ``properties/`` is ciphertext: no key, no value, no manifest text shows."""
    raw = open_container(url, credential_files=creds)
    files = [i.path for i in raw.list("")]
    assert any(p.startswith("kvranges/") for p in files) or any(p.startswith("bulkdump_data/") for p in files)
    [(key, value)] = source.driver.get_range(b"load/", b"load0", source.driver.get_read_version(), limit=1).kvs
    for path in files:
        if naming.sealing(path) == naming.Sealing.PLAIN:
            continue
        data = raw.read(path)
        for plain in (key, value[:16], b"beginVersion", b"[RootPath]", b"SQLite", b"rocksdb"):
            assert plain not in data, f"{path} holds plaintext {plain!r}"
