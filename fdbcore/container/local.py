"""A backup container in a local directory (``file:///abs/path``), laid out exactly as FDB's.

Files are written to ``<path>.<uid>.temp`` beside their final name, fsynced, and renamed into
place, so a reader (or a listing) sees either the whole file or nothing; listings hide ``.temp`` and
``.part`` names as ``BackupContainerLocalDirectory`` does. ``OSError`` becomes ``io_error`` (or
``file_not_found``) carrying the path.

Bytes go into local files in writes of at most :data:`WRITE_PIECE`. On the virtual machines this
project is measured on, writing a 116 MB file in 8 MB pieces took 0.28-0.37 s and in 128 KB pieces
0.025 s, in the same run (a download of an encrypted 116 MB SST: 0.34 s -> 0.075 s); the likely cause
is that a large write lets the kernel use large page-cache folios, taken from memory the host has not
backed yet.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from typing import BinaryIO

from fdbcore.container.base import BackupContainer, ContainerWriter, FileInfo, check_path
from fdbcore.container.url import FILE_SCHEME
from fdbcore.errors import FDBError, FileNotFound, IoError
from fdbcore.naming import is_partial_name, local_temp_path

# A path naming a directory, or running through a file, does not name a file.
_NOT_A_FILE = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
#: The largest single write into a local file (see the module docstring).
WRITE_PIECE = 128 << 10


def _io_error(exc: OSError, what: str, path: str) -> FDBError:
    return IoError(f"{what} {path}: {exc.strerror or exc}")


def _translate(exc: OSError, what: str, path: str) -> FDBError:
    """For reads: a path that names no file is ``file_not_found``, anything else ``io_error``."""
    if exc.errno in _NOT_A_FILE:
        return FileNotFound(f"{what} {path}: no such file")
    return _io_error(exc, what, path)


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(temp: str, final: str) -> None:
    """Atomically publish a finished, fsynced ``temp`` under ``final``."""
    os.replace(temp, final)
    _fsync_dir(os.path.dirname(final))


def _discard(temp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def write_pieces(f: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to a local file in writes of at most :data:`WRITE_PIECE`."""
    view = memoryview(data)
    for at in range(0, len(view), WRITE_PIECE):
        f.write(view[at : at + WRITE_PIECE])


def copy_pieces(fin: BinaryIO, fout: BinaryIO) -> None:
    """Copy the rest of one local file to another in pieces of :data:`WRITE_PIECE`."""
    shutil.copyfileobj(fin, fout, WRITE_PIECE)


def _walk(root: str, rel_dir: str, prefix: str, out: list[FileInfo]) -> None:
    """Collect the complete files under ``root/rel_dir`` whose relative path starts with ``prefix``."""
    try:
        entries = list(os.scandir(os.path.join(root, rel_dir)))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.is_dir(follow_symlinks=False):
            if rel.startswith(prefix) or prefix.startswith(f"{rel}/"):
                _walk(root, rel, prefix, out)
        elif rel.startswith(prefix) and not is_partial_name(entry.name) and entry.is_file():
            try:
                out.append(FileInfo(rel, entry.stat().st_size))
            except FileNotFoundError:  # deleted while we listed
                continue


class _LocalWriter(ContainerWriter):
    def __init__(self, final: str) -> None:
        self._final = final
        self._temp = local_temp_path(final)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            self._file: BinaryIO | None = open(self._temp, "xb")  # noqa: SIM115 - closed by finish/abort
        except OSError as exc:
            raise _io_error(exc, "create", final) from exc
        self._written = 0

    def write(self, data: bytes | memoryview) -> None:
        if self._file is None:
            raise IoError(f"write to {self._final} after it was finished or aborted")
        try:
            write_pieces(self._file, data)
        except OSError as exc:
            self.abort()
            raise _io_error(exc, "write", self._final) from exc
        self._written += len(data)

    @property
    def bytes_written(self) -> int:
        return self._written

    def finish(self) -> None:
        f = self._file
        if f is None:
            raise IoError(f"finish of {self._final} after it was finished or aborted")
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self._file = None
            _commit(self._temp, self._final)
        except OSError as exc:
            self.abort()
            raise _io_error(exc, "finish", self._final) from exc

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        _discard(self._temp)


class LocalContainer(BackupContainer):
    """A container rooted at an absolute local directory."""

    def __init__(self, root: str) -> None:
        self._root = root

    @property
    def url(self) -> str:
        return f"{FILE_SCHEME}{self._root}"

    def _full(self, path: str) -> str:
        return os.path.join(self._root, check_path(path))

    def create(self) -> None:
        try:
            os.makedirs(self._root, exist_ok=True)
        except OSError as exc:
            raise _io_error(exc, "create container", self._root) from exc

    def exists(self, path: str) -> bool:
        return os.path.isfile(self._full(path))

    def size(self, path: str) -> int:
        full = self._full(path)
        try:
            st = os.stat(full)
        except OSError as exc:
            raise _translate(exc, "stat", full) from exc
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFound(f"stat {full}: not a file")
        return st.st_size

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length}")
        full = self._full(path)
        try:
            with open(full, "rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
        except OSError as exc:
            raise _translate(exc, "read", full) from exc

    def sha256(self, path: str) -> str:
        """Hashed from the file into one reused buffer: reading pieces into new objects first would
        take two-thirds as long again as the hash itself."""
        full = self._full(path)
        try:
            with open(full, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                digest = hashlib.file_digest(f, "sha256")
                if f.tell() != size:
                    raise IoError(f"{full} changed size while being read")
        except OSError as exc:
            raise _translate(exc, "read", full) from exc
        return digest.hexdigest()

    def open_write(self, path: str) -> ContainerWriter:
        return _LocalWriter(self._full(path))

    def upload_file(self, path: str, local_path: str) -> None:
        try:
            with open(local_path, "rb") as src, self.open_write(path) as w:
                while chunk := src.read(WRITE_PIECE):
                    w.write(chunk)
        except OSError as exc:
            raise _translate(exc, "upload from", local_path) from exc

    def move_file(self, path: str, local_path: str) -> None:
        """Rename the file into place when it is on the same file system (no copy), else copy it."""
        final = self._full(path)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            with open(local_path, "rb") as f:
                os.fsync(f.fileno())
            _commit(local_path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise _translate(exc, "move from", local_path) from exc
            super().move_file(path, local_path)

    def download_file(self, path: str, local_path: str) -> None:
        src = self._full(path)
        try:
            fin = open(src, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _translate(exc, "download", src) from exc
        temp = local_temp_path(local_path)
        try:
            with fin, open(temp, "xb") as fout:
                copy_pieces(fin, fout)
                fout.flush()
                os.fsync(fout.fileno())
                expected = os.fstat(fin.fileno()).st_size
                if fout.tell() != expected:
                    raise IoError(f"download {src}: copied {fout.tell()} bytes of {expected}")
            _commit(temp, local_path)
        except BaseException as exc:
            _discard(temp)
            if isinstance(exc, OSError):
                raise IoError(f"download {src} to {local_path}: {exc.strerror or exc}") from exc
            raise

    def list(self, prefix: str = "") -> Iterator[FileInfo]:
        check_path(prefix, prefix=True)
        if os.path.exists(self._root) and not os.path.isdir(self._root):
            raise IoError(f"list {self._root}: the container root is not a directory")
        # Walk only the deepest directory the prefix fully names.
        start = prefix.rpartition("/")[0]
        found: list[FileInfo] = []
        try:
            _walk(self._root, start, prefix, found)
        except OSError as exc:
            raise _io_error(exc, "list", os.path.join(self._root, prefix)) from exc
        found.sort(key=lambda info: info.path)
        return iter(found)

    def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _io_error(exc, "delete", full) from exc
