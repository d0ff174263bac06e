"""File-level encryption under bad input and damage: every refusal named, before the destination changes.

One encrypted backup per module (mode ``both``, 4 KiB encryption blocks, taken under a workload so the
logs hold sets, clears and atomic adds). Against it:

- a range file decrypted and decoded by a decoder written here from the format's description;
- the command-line refusals (no key, a wrong key, a bad key file, an untagged backup, ...): error name,
  code and exit code, the backup unchanged, the destination empty, no job recorded;
- damage to each kind of encrypted file, in a copy (a flipped byte, a cut inside the last block, a last
  block lost whole, a block swapped with another file's block at the same index): named by the restore
  before the destination changes, the destination empty and unlocked, the copy unchanged;
- an agent whose key file holds another key: it refuses the backup instead of writing files no
  restore could read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xxhash
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fdbcore import bulkdump_dataset as ds
from fdbcore import naming
from fdbcore.backup_encryption import open_backup
from fdbcore.catalog import Catalog
from fdbcore.formats.io import ContainerSource
from fdbcore.formats.rangefile import iter_range_file
from fdbcore.formats.snapshot_manifest import SnapshotManifest
from fdbcore.keys import KeyRange
from fdbcore.modes import SnapshotKind
from tests.faults.helpers import (
    BULKLOAD_KNOBS,
    file_fingerprint,
    make_backup,
    restore,
    restore_exactly,
    run,
    source_cluster,
    state_store,
    worker_logs,
)
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.support.backups import checksum, read_all

BLOCK = 4096
HINT = "Verify that backup and restore encryption keys match"


@dataclass(frozen=True)
class World:
    source: EmbeddedCluster
    folder: Path
    key: Path
    fleet: Fleet
    clusters: Callable[..., EmbeddedCluster]
    empty: EmbeddedCluster  # a destination the refused requests name

    @property
    def url(self) -> str:
        return f"file://{self.folder}"

    def key_args(self, key: Path | None = None) -> list[str]:
        return ["--encryption-key-file", str(key or self.key)]


@pytest.fixture(scope="module")
def world(
    module_cluster_factory: Callable[..., EmbeddedCluster], module_fleet: Fleet, module_dir: Path
) -> Iterator[World]:
    source = source_cluster(module_cluster_factory)
    key = module_dir / "backup.key"
    key.write_bytes(os.urandom(32))
    module_fleet.start_worker(concurrency=2)  # it stays up for the module's restores
    options = ["--encryption-key-file", str(key), "--encryption-block-size", str(BLOCK)]
    url = make_backup(module_fleet, source, f"file://{module_dir}/backups", workload_seconds=2, options=options)
    folder = Path(url[len("file://") :])
    yield World(source, folder, key, module_fleet, module_cluster_factory, module_cluster_factory("empty"))


# --- an independent decoder -------------------------------------------------------------------------
def _decrypt(raw: bytes, key: bytes, block_size: int, base_name: str) -> bytes:
    """fdb-formats.md §1.4: blocks of ciphertext + 16-byte tag; IV = XXH3-128(salt) high 64 bits (LE),
    the first 4 bytes of the low 64 bits (LE), the block index (uint32 LE); salt = base name up to '.'."""
    digest = xxhash.xxh3_128_digest(base_name.split(".")[0].encode())  # canonical: high64 BE, low64 BE
    head = digest[:8][::-1] + digest[8:][::-1][:4]
    step = block_size + 16
    aead = AESGCM(key)
    return b"".join(
        aead.decrypt(head + n.to_bytes(4, "little"), raw[at : at + step], None)
        for n, at in enumerate(range(0, len(raw), step))
    )


def _decode_range_file(data: bytes, block_size: int) -> list[tuple[bytes, bytes]]:
    """fdb-formats.md §2: per block, header 1001 (LE), then BE-length-prefixed begin key, pairs and (last
    block) end key, padded with 0xFF; a block's data are its elements but the first and the last."""
    pairs: list[tuple[bytes, bytes]] = []
    for at in range(0, len(data), block_size):
        block = data[at : at + block_size]
        assert int.from_bytes(block[:4], "little") == 1001
        begin, pos = _string(block, 4)
        items = [(begin, b"")]
        while pos < len(block) and block[pos] != 0xFF:
            k, pos = _string(block, pos)
            if pos >= len(block) or block[pos] == 0xFF:
                items.append((k, b""))
                break
            v, pos = _string(block, pos)
            items.append((k, v))
        assert set(block[pos:]) <= {0xFF}
        pairs += items[1:-1]
    return pairs


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """A string with a big-endian uint32 length, and the position after it."""
    n = int.from_bytes(block[pos : pos + 4], "big")
    return block[pos + 4 : pos + 4 + n], pos + 4 + n


def test_a_range_file_decrypts_with_a_decoder_written_from_the_format(world: World) -> None:
    container = open_backup(world.url, key_file=str(world.key))
    [snap] = [s for s in Catalog(container).snapshots() if s.kind == SnapshotKind.RANGEFILE]
    assert isinstance(snap.manifest, SnapshotManifest)
    refs = {r.path: r for r in Catalog(container).range_files()}
    ref = max((refs[p] for p in snap.manifest.files), key=lambda r: r.size)
    raw = (world.folder / ref.path).read_bytes()
    assert len(raw) > 2 * (BLOCK + 16), "the file must span several encryption blocks"

    plain = _decrypt(raw, world.key.read_bytes(), BLOCK, ref.path.rsplit("/", 1)[1])
    pairs = _decode_range_file(plain, ref.block_size)
    file_range: KeyRange = snap.manifest.key_ranges[ref.path]
    assert pairs == read_all(world.source.driver, file_range, ref.version)
    assert len(pairs) > 100
    ours = [kv for b in iter_range_file(ContainerSource(container, ref.path), ref.block_size) for kv in b.kvs]
    assert pairs == ours


# --- refused on the command line --------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    args: list[str]
    code: int
    texts: tuple[str, ...]
    stdout: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ctx:
    w: World
    dest: str
    tmp: Path

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def start(self, *args: str) -> list[str]:
        """``fdbbackup start`` of the source into a fresh folder."""
        return ["fdbbackup", "start", "-C", str(self.w.source.cluster_file), "-d", f"file://{self.tmp}/b", *args]

    def other_key(self) -> list[str]:
        return self.w.key_args(self.file("other.key", os.urandom(32)))

    def untagged_copy(self) -> str:
        """The backup as FDB wrote encrypted backups before its GCM tags: no format_version recorded."""
        copy = self.tmp / "untagged"
        shutil.copytree(self.w.folder, copy)
        (copy / "properties/encryption_metadata").write_text(
            f'{{"is_encryption_enabled":true,"encryption_block_size":{BLOCK}}}'
        )
        return f"file://{copy}"


RESTORE = ["fdbrestore", "start", "-r"]
ROWS: dict[str, Callable[[Ctx], Row]] = {
    "restore-without-key": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.dest], 1, ("restore_error, 2301", "Backup is encrypted", HINT)
    ),
    "restore-wrong-key": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.dest, *c.other_key()],
        6,
        ("restore_corrupted_data, 2362", HINT),
    ),
    "restore-bulkload-wrong-key": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.dest, "--mode", "bulkload", *c.other_key()],
        6,
        ("restore_corrupted_data, 2362", HINT),
    ),
    "restore-key-file-missing": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.dest, *c.w.key_args(c.tmp / "none.key")],
        2,
        ("invalid_encryption_key_file, 2383", "does not exist"),
    ),
    "restore-key-file-short": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.dest, *c.w.key_args(c.file("short.key", os.urandom(16)))],
        2,
        ("invalid_encryption_key_file, 2383", "holds 16 bytes"),
    ),
    "restore-key-file-unreadable": lambda c: Row(
        [*RESTORE, c.w.url, "-C", c.dest, *c.w.key_args(c.tmp)],
        2,
        ("invalid_encryption_key_file, 2383", "cannot be read"),
    ),
    "restore-untagged-format": lambda c: Row(
        [*RESTORE, c.untagged_copy(), "-C", c.dest, *c.w.key_args()],
        6,
        ("restore_unsupported_file_version, 2367", "without GCM tags"),
    ),
    "describe-without-key": lambda c: Row(
        ["fdbbackup", "describe", "-d", c.w.url],
        1,
        ("restore_error, 2301", "Backup is encrypted"),
        ("File-level encryption: true", f"Encryption block size: {BLOCK}"),
    ),
    "describe-json-without-key": lambda c: Row(
        ["fdbbackup", "describe", "-d", c.w.url, "--json"],
        1,
        ("restore_error, 2301",),
        ('"FileLevelEncryption": true', f'"EncryptionBlockSize": {BLOCK}'),
    ),
    "describe-wrong-key": lambda c: Row(
        ["fdbbackup", "describe", "-d", c.w.url, *c.other_key()],
        6,
        ("restore_corrupted_data, 2362", HINT),
    ),
    "dump-without-key": lambda c: Row(["fdbbackup", "dump", "-d", c.w.url], 1, ("restore_error, 2301",)),
    "expire-wrong-key": lambda c: Row(
        ["fdbbackup", "expire", "-d", c.w.url, "--expire-before-version", "1", "-f", *c.other_key()],
        6,
        ("restore_corrupted_data, 2362", HINT),
    ),
    "backup-block-size-without-key": lambda c: Row(
        c.start("--encryption-block-size", "4096"),
        2,
        ("invalid_option_value, 2006", "--encryption-block-size option requires --encryption-key-file to be set"),
    ),
    "backup-block-size-not-positive": lambda c: Row(
        c.start(*c.w.key_args(), "--encryption-block-size", "0"),
        2,
        ("invalid_option_value, 2006", "Invalid encryption block size '0'"),
    ),
    "backup-key-file-short": lambda c: Row(
        c.start(*c.w.key_args(c.file("short.key", b"x" * 31))),
        2,
        ("invalid_encryption_key_file, 2383",),
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_is_refused_by_name_and_changes_nothing(world: World, name: str, tmp_path: Path) -> None:
    dest = world.empty
    row = ROWS[name](Ctx(world, str(dest.cluster_file), tmp_path))
    before = file_fingerprint(world.folder)
    jobs = {kind: state_store(world.fleet, kind).all_uids() for kind in ("backup", "restore")}

    res = world.fleet.run(row.args)
    assert res.returncode == row.code, f"exit {res.returncode}, want {row.code}:\n{res.stdout}{res.stderr}"
    last = res.stderr.splitlines()[-1] if res.stderr else ""
    assert last.startswith("ERROR: ") and all(t in last for t in row.texts), res.stderr
    assert all(t in res.stdout for t in row.stdout), res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    assert file_fingerprint(world.folder) == before
    assert checksum(dest)["keys"] == 0
    assert {kind: state_store(world.fleet, kind).all_uids() for kind in jobs} == jobs
    assert not (tmp_path / "b").exists(), "a refused backup created its container"


# --- damage -----------------------------------------------------------------------------------------
#: (file kind, damage) -> (restore mode, the error the restore must name).
DAMAGE = {
    ("range_file", "flip"): ("rangefile", "restore_corrupted_data, 2362"),
    ("range_file", "cut_last_block"): ("rangefile", "restore_corrupted_data, 2362"),
    ("range_file", "lose_last_block"): ("rangefile", "restore_corrupted_data, 2362"),
    ("range_file", "swap_block"): ("rangefile", "restore_corrupted_data, 2362"),
    ("log_file", "flip"): ("rangefile", "restore_corrupted_data, 2362"),
    ("log_checksum", "flip"): ("bulkload", "restore_corrupted_data, 2362"),
    ("range_snapshot_manifest", "flip"): ("rangefile", "restore_corrupted_data, 2362"),
    ("bulk_snapshot_manifest", "flip"): ("bulkload", "restore_corrupted_data, 2362"),
    ("job_manifest", "flip"): ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
    ("batch_manifest", "flip"): ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
    ("sst", "flip"): ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
    ("sst", "cut_last_block"): ("bulkload", "restore_bulkload_dataset_incomplete, 2390"),
}


def _victims(url: str, key: Path, kind: str) -> list[str]:
    """Container paths of the files of ``kind`` (largest first where there are several)."""
    container = open_backup(url, key_file=str(key))
    catalog = Catalog(container)
    snaps = {s.kind: s for s in catalog.snapshots()}
    if kind.endswith("snapshot_manifest"):
        return [snaps[SnapshotKind.BULKDUMP if kind.startswith("bulk") else SnapshotKind.RANGEFILE].path]
    if kind == "range_file":
        return [f.path for f in sorted(catalog.range_files(), key=lambda f: -f.size)]
    if kind in ("log_file", "log_checksum"):
        log = max(catalog.log_files(), key=lambda f: f.size).path
        return [log if kind == "log_file" else naming.log_checksum_path(log)]
    job_id = snaps[SnapshotKind.BULKDUMP].manifest.job_id  # type: ignore[union-attr]
    if kind == "job_manifest":
        return [ds.job_manifest_path(job_id)]
    batches = [ds.verify_entry(container, e) for e in ds.read_job_manifest(container, job_id)]
    batch = max((b for b in batches if b.data_path), key=lambda b: b.manifest.total_bytes)
    return [batch.data_path if kind == "sst" else ds.in_root(batch.entry.manifest_relative_path)]


def _damage(copy: Path, paths: list[str], how: str) -> None:
    raw_block = BLOCK + 16
    data = bytearray((copy / paths[0]).read_bytes())
    assert len(data) > 2 * raw_block or how == "flip", f"{paths[0]} is too small for {how}"
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    elif how == "cut_last_block":
        del data[-5:]
    elif how == "lose_last_block":
        del data[len(data) - (len(data) % raw_block or raw_block) :]
    else:  # swap block 1 with block 1 of another file of the same kind
        other = bytearray((copy / paths[1]).read_bytes())
        data[raw_block : 2 * raw_block], other[raw_block : 2 * raw_block] = (
            other[raw_block : 2 * raw_block],
            data[raw_block : 2 * raw_block],
        )
        (copy / paths[1]).write_bytes(bytes(other))
    (copy / paths[0]).write_bytes(bytes(data))


@pytest.mark.parametrize(("kind", "how"), list(DAMAGE), ids=[f"{k}-{h}" for k, h in DAMAGE])
def test_damage_is_named_before_the_destination_changes(world: World, kind: str, how: str, tmp_path: Path) -> None:
    copy = tmp_path / "backup"
    shutil.copytree(world.folder, copy)
    url = f"file://{copy}"
    _damage(copy, _victims(url, world.key, kind), how)
    before = file_fingerprint(copy)
    mode, error = DAMAGE[(kind, how)]
    tag = f"{kind}-{how}".replace("_", "-")
    dest = world.clusters(f"dest-{tag}", **BULKLOAD_KNOBS)
    code, out, err = restore(world.fleet, url, dest, "--mode", mode, "-t", tag, *world.key_args())
    assert code == 6, f"{kind} {how}: exit {code}\n{out}\n{err}\n{worker_logs(world.fleet)}"
    assert error in err, f"{kind} {how}: expected {error}, got:\n{out}\n{err}"
    if how in ("flip", "cut_last_block", "swap_block"):
        assert HINT in err, err
    assert checksum(dest)["keys"] == 0, "the destination changed before the damage was found"
    assert json.loads(dest.cli("status", "--json").stdout)["locks"] == [], "the restore left its range lock"
    assert file_fingerprint(copy) == before, "the refused restore changed the backup"


def test_undamaged_backup_restores_exactly_in_both_modes(world: World) -> None:
    """The control: the same backup, undamaged and with its key, restores exactly (so the refusals above
    are the damage's)."""
    for mode in ("rangefile", "bulkload"):
        dest = world.clusters(f"control-{mode}", **BULKLOAD_KNOBS)
        restore_exactly(world.fleet, world.url, world.source, dest, "--mode", mode, "-t", mode, *world.key_args())


def test_key_ranges_prefixes_and_versions_restore_exactly(world: World) -> None:
    """-k, --remove-prefix/--add-prefix and -v on the encrypted backup, both modes, at a version inside the
    logs: exactly the source's keys of the range at that version, moved to the new prefix."""
    desc = Catalog(open_backup(world.url, key_file=str(world.key))).describe()
    lo, hi = desc.restorable_range(SnapshotKind.BULKDUMP)  # type: ignore[misc]
    version = (lo + hi) // 2
    part = KeyRange(b"load/0000000500", b"load/0000001000")
    want = [(b"moved/" + k[len(b"load/") :], v) for k, v in read_all(world.source.driver, part, version)]
    assert len(want) > 400
    for mode in ("bulkload", "rangefile"):
        dest = world.clusters(f"prefixed-{mode}", **BULKLOAD_KNOBS)
        args = ["--mode", mode, "-t", f"prefixed-{mode}", "-v", str(version), "-k", "load/0000000500 load/0000001000"]
        args += ["--remove-prefix", "load/", "--add-prefix", "moved/", *world.key_args()]
        code, out, err = restore(world.fleet, world.url, dest, *args)
        assert code == 0 and f"Restored to version {version}" in out, out + err
        got = read_all(dest.driver, KeyRange(b"", b"\xff"), dest.driver.get_read_version())
        assert got == want, mode


def test_an_agent_with_another_key_refuses_the_backup(world: World, tmp_path: Path) -> None:
    """The job holds the key file's path and the key's check value; an agent whose file at that path holds
    another key fails the backup with invalid_encryption_key_file instead of writing unreadable files."""
    world.fleet.stop()
    key = tmp_path / "agent.key"
    key.write_bytes(os.urandom(32))
    cf = str(world.source.cluster_file)
    base = tmp_path / "backups"
    args = ["fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "-t", "mismatch", *world.key_args(key)]
    started = run(world.fleet, args)
    assert started.returncode == 0, started.stderr
    key.write_bytes(os.urandom(32))  # the agent's copy of the file differs
    world.fleet.start_worker(concurrency=1)
    done = run(world.fleet, ["fdbbackup", "wait", "-t", "mismatch"])
    assert done.returncode == 1 and "has errored" in done.stdout, done.stdout + done.stderr
    status = json.loads(run(world.fleet, ["fdbbackup", "status", "-t", "mismatch", "--json"]).stdout)
    assert "invalid_encryption_key_file" in json.dumps(status) and "different key" in json.dumps(status)
    assert (status["FileLevelEncryption"], status["EncryptionKeyFile"]) == (True, str(key))
    [folder] = base.iterdir()
    assert not [p for p in folder.rglob("*") if p.is_file()], "the refusing agent wrote files"
