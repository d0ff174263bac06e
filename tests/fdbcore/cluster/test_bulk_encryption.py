"""BulkDump and BulkLoad with file-level encryption, through the driver: the cluster reads the key from its
own copy of the key file (the call carries only the path, block size and check value), writes nothing
in plaintext to the container, keeps no plaintext once a call ends, and loads exactly what it dumped;
a key file holding another key is refused before anything is written or loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fdbcore import errors
from fdbcore.bulkdump_dataset import in_root
from fdbcore.container import open_container
from fdbcore.encryption import EncryptionSettings
from fdbcore.mutations import set_value
from fdbcore.naming import new_uid
from tests.fdbcore.cluster.bulk import KNOBS, W, check_batches, fill, sst_pairs
from tests.fdbcore.cluster.conftest import ClusterFactory
from tests.fdbcore.cluster.util import read_all


def test_encrypted_dump_loads_exactly_and_stores_no_plaintext(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    key = tmp_path / "backup.key"
    key.write_bytes(os.urandom(32))
    settings = EncryptionSettings.of(str(key), 2048)
    src = cluster_factory(name="src")
    fill(src.driver, 2000)
    src.driver.commit([set_value(b"w/marker", b"PLAINTEXT-MARKER-VALUE")])
    url = f"file://{tmp_path}/backup"
    job = new_uid()
    batches = src.driver.bulk_dump(job, new_uid(), W, url, batch_bytes=30_000, encryption=settings)
    assert src.scratch_files() == []

    sealed = open_container(url, cipher=settings.cipher())
    check_batches(sealed, batches, W)  # manifests parse and every SST hashes to its SHA-256, decrypted
    version = src.driver.get_read_version()
    expected = read_all(src.driver, W.begin, W.end, version)
    assert [kv for b in batches for kv in sst_pairs(sealed, b, tmp_path)] == expected
    raw = open_container(url)
    for info in raw.list(""):
        data = raw.read(info.path)
        assert b"PLAINTEXT-MARKER-VALUE" not in data and b"[RootPath]" not in data, info.path

    dest = cluster_factory(name="dest", **KNOBS)
    manifests = [b.manifest_path for b in batches]
    loaded = dest.driver.bulk_load(job, W, url, manifests, encryption=settings)
    assert loaded.keys_loaded == len(expected)
    assert read_all(dest.driver, W.begin, W.end, dest.driver.get_read_version()) == expected
    assert dest.scratch_files() == []

    # A plain load of the encrypted dataset cannot parse its manifests: it is refused, loading nothing.
    other = cluster_factory(name="other", **KNOBS)
    with pytest.raises(errors.FDBError):
        other.driver.bulk_load(job, W, url, manifests)
    assert read_all(other.driver, b"", b"\xff", other.driver.get_read_version()) == []


def test_a_key_file_holding_another_key_is_refused(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    key = tmp_path / "backup.key"
    key.write_bytes(os.urandom(32))
    settings = EncryptionSettings.of(str(key), 4096)
    key.write_bytes(os.urandom(32))  # the cluster's copy of the file holds another key
    src = cluster_factory(name="src", **KNOBS)
    fill(src.driver, 100)
    url = f"file://{tmp_path}/backup"
    with pytest.raises(errors.InvalidEncryptionKeyFile, match="different key"):
        src.driver.bulk_dump(new_uid(), new_uid(), W, url, encryption=settings)
    assert not list(open_container(url).list(""))
    manifest = in_root(f"{new_uid()}/{new_uid()}/0/1-manifest.txt")
    with pytest.raises(errors.InvalidEncryptionKeyFile):
        src.driver.bulk_load(manifest.split("/")[1], W, url, [manifest.split("/", 1)[1]], encryption=settings)
    assert len(read_all(src.driver, W.begin, W.end, src.driver.get_read_version())) == 100
