from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.lookup3 import hashlittle2
from fdbcore.formats.sst import (
    SstWriter,
    byte_sample,
    byte_sample_entries,
    read_sst,
    sha256_file,
    verify_sst,
    write_sst,
)
from fdbcore.keys import KeyRange
from tests.fdbcore.formats.strategies import keys

KVS = [(b"k%06d" % i, b"v" * (i % 50)) for i in range(3000)]


@pytest.fixture
def sst(tmp_path: Path) -> tuple[Path, int]:
    info = write_sst(tmp_path / "100-data.sst", KVS)
    assert info is not None
    return tmp_path / "100-data.sst", info.total_bytes


def test_writer_reports_counts_size_and_sha256(sst: tuple[Path, int]) -> None:
    path, nbytes = sst
    assert nbytes == sum(len(k) + len(v) for k, v in KVS)
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    w = SstWriter(path.with_name("again.sst"))
    for k, v in KVS:
        w.add(k, v)
    assert (w.key_count, w.total_bytes) == (3000, nbytes)
    info = w.finish()
    assert info is not None and info.key_count == 3000 and info.size == os.path.getsize(info.path)
    assert info.sha256 == hashlib.sha256(Path(info.path).read_bytes()).hexdigest()
    assert info.size > nbytes  # runs of "v" would shrink a lot if blocks were compressed


def test_the_sha256_taken_while_writing_is_the_whole_files(tmp_path: Path) -> None:
    """Several megabytes in many pieces, with pauses: the hash reads behind the writer, catches up,
    waits, and takes the index and footer that finishing appends."""
    w = SstWriter(tmp_path / "big.sst")
    for piece in range(40):
        w.add_many([(b"k%08d" % (piece * 1000 + i), os.urandom(100)) for i in range(1000)])
        if piece % 10 == 0:
            time.sleep(0.01)
    info = w.finish()
    assert info is not None and info.size > 4 << 20
    assert info.sha256 == hashlib.sha256(Path(info.path).read_bytes()).hexdigest()
    aborted = SstWriter(tmp_path / "aborted.sst")
    aborted.add(b"a", b"1")
    aborted.abort()
    assert not (tmp_path / "aborted.sst").exists()
    assert not [t for t in threading.enumerate() if t.name == "sst-hash"]


def test_empty_batch_has_no_file(tmp_path: Path) -> None:
    assert write_sst(tmp_path / "empty.sst", []) is None
    assert not (tmp_path / "empty.sst").exists()


def test_keys_must_ascend(tmp_path: Path) -> None:
    with pytest.raises(errors.InternalError):
        write_sst(tmp_path / "x.sst", [(b"b", b""), (b"a", b"")])
    assert not (tmp_path / "x.sst").exists()


def test_read_all_and_a_range(sst: tuple[Path, int]) -> None:
    path, nbytes = sst
    before = sha256_file(path)
    assert list(read_sst(path)) == KVS
    assert list(read_sst(path, KeyRange(b"k000100", b"k000200"))) == KVS[100:200]
    assert verify_sst(path, expected_key_count=3000, expected_bytes=nbytes).last_key == KVS[-1][0]
    assert sha256_file(path) == before  # ingesting a hard link leaves the original untouched
    assert path.stat().st_nlink == 1


def test_count_mismatch_is_file_corrupt(sst: tuple[Path, int]) -> None:
    path, nbytes = sst
    with pytest.raises(errors.FileCorrupt, match="3000 keys, expected 3001"):
        verify_sst(path, expected_key_count=3001)
    with pytest.raises(errors.FileCorrupt, match="bytes"):
        verify_sst(path, expected_bytes=nbytes + 1)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9, 0.999])
def test_flipped_byte_is_file_corrupt(sst: tuple[Path, int], where: float) -> None:
    path, _ = sst
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(errors.FileCorrupt, match=r"100-data\.sst"):
        verify_sst(path)


def test_truncated_and_missing(sst: tuple[Path, int], tmp_path: Path) -> None:
    path, _ = sst
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(errors.FileCorrupt):
        verify_sst(path)
    with pytest.raises(errors.FileNotFound):
        verify_sst(tmp_path / "nope.sst")


def test_stopping_early_cleans_up(sst: tuple[Path, int], tmp_path: Path) -> None:
    path, _ = sst
    work = tmp_path / "work"
    work.mkdir()
    it = read_sst(path, tmp_dir=str(work))
    assert next(it) == KVS[0]
    it.close()
    assert list(work.iterdir()) == []


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(keys, st.binary(max_size=300), min_size=1, max_size=50))
def test_round_trip(tmp_path: Path, kv: dict[bytes, bytes]) -> None:
    kvs = sorted(kv.items())
    path = tmp_path / "rt.sst"
    path.unlink(missing_ok=True)
    info = write_sst(path, kvs)
    assert info is not None and info.key_count == len(kvs)
    assert list(read_sst(path, expected_key_count=len(kvs), expected_bytes=info.total_bytes)) == kvs


def test_byte_sample_rule() -> None:
    # A big KV has probability 1 and is always sampled at its own size.
    assert byte_sample(b"k", 100_000) == 100_001
    # A small KV is sampled when hashlittle2's first output / 2^32 falls below size / (klen + 100) / 250.
    for i in range(200):
        key = b"key%d" % i
        p = (len(key) + 10) / (len(key) + 100) / 250
        expected = int((len(key) + 10) / p) if hashlittle2(key)[0] / 2**32 < p else None
        assert byte_sample(key, 10) == expected
    sampled = list(byte_sample_entries([(b"k", b"x" * 100_000), (b"a", b"")]))
    assert sampled[0] == (b"k", struct.pack("<q", 100_001)) and len(sampled) <= 2


def test_unwritable_path_is_io_error(tmp_path: Path) -> None:
    with pytest.raises(errors.IoError, match="no-such-dir"):
        write_sst(tmp_path / "no-such-dir" / "x.sst", [(b"a", b"1")])
