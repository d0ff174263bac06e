"""FDB's file-level encryption (``fdbrpc/AsyncFileEncrypted.cpp``): the key, the block cipher, the IVs.

A file is cut into blocks of ``block_size`` plaintext bytes; each is stored as its AES-256-GCM
ciphertext followed by the 16-byte tag, without associated data, so block ``i`` starts at raw offset
``i * (block_size + 16)`` and the last block is its plaintext length plus 16. Block ``i``'s 16-byte IV
is ``high64(XXH3-128(salt))`` (little-endian) + the first 4 bytes of ``low64`` (little-endian) + ``i``
as a little-endian uint32. The salt is a file's base name up to its first ``.`` for FDB's own kinds
(range, log and snapshot files; :func:`fdbcore.naming.sealing` decides which files are which).

Files only this project writes (BulkDump SSTs and manifests, checksum records) start with a 16-byte
random nonce instead, and their salt is their container path and that nonce: their names repeat
(``<version>-data.sst`` in every task folder dumped at one version, and a re-run task rewrites its
folder), and GCM must never see one IV twice under a key.

Only :class:`EncryptionSettings` (the key file's path, the block size and a key check value) ever
leaves a process: in job records, task requests and cluster calls. The key itself is read from the
file by each process that needs it and lives only in :class:`FileCipher`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol

import xxhash
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fdbcore import errors

KEY_SIZE: Final = 32
TAG_SIZE: Final = 16
NONCE_SIZE: Final = 16
DEFAULT_BLOCK_SIZE: Final = 1 << 20
MAX_BLOCK_SIZE: Final = 2**31 - 1 - TAG_SIZE
#: FDB's "tagged" format (PR #13661: every block carries its GCM tag); recorded in
#: ``properties/encryption_metadata`` as ``format_version`` (FDB's planned property, #13751).
TAGGED_FORMAT: Final = 2
#: FDB's hint when a block does not authenticate (``fdbclient/BackupContainerFileSystem.cpp``).
KEY_HINT: Final = "Verify that backup and restore encryption keys match (if provided) or the data is corrupted"
_CHECK_LABEL: Final = b"fdbbr file-level encryption key check v1"
_MAX_BLOCKS: Final = 2**32


def _corrupt(name: str, detail: str) -> errors.FDBError:
    return errors.RestoreCorruptedData(f"Failed to read data from {name} ({detail}). {KEY_HINT}.")


# --- the key ----------------------------------------------------------------------------------------
class EncryptionKey:
    """32 raw key bytes; never printed, pickled into a task, or compared by value outside HMAC."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise errors.InvalidEncryptionKeyFile(f"an encryption key is {KEY_SIZE} bytes, not {len(key)}")
        self._key = key

    def __repr__(self) -> str:
        return "EncryptionKey(<redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an encryption key is never serialised; pass its key file's path")

    @property
    def check_value(self) -> str:
        """A non-secret fingerprint (HMAC-SHA256 of a fixed label, 16 bytes hex) that tells keys apart."""
        return hmac.new(self._key, _CHECK_LABEL, hashlib.sha256).hexdigest()[:32]

    def aead(self) -> AESGCM:
        return AESGCM(self._key)


def read_key_file(path: str) -> EncryptionKey:
    """The key in ``path``: its first 32 bytes, as FDB reads it; ``invalid_encryption_key_file`` (2383)
    when the file is missing, unreadable or shorter."""
    try:
        with open(path, "rb") as f:
            data = f.read(KEY_SIZE)
    except OSError as exc:
        why = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read: {exc.strerror or exc}"
        raise errors.InvalidEncryptionKeyFile(f"encryption key file {path} {why}") from None
    if len(data) < KEY_SIZE:
        raise errors.InvalidEncryptionKeyFile(
            f"encryption key file {path} holds {len(data)} bytes; the key is {KEY_SIZE} raw bytes "
            f"(make one with: openssl rand {KEY_SIZE} > {path})"
        )
    return EncryptionKey(data)


def check_block_size(block_size: int) -> int:
    """A usable ``--encryption-block-size`` (FDB: a positive int32), else ``invalid_option_value``."""
    if not 0 < block_size <= MAX_BLOCK_SIZE:
        raise errors.InvalidOptionValue(f"Invalid encryption block size '{block_size}'")
    return block_size


@dataclass(frozen=True, slots=True)
class EncryptionSettings:
    """What job records, tasks and cluster calls carry instead of the key (none of it is secret):
    where each process finds the key file, the block size, and the key's check value."""

    key_file: str
    block_size: int
    key_check: str

    @staticmethod
    def of(key_file: str, block_size: int) -> EncryptionSettings:
        """Settings for a key file read here (which proves it usable)."""
        key = read_key_file(key_file)
        return EncryptionSettings(os.path.abspath(key_file), check_block_size(block_size), key.check_value)

    def cipher(self) -> FileCipher:
        """The cipher, from this process's own copy of the key file; a file holding another key than
        the one the job was started with is refused, so nothing is written or loaded with it."""
        key = read_key_file(self.key_file)
        if not hmac.compare_digest(key.check_value, self.key_check):
            raise errors.InvalidEncryptionKeyFile(
                f"encryption key file {self.key_file} on {os.uname().nodename} holds a different key than the "
                "one this backup or restore was started with; every agent and cluster server needs the same key "
                "file at that path"
            )
        return FileCipher(key, self.block_size)

    def to_wire(self) -> list[object]:
        return [self.key_file, self.block_size, self.key_check]

    @staticmethod
    def from_wire(raw: object) -> EncryptionSettings | None:
        if raw is None:
            return None
        if not (isinstance(raw, list | tuple) and len(raw) == 3):
            raise errors.InvalidOptionValue("encryption settings are [key_file, block_size, key_check]")
        key_file, block_size, key_check = raw
        if not (isinstance(key_file, str) and isinstance(block_size, int) and isinstance(key_check, str)):
            raise errors.InvalidOptionValue("encryption settings are [key_file, block_size, key_check]")
        return EncryptionSettings(key_file, check_block_size(block_size), key_check)


# --- sizes and IVs ----------------------------------------------------------------------------------
def raw_block_size(block_size: int) -> int:
    return block_size + TAG_SIZE


def logical_size(raw: int, block_size: int) -> int | None:
    """The plaintext size of ``raw`` encrypted bytes, or None when no file of blocks has that size."""
    full, trailing = divmod(raw, raw_block_size(block_size))
    if trailing and trailing <= TAG_SIZE:
        return None
    return full * block_size + (trailing - TAG_SIZE if trailing else 0)


def encrypted_size(logical: int, block_size: int) -> int:
    full, trailing = divmod(logical, block_size)
    return full * raw_block_size(block_size) + (trailing + TAG_SIZE if trailing else 0)


def fdb_salt(path: str) -> bytes:
    """FDB's salt: the base name up to its first ``.``."""
    return path.rpartition("/")[2].partition(".")[0].encode()


def nonced_salt(path: str, nonce: bytes) -> bytes:
    """The salt of a file this project alone writes: its container path and its random nonce."""
    return path.encode() + b"\0" + nonce


def iv_prefix(salt: bytes) -> bytes:
    """The first 12 IV bytes: XXH3-128's high 64 bits, then the first 4 bytes of its low 64 bits,
    each in little-endian (in-memory) order as FDB copies them."""
    digest = xxhash.xxh3_128_intdigest(salt)
    high, low = digest >> 64, digest & (2**64 - 1)
    return high.to_bytes(8, "little") + low.to_bytes(8, "little")[:4]


def block_iv(prefix: bytes, index: int) -> bytes:
    if not 0 <= index < _MAX_BLOCKS:
        raise errors.FileTooLarge(f"block {index} is past the 2**32 blocks an encrypted file can hold")
    return prefix + index.to_bytes(4, "little")


# --- the cipher -------------------------------------------------------------------------------------
class FileCipher:
    """The key (as an AES-GCM context) and the backup's block size."""

    __slots__ = ("_aead", "block_size", "key_check")

    def __init__(self, key: EncryptionKey, block_size: int) -> None:
        self._aead = key.aead()
        self.block_size = check_block_size(block_size)
        self.key_check = key.check_value

    def __repr__(self) -> str:
        return f"FileCipher(block_size={self.block_size})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a cipher holds the key and is never serialised; pass EncryptionSettings")

    @property
    def raw_block_size(self) -> int:
        return raw_block_size(self.block_size)

    def seal_into(self, prefix: bytes, index: int, block: bytes | bytearray | memoryview, out: memoryview) -> None:
        """Block ``index`` of a file, encrypted into ``out`` (its length + 16 bytes): ciphertext + tag."""
        self._aead.encrypt_into(block_iv(prefix, index), block, None, out)

    def open(self, prefix: bytes, index: int, raw: bytes | memoryview, name: str) -> bytes:
        """Authenticate and decrypt block ``index``; ``restore_corrupted_data`` with FDB's key hint if it fails."""
        if len(raw) <= TAG_SIZE:
            raise _corrupt(name, f"block {index} is cut short: {len(raw)} bytes")
        try:
            return self._aead.decrypt(block_iv(prefix, index), raw, None)
        except InvalidTag:
            raise _corrupt(name, f"block {index} does not authenticate") from None

    def open_into(self, prefix: bytes, first: int, raw: bytes | memoryview, out: memoryview, name: str) -> int:
        """Decrypt consecutive raw blocks starting at block ``first`` into ``out`` (no allocation per
        block); returns the plaintext length."""
        step = self.raw_block_size
        view, done = memoryview(raw), 0
        for n, at in enumerate(range(0, len(view), step)):
            block = view[at : at + step]
            if len(block) <= TAG_SIZE:
                raise _corrupt(name, f"block {first + n} is cut short: {len(block)} bytes")
            size = len(block) - TAG_SIZE
            try:
                self._aead.decrypt_into(block_iv(prefix, first + n), block, None, out[done : done + size])
            except InvalidTag:
                raise _corrupt(name, f"block {first + n} does not authenticate") from None
            done += size
        return done

    def open_blocks(self, prefix: bytes, first: int, raw: bytes | memoryview, name: str) -> Iterator[bytes]:
        """Decrypt consecutive raw blocks starting at block ``first`` (the last may be short)."""
        view = memoryview(raw)
        step = self.raw_block_size
        for n, at in enumerate(range(0, len(raw), step)):
            yield self.open(prefix, first + n, view[at : at + step], name)


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class BlockSealer:
    """Encrypts a stream into a sink, a whole block at a time: input arrives in pieces of any size and
    whole blocks of a large piece are encrypted straight from it (no copy through the buffer), into one
    reused output buffer (so the sink must not keep what it is given: files and container writers copy)."""

    def __init__(self, cipher: FileCipher, prefix: bytes, sink: Sink) -> None:
        self._cipher = cipher
        self._prefix = prefix
        self._sink = sink
        self._buf = bytearray()
        self._out = memoryview(bytearray(cipher.raw_block_size))
        self._block = 0
        self.logical_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = self._cipher.block_size
        self.logical_bytes += len(data)
        view = memoryview(data)
        if self._buf:
            take = min(size - len(self._buf), len(view))
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < size:
                return
            self._emit(self._buf)
            self._buf = bytearray()
        whole = len(view) - len(view) % size
        for at in range(0, whole, size):
            self._emit(view[at : at + size])
        self._buf += view[whole:]

    def _emit(self, block: bytes | bytearray | memoryview) -> None:
        out = self._out[: len(block) + TAG_SIZE]
        self._cipher.seal_into(self._prefix, self._block, block, out)
        self._sink.write(out)
        self._block += 1

    def finish(self) -> None:
        """Encrypt what is left (a short last block; nothing for a file of whole blocks)."""
        if self._buf:
            self._emit(self._buf)
            self._buf = bytearray()
