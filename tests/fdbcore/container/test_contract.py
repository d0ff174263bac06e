"""The BackupContainer contract, run against every backend (``file://`` and S3 through moto), and
against the encrypting wrapper over each (file-level encryption with 1000-byte blocks, so reads,
writes and transfers cross block boundaries everywhere).

A backend belongs in :func:`container` once it passes this file unchanged.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fdbcore.container import BackupContainer, open_container
from fdbcore.encryption import EncryptionKey, FileCipher
from fdbcore.errors import ClientInvalidOperation, FDBError, FileNotFound

MiB = 1 << 20


def _cipher(kind: str) -> FileCipher | None:
    return FileCipher(EncryptionKey(os.urandom(32)), 1000) if kind.endswith("-encrypted") else None


@pytest.fixture(params=["file", "s3", "file-encrypted", "s3-encrypted"])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> BackupContainer:
    """A created, empty container of each kind."""
    if request.param.startswith("file"):
        url = f"file://{tmp_path}/container"
    else:
        url = request.getfixturevalue("blobstore_url")
    c = open_container(url, cipher=_cipher(request.param))
    c.create()
    return c


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path, container: BackupContainer) -> BackupContainer:
    """A container of the same kind whose storage fails: a root that is a regular file, or an S3
    endpoint that answers every request with HTTP 500."""
    cipher = _cipher(request.node.callspec.params["container"])
    if container.url.startswith("file://"):
        root = tmp_path / "not-a-directory"
        root.write_bytes(b"x")
        return open_container(f"file://{root}", cipher=cipher)
    proxy = request.getfixturevalue("s3_fault_proxy")
    proxy.fail(-1, status=500)
    return open_container(proxy.url(request.getfixturevalue("s3_bucket"), params="rt=2"), cipher=cipher)


def _paths(c: BackupContainer, prefix: str = "") -> list[str]:
    return [info.path for info in c.list(prefix)]


def test_write_read_overwrite(container: BackupContainer) -> None:
    container.write("properties/log_begin_version", b"100")
    assert container.read("properties/log_begin_version") == b"100"
    assert container.size("properties/log_begin_version") == 3
    assert container.exists("properties/log_begin_version")

    container.write("properties/log_begin_version", b"200000")
    assert container.read("properties/log_begin_version") == b"200000"
    assert container.size("properties/log_begin_version") == 6
    assert _paths(container) == ["properties/log_begin_version"]


def test_empty_file(container: BackupContainer) -> None:
    container.write("empty", b"")
    assert container.read("empty") == b""
    assert container.read("empty", 0, 10) == b""
    assert [(i.path, i.size) for i in container.list()] == [("empty", 0)]


def test_writer_streams_in_pieces(container: BackupContainer) -> None:
    with container.open_write("logs/0000/0000/log,1,2,u,1024") as w:
        for piece in (b"a", b"bc", b"", b"def"):
            w.write(piece)
        assert w.bytes_written == 6
        assert not container.exists("logs/0000/0000/log,1,2,u,1024")
    assert container.read("logs/0000/0000/log,1,2,u,1024") == b"abcdef"


def test_missing_files_raise_file_not_found(container: BackupContainer, tmp_path: Path) -> None:
    assert not container.exists("nope")
    for call in (
        lambda: container.read("nope"),
        lambda: container.read("nope", 5, 10),
        lambda: container.read("nope", 0, 0),
        lambda: container.size("nope"),
        lambda: container.download_file("nope", str(tmp_path / "out")),
    ):
        with pytest.raises(FileNotFound):
            call()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]  # not even a temp file
    container.delete("nope")  # deleting a missing file is not an error


@pytest.mark.parametrize("size", [10, 12 * MiB])  # one PUT / a multipart upload on S3
def test_aborted_writer_leaves_nothing(container: BackupContainer, size: int) -> None:
    container.write("kept", b"old")
    w = container.open_write("new")
    w.write(os.urandom(size))
    w.abort()
    w.abort()  # idempotent
    with pytest.raises(FDBError):
        w.write(b"more")

    with pytest.raises(RuntimeError), container.open_write("kept") as w2:
        w2.write(os.urandom(size))
        raise RuntimeError("the producer failed")

    assert _paths(container) == ["kept"]
    assert container.read("kept") == b"old"


def test_listing_is_sorted_and_filtered_by_prefix(container: BackupContainer) -> None:
    paths = [
        "a-b",
        "a.b",
        "a/b/c",
        "a/b-c",
        "a/bc",
        "a0",
        "ab",
        "kvranges/snapshot.000000000000000100/0/range,100,u1,1024",
        "kvranges/snapshot.000000000000000100/1/range,150,u2,1024",
        "logs/0000/0000/log,1,2,u,1024",
        "z\u00e9",
    ]
    shuffled = paths[:]
    random.Random(7).shuffle(shuffled)
    for i, p in enumerate(shuffled):
        container.write(p, b"x" * i)

    infos = list(container.list())
    assert [i.path for i in infos] == sorted(paths)
    assert {i.path: i.size for i in infos} == {p: i for i, p in enumerate(shuffled)}
    assert _paths(container, "a/") == ["a/b-c", "a/b/c", "a/bc"]
    assert _paths(container, "a/b") == ["a/b-c", "a/b/c", "a/bc"]
    assert _paths(container, "a/b/") == ["a/b/c"]
    assert _paths(container, "a") == ["a-b", "a.b", "a/b-c", "a/b/c", "a/bc", "a0", "ab"]
    assert _paths(container, "kvranges/snapshot.000000000000000100/") == paths[7:9]
    assert _paths(container, "kvranges/snap") == paths[7:9]
    assert _paths(container, "missing/") == []


def test_listing_more_than_1000_files(container: BackupContainer) -> None:
    names = [f"plogs/0000/0000/log,{i},{i + 1},u,1024" for i in range(1010)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: container.write(n, b"."), names))
    container.write("plogz", b".")
    listed = _paths(container, "plogs/")
    assert listed == sorted(names)
    assert len(_paths(container)) == 1011


def test_ranged_reads(container: BackupContainer) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    container.write("f", data)
    assert container.read("f", 0, 10) == data[:10]
    assert container.read("f", 500, 100) == data[500:600]
    assert container.read("f", 1000, 100) == data[1000:]  # runs past the end
    assert container.read("f", 1023, 1) == data[1023:]
    assert container.read("f", 1024, 5) == b""  # starts at the end
    assert container.read("f", 5000) == b""  # starts past the end
    assert container.read("f", 7) == data[7:]
    assert container.read("f", 3, 0) == b""
    assert container.read("f") == data
    with pytest.raises(ValueError):
        container.read("f", -1)


@pytest.mark.parametrize("size", [0, 1, 1000, (8 << 20) + 3])
def test_sha256_of_a_whole_file(container: BackupContainer, size: int) -> None:
    data = random.Random(size).randbytes(size)
    container.write("kvranges/f", data)
    assert container.sha256("kvranges/f") == hashlib.sha256(data).hexdigest()
    with pytest.raises(FileNotFound):
        container.sha256("kvranges/missing")


def test_50_mb_streaming_write(container: BackupContainer) -> None:
    rng = random.Random(50)
    chunk = rng.randbytes(MiB)
    digest = hashlib.sha256()
    with container.open_write("big") as w:
        for i in range(50):
            piece = chunk[i:] + chunk[:i]  # distinct pieces without generating 50 MB of randomness
            digest.update(piece)
            w.write(piece)
    assert container.size("big") == 50 * MiB
    assert hashlib.sha256(container.read("big")).hexdigest() == digest.hexdigest()
    assert container.read("big", 49 * MiB + 10, 5) == (chunk[49:] + chunk[:49])[10:15]


def test_move_file_consumes_the_local_file(container: BackupContainer, tmp_path: Path) -> None:
    data = random.Random(4).randbytes(3 * MiB + 7)
    src = tmp_path / "batch.sst"
    src.write_bytes(data)
    container.move_file("bulkdump_data/job/task/1/200-data.sst", str(src))
    assert not src.exists()
    assert container.read("bulkdump_data/job/task/1/200-data.sst") == data
    assert [f.path for f in container.list("bulkdump_data/job/task/1/")] == ["bulkdump_data/job/task/1/200-data.sst"]
    src.write_bytes(b"")
    container.move_file("bulkdump_data/job/task/2/200-data.sst", str(src))
    assert container.read("bulkdump_data/job/task/2/200-data.sst") == b""
    with pytest.raises(FileNotFound):
        container.move_file("y", str(tmp_path / "no-such-local-file"))


def test_upload_and_download_file(container: BackupContainer, tmp_path: Path) -> None:
    src = tmp_path / "src.sst"
    src.write_bytes(random.Random(3).randbytes(20 * MiB + 123))
    container.upload_file("bulkdump_data/job/task/0/100-data.sst", str(src))
    assert container.size("bulkdump_data/job/task/0/100-data.sst") == src.stat().st_size

    dst = tmp_path / "dst.sst"
    dst.write_bytes(b"stale content to be replaced")
    container.download_file("bulkdump_data/job/task/0/100-data.sst", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".temp")]

    container.upload_file("small", str(tmp_path / "src.sst"))
    with pytest.raises(FileNotFound):
        container.upload_file("x", str(tmp_path / "no-such-local-file"))
    assert not container.exists("x")


def test_delete_and_delete_prefix(container: BackupContainer) -> None:
    for p in ("a/1", "a/2", "a/3/4", "ab", "b"):
        container.write(p, b"data")
    container.delete("b")
    assert not container.exists("b")
    assert container.delete_prefix("a/") == 3
    assert _paths(container) == ["ab"]
    assert container.delete_prefix("a/") == 0


@pytest.mark.parametrize("bad", ["", "/abs", "../up", "a/../b", "a//b", "./a", "a/"])
def test_paths_that_escape_are_refused(container: BackupContainer, bad: str) -> None:
    with pytest.raises(ClientInvalidOperation):
        container.write(bad, b"x")
    with pytest.raises(ClientInvalidOperation):
        container.read(bad)


def test_prefixes_that_escape_are_refused(container: BackupContainer) -> None:
    for bad in ("/abs", "../", "a/../"):
        with pytest.raises(ClientInvalidOperation):
            list(container.list(bad))


@pytest.mark.parametrize(
    "operation",
    [
        lambda c: c.write("f", b"data"),
        lambda c: c.read("f"),
        lambda c: list(c.list()),
        lambda c: c.delete_prefix(""),
    ],
    ids=["write", "read", "list", "delete_prefix"],
)
def test_storage_failures_surface_as_errors(
    broken: BackupContainer, operation: Callable[[BackupContainer], object]
) -> None:
    with pytest.raises(FDBError):
        operation(broken)
