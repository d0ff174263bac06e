"""A container that encrypts every file but ``properties/`` on its way in and decrypts it on its way out.

Callers see plaintext: logical sizes in ``size``/``list``, reads at logical offsets (mapped onto whole
encrypted blocks, each authenticated before a byte of it is returned), and streaming writes, uploads,
moves and downloads. Which files are encrypted, and how, is :func:`fdbcore.naming.sealing`'s
decision; the blocks are :mod:`fdbcore.encryption`'s. The inner container moves ciphertext only.

Large files never take a Python step per small piece: writes go a whole block at a time through
AES-GCM. A local file moved in is encrypted where it lies and then moved as it is, so the inner
container still renames it into place, or uploads its parts to S3 in parallel (downloads likewise).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from fdbcore import errors
from fdbcore.container.base import BackupContainer, ContainerWriter, FileInfo
from fdbcore.container.local import LocalContainer, copy_pieces, write_pieces
from fdbcore.encryption import (
    NONCE_SIZE,
    TAG_SIZE,
    BlockSealer,
    FileCipher,
    fdb_salt,
    iv_prefix,
    logical_size,
    nonced_salt,
)
from fdbcore.naming import Sealing, local_temp_path, sealing

#: Local files are encrypted and decrypted in pieces of about this size (whole blocks).
_CHUNK = 8 << 20

RawRead = Callable[[int, int | None], bytes]


class EncryptedContainer(BackupContainer):
    """``inner``'s files, with file-level encryption under ``cipher``."""

    def __init__(self, inner: BackupContainer, cipher: FileCipher) -> None:
        self.inner = inner
        self.cipher = cipher

    @property
    def url(self) -> str:
        return self.inner.url

    def create(self) -> None:
        self.inner.create()

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def delete(self, path: str) -> None:
        self.inner.delete(path)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)

    def destroy(self) -> int:
        return self.inner.destroy()

    # --- sizes ------------------------------------------------------------------------------------
    def _logical(self, path: str, raw: int) -> int | None:
        how = sealing(path)
        if how == Sealing.PLAIN:
            return raw
        header = NONCE_SIZE if how == Sealing.NONCED else 0
        return None if raw < header else logical_size(raw - header, self.cipher.block_size)

    def size(self, path: str) -> int:
        raw = self.inner.size(path)
        logical = self._logical(path, raw)
        if logical is None:
            raise errors.RestoreCorruptedData(
                f"{path} is {raw} bytes, which no encrypted file of {self.cipher.block_size}-byte blocks is "
                "(it was cut short)"
            )
        return logical

    def list(self, prefix: str = "") -> Iterator[FileInfo]:
        """Logical sizes; a file cut short is listed at the size of its whole blocks (reading it fails)."""
        full = self.cipher.raw_block_size
        for info in self.inner.list(prefix):
            logical = self._logical(info.path, info.size)
            yield FileInfo(info.path, logical if logical is not None else info.size // full * self.cipher.block_size)

    # --- reads ------------------------------------------------------------------------------------
    @staticmethod
    def _iv(path: str, nonce: bytes | None) -> bytes:
        """The IV prefix of ``path``: FDB's (no nonce) or ours, from the nonce the file starts with."""
        if nonce is None:
            return iv_prefix(fdb_salt(path))
        if len(nonce) < NONCE_SIZE:
            raise errors.RestoreCorruptedData(f"{path} is cut short: it lacks its {NONCE_SIZE}-byte nonce")
        return iv_prefix(nonced_salt(path, nonce))

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        how = sealing(path)
        if how == Sealing.PLAIN:
            return self.inner.read(path, offset, length)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length}")
        if length == 0:
            self.size(path)  # still report a missing file
            return b""
        bs, raw_bs = self.cipher.block_size, self.cipher.raw_block_size
        first = offset // bs
        count = None if length is None else (offset + length - 1) // bs - first + 1
        want = None if count is None else count * raw_bs
        nonce: bytes | None = None
        if how == Sealing.NONCED and first == 0:  # the nonce and the blocks in one request
            raw = self.inner.read(path, 0, None if want is None else NONCE_SIZE + want)
            nonce, body = raw[:NONCE_SIZE], memoryview(raw)[NONCE_SIZE:]
        else:
            if how == Sealing.NONCED:
                nonce = self.inner.read(path, 0, NONCE_SIZE)
            header = 0 if nonce is None else NONCE_SIZE
            body = memoryview(self.inner.read(path, header + first * raw_bs, want))
        plain = b"".join(self.cipher.open_blocks(self._iv(path, nonce), first, body, path))
        start = offset - first * bs
        return plain[start:] if length is None else plain[start : start + length]

    def _plain_chunks(self, path: str, read: RawRead) -> Iterator[memoryview]:
        """The file's plaintext in whole-block pieces, from a raw reader of the whole file. Each piece is
        a view of one reused buffer, valid until the next is asked for."""
        nonce = read(0, NONCE_SIZE) if sealing(path) == Sealing.NONCED else None
        prefix = self._iv(path, nonce)
        blocks = max(1, _CHUNK // self.cipher.block_size)
        step = blocks * self.cipher.raw_block_size
        out = memoryview(bytearray(blocks * self.cipher.block_size))
        at, first = 0 if nonce is None else NONCE_SIZE, 0
        while True:
            raw = read(at, step)
            if raw:
                yield out[: self.cipher.open_into(prefix, first, raw, out, path)]
            if len(raw) < step:
                return
            at, first = at + step, first + blocks

    @contextlib.contextmanager
    def _raw_reader(self, path: str, near: str) -> Iterator[RawRead]:
        """Ranged reads of the stored file: straight from a local container, else from a copy downloaded
        (in parallel parts) beside ``near`` and removed afterwards."""
        if isinstance(self.inner, LocalContainer):
            yield lambda offset, length: self.inner.read(path, offset, length)
            return
        copy = local_temp_path(near)
        try:
            self.inner.download_file(path, copy)
            with open(copy, "rb") as f:
                yield lambda offset, length: _read_at(f, offset, length)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy)

    def sha256(self, path: str) -> str:
        """Of the plaintext; from a local container its blocks are opened into one reused buffer."""
        if sealing(path) == Sealing.PLAIN:
            return self.inner.sha256(path)
        if not isinstance(self.inner, LocalContainer):
            return super().sha256(path)  # ranged reads: no local copy of a large file for one hash
        digest = hashlib.sha256()
        for piece in self._plain_chunks(path, lambda offset, length: self.inner.read(path, offset, length)):
            digest.update(piece)
        return digest.hexdigest()

    def download_file(self, path: str, local_path: str) -> None:
        if sealing(path) == Sealing.PLAIN:
            self.inner.download_file(path, local_path)
            return
        temp = local_temp_path(local_path)
        try:
            with self._raw_reader(path, local_path) as read, open(temp, "xb") as out:
                for piece in self._plain_chunks(path, read):
                    write_pieces(out, piece)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, local_path)
        except OSError as exc:
            raise errors.IoError(f"download {path} to {local_path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    # --- writes -----------------------------------------------------------------------------------
    def _sealer(self, path: str, sink: ContainerWriter) -> BlockSealer:
        """A sealer writing ``path``'s encrypted form into ``sink`` (a nonced file's nonce first)."""
        nonce = None
        if sealing(path) == Sealing.NONCED:
            nonce = os.urandom(NONCE_SIZE)
            sink.write(nonce)
        return BlockSealer(self.cipher, self._iv(path, nonce), sink)

    def open_write(self, path: str) -> ContainerWriter:
        if sealing(path) == Sealing.PLAIN:
            return self.inner.open_write(path)
        out = self.inner.open_write(path)
        try:
            return _SealedWriter(out, self._sealer(path, out))
        except BaseException:
            out.abort()
            raise

    def upload_file(self, path: str, local_path: str) -> None:
        if sealing(path) == Sealing.PLAIN:
            self.inner.upload_file(path, local_path)
            return
        if not os.path.isfile(local_path):
            raise errors.FileNotFound(f"upload from {local_path}: no such file")
        copy = local_temp_path(local_path)
        try:
            with open(local_path, "rb") as src, open(copy, "xb") as dst:
                copy_pieces(src, dst)
            self.move_file(path, copy)
        except OSError as exc:
            raise errors.IoError(f"upload from {local_path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy)

    def move_file(self, path: str, local_path: str) -> None:
        """Encrypt the local file where it lies, then hand it to the inner container (a local one
        renames it into place): no second copy of the file is written."""
        if sealing(path) == Sealing.PLAIN:
            self.inner.move_file(path, local_path)
            return
        try:
            self._seal_in_place(path, local_path)
        except FileNotFoundError:
            raise errors.FileNotFound(f"move from {local_path}: no such file") from None
        except OSError as exc:
            raise errors.IoError(f"encrypt {local_path}: {exc.strerror or exc}") from exc
        self.inner.move_file(path, local_path)

    def _seal_in_place(self, path: str, local_path: str) -> None:
        """Turn a local plaintext file into ``path``'s encrypted form in the same file.

        Blocks go last first: block ``i``'s ciphertext starts at or after its own plaintext and past
        the plaintext of every block before it, so nothing is overwritten before it is read."""
        nonce = os.urandom(NONCE_SIZE) if sealing(path) == Sealing.NONCED else None
        head = 0 if nonce is None else NONCE_SIZE
        prefix = self._iv(path, nonce)
        block, raw_block = self.cipher.block_size, self.cipher.raw_block_size
        plain, sealed = memoryview(bytearray(block)), memoryview(bytearray(raw_block))
        fd = os.open(local_path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            # Read last block first, the file would come off the disk a block at a time, with no
            # read-ahead (an SST just written is no longer cached: RocksDB's writer drops its pages).
            os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
            for index in reversed(range(-(-size // block))):
                n = min(block, size - index * block)
                if os.preadv(fd, [plain[:n]], index * block) != n:
                    raise errors.IoError(f"encrypt {local_path}: it changed size while being encrypted")
                self.cipher.seal_into(prefix, index, plain[:n], sealed[: n + TAG_SIZE])
                _pwrite_all(fd, sealed[: n + TAG_SIZE], head + index * raw_block)
            if nonce is not None:
                _pwrite_all(fd, memoryview(nonce), 0)
            os.fsync(fd)
        finally:
            os.close(fd)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _read_at(f: BinaryIO, offset: int, length: int | None) -> bytes:
    f.seek(offset)
    return f.read() if length is None else f.read(length)


class _SealedWriter(ContainerWriter):
    """Encrypts what is written, a block at a time, into the inner container's writer."""

    def __init__(self, out: ContainerWriter, sealer: BlockSealer) -> None:
        self._out = out
        self._sealer = sealer
        self._open = True

    def write(self, data: bytes | memoryview) -> None:
        if not self._open:
            raise errors.IoError("write to an encrypted file after it was finished or aborted")
        try:
            self._sealer.write(data)
        except BaseException:
            self.abort()
            raise

    @property
    def bytes_written(self) -> int:
        return self._sealer.logical_bytes

    def finish(self) -> None:
        if not self._open:
            raise errors.IoError("finish of an encrypted file after it was finished or aborted")
        self._open = False
        try:
            self._sealer.finish()
        except BaseException:
            self._out.abort()
            raise
        self._out.finish()

    def abort(self) -> None:
        self._open = False
        self._out.abort()
