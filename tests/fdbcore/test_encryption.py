"""File-level encryption: FDB's IVs and block layout, the key file, the encrypting container's refusals.

The IV test derives FDB's IV independently from XXH3-128's canonical (big-endian high, then low) digest,
so the halves cannot be swapped by the same mistake in code and test.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import xxhash
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fdbcore import errors, naming
from fdbcore.container import EncryptedContainer, LocalContainer
from fdbcore.encryption import (
    KEY_HINT,
    NONCE_SIZE,
    BlockSealer,
    EncryptionKey,
    EncryptionSettings,
    FileCipher,
    encrypted_size,
    fdb_salt,
    iv_prefix,
    logical_size,
    read_key_file,
)

RANGE = "kvranges/snapshot.000000000000000100/0/range,100,0123456789abcdef0123456789abcdef,1048576"
LOG = "plogs/0000/0000/log,100,200,0123456789abcdef0123456789abcdef,0-of-1,1048576"
SST = "bulkdump_data/" + "a" * 32 + "/" + "b" * 32 + "/0/100-data.sst"


def fdb_iv(salt: bytes, block: int) -> bytes:
    """The IV as fdb-formats.md §1.4 describes it, from XXH3-128's canonical digest (high64 BE, low64 BE)."""
    digest = xxhash.xxh3_128_digest(salt)
    high_le, low_le = digest[:8][::-1], digest[8:][::-1]
    return high_le + low_le[:4] + block.to_bytes(4, "little")


def test_iv_is_fdbs_high_half_then_low_half_then_block_index() -> None:
    salt = fdb_salt(RANGE)
    assert salt == RANGE.rsplit("/", 1)[1].encode()
    assert iv_prefix(salt) + (7).to_bytes(4, "little") == fdb_iv(salt, 7)


def test_salt_is_the_base_name_up_to_its_first_dot() -> None:
    assert fdb_salt("snapshots/snapshot,1,2,3") == b"snapshot,1,2,3"
    assert fdb_salt(RANGE + ".0123.temp") == fdb_salt(RANGE)  # a local temp name encrypts like its final name
    assert fdb_salt("a/b.c.d") == b"b"


@pytest.mark.parametrize(("logical", "raw"), [(0, 0), (1, 17), (999, 1015), (1000, 1016), (1001, 1033), (5000, 5080)])
def test_sizes(logical: int, raw: int) -> None:
    assert encrypted_size(logical, 1000) == raw
    assert logical_size(raw, 1000) == logical


@pytest.mark.parametrize("raw", [1, 16, 1016 + 16])
def test_sizes_no_file_of_blocks_has(raw: int) -> None:
    assert logical_size(raw, 1000) is None


def _key() -> EncryptionKey:
    return EncryptionKey(os.urandom(32))


def test_fdb_files_are_blocks_of_ciphertext_and_tag_fdb_can_decrypt(tmp_path: Path) -> None:
    """The stored bytes of a range file, decrypted block by block with AESGCM and FDB's IVs."""
    key = os.urandom(32)
    c = EncryptedContainer(LocalContainer(str(tmp_path)), FileCipher(EncryptionKey(key), 1000))
    data = os.urandom(2500)
    c.write(RANGE, data)
    raw = (tmp_path / RANGE).read_bytes()
    assert len(raw) == 2 * 1016 + 500 + 16
    blocks = [raw[i : i + 1016] for i in range(0, len(raw), 1016)]
    salt = fdb_salt(RANGE)
    plain = b"".join(AESGCM(key).decrypt(fdb_iv(salt, i), b, None) for i, b in enumerate(blocks))
    assert plain == data


def test_pieces_of_any_size_encrypt_like_one_write() -> None:
    cipher, prefix = FileCipher(_key(), 1000), iv_prefix(b"x")
    data = os.urandom(7777)
    whole, pieces = io.BytesIO(), io.BytesIO()
    one = BlockSealer(cipher, prefix, whole)
    one.write(data)
    one.finish()
    many = BlockSealer(cipher, prefix, pieces)
    for at in range(0, len(data), 333):
        many.write(data[at : at + 333])
    many.finish()
    assert whole.getvalue() == pieces.getvalue() and many.logical_bytes == len(data)


@pytest.fixture
def sealed(tmp_path: Path) -> EncryptedContainer:
    return EncryptedContainer(LocalContainer(str(tmp_path)), FileCipher(_key(), 1000))


def _refused(c: EncryptedContainer, path: str) -> str:
    with pytest.raises(errors.RestoreCorruptedData) as info:
        c.read(path)
    assert KEY_HINT in info.value.message
    return info.value.message


@pytest.mark.parametrize("path", [RANGE, LOG, SST])
def test_a_flipped_byte_in_any_block_is_named(sealed: EncryptedContainer, tmp_path: Path, path: str) -> None:
    sealed.write(path, os.urandom(3000))
    stored = tmp_path / path
    for at in (0, NONCE_SIZE + 1020, len(stored.read_bytes()) - 1):
        raw = bytearray(stored.read_bytes())
        raw[at] ^= 0x40
        stored.write_bytes(bytes(raw))
        _refused(sealed, path)
        raw[at] ^= 0x40
        stored.write_bytes(bytes(raw))
    assert len(sealed.read(path)) == 3000


def test_truncation_inside_the_last_block_is_named(sealed: EncryptedContainer, tmp_path: Path) -> None:
    sealed.write(RANGE, os.urandom(2500))
    stored = tmp_path / RANGE
    stored.write_bytes(stored.read_bytes()[:-5])
    assert "block 2" in _refused(sealed, RANGE)
    stored.write_bytes(stored.read_bytes()[: 2 * 1016 + 10])  # a last block shorter than its tag
    with pytest.raises(errors.RestoreCorruptedData):
        sealed.size(RANGE)
    _refused(sealed, RANGE)


def test_a_block_from_another_file_or_position_is_named(sealed: EncryptedContainer, tmp_path: Path) -> None:
    other = RANGE.replace("range,100,", "range,101,")
    sealed.write(RANGE, os.urandom(3000))
    sealed.write(other, os.urandom(3000))
    a, b = (bytearray((tmp_path / p).read_bytes()) for p in (RANGE, other))
    a[1016:2032], b[1016:2032] = b[1016:2032], a[1016:2032]  # block 1 swapped between the files
    (tmp_path / RANGE).write_bytes(bytes(a))
    assert "block 1" in _refused(sealed, RANGE)
    a[0:1016], a[1016:2032] = a[1016:2032], a[0:1016]  # and two blocks of one file reordered
    (tmp_path / RANGE).write_bytes(bytes(a))
    _refused(sealed, RANGE)


def test_another_key_cannot_read(tmp_path: Path) -> None:
    EncryptedContainer(LocalContainer(str(tmp_path)), FileCipher(_key(), 1000)).write(RANGE, b"secret data")
    _refused(EncryptedContainer(LocalContainer(str(tmp_path)), FileCipher(_key(), 1000)), RANGE)


def test_our_files_get_a_fresh_nonce_per_write_and_are_bound_to_their_path(
    sealed: EncryptedContainer, tmp_path: Path
) -> None:
    """Our names repeat (<v>-data.sst in every task folder; a re-run task rewrites its folder), so each
    write draws a nonce: the same plaintext written twice never reuses an IV, and a file moved to
    another name does not decrypt there."""
    assert naming.sealing(SST) == naming.Sealing.NONCED
    sealed.write(SST, b"same plaintext" * 100)
    first = (tmp_path / SST).read_bytes()
    sealed.write(SST, b"same plaintext" * 100)
    second = (tmp_path / SST).read_bytes()
    assert first[:NONCE_SIZE] != second[:NONCE_SIZE] and first[NONCE_SIZE:] != second[NONCE_SIZE:]
    moved = SST.replace("/0/", "/1/")
    (tmp_path / moved).parent.mkdir(parents=True)
    (tmp_path / moved).write_bytes(second)
    _refused(sealed, moved)


def test_which_files_are_encrypted_and_how() -> None:
    assert naming.sealing("properties/encryption_metadata") == naming.Sealing.PLAIN
    for fdb in (RANGE, LOG, "snapshots/snapshot,1,2,3", "snapshots/snapshot,1,2,3,bulk"):
        assert naming.sealing(fdb) == naming.Sealing.FDB, fdb
    for ours in (SST, naming.log_checksum_path(LOG), "bulkdump_data/x/job-manifest.txt"):
        assert naming.sealing(ours) == naming.Sealing.NONCED, ours


def test_key_file_errors(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(os.urandom(31))
    for path, why in ((tmp_path / "none.key", "does not exist"), (tmp_path, "cannot be read"), (short, "31 bytes")):
        with pytest.raises(errors.InvalidEncryptionKeyFile) as info:
            read_key_file(str(path))
        assert why in info.value.message and info.value.code == 2383
    longer = tmp_path / "long.key"
    longer.write_bytes(b"k" * 32 + b"\n")  # FDB reads the first 32 bytes
    assert read_key_file(str(longer)).check_value == EncryptionKey(b"k" * 32).check_value


def test_the_key_never_travels(tmp_path: Path) -> None:
    key_bytes = os.urandom(32)
    path = tmp_path / "k"
    path.write_bytes(key_bytes)
    settings = EncryptionSettings.of(str(path), 4096)
    shown = repr(settings) + str(settings.to_wire()) + pickle.dumps(settings).hex()
    for form in (key_bytes.hex(), key_bytes.hex().upper()):
        assert form not in shown
    assert key_bytes not in pickle.dumps(settings)
    key = read_key_file(str(path))
    assert "redacted" in repr(key)
    for secret in (key, settings.cipher()):
        with pytest.raises(TypeError):
            pickle.dumps(secret)


def test_a_key_file_holding_another_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(os.urandom(32))
    settings = EncryptionSettings.of(str(path), 4096)
    assert settings.cipher().block_size == 4096
    path.write_bytes(os.urandom(32))  # another agent's copy of "the same" file
    with pytest.raises(errors.InvalidEncryptionKeyFile, match="different key"):
        settings.cipher()
    assert EncryptionSettings.from_wire(settings.to_wire()) == settings


@pytest.mark.parametrize("size", [0, -1, 2**31])
def test_block_size_must_be_a_positive_int32(tmp_path: Path, size: int) -> None:
    (tmp_path / "k").write_bytes(os.urandom(32))
    with pytest.raises(errors.InvalidOptionValue, match="Invalid encryption block size"):
        EncryptionSettings.of(str(tmp_path / "k"), size)
