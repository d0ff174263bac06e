"""The backup container contract: a flat namespace of immutable files under one root.

Paths are container-relative, ``/``-separated, without a leading slash (``kvranges/snapshot.../range,...``).
Backends move bytes and nothing else; which names mean what is decided by :mod:`fdbcore.naming`.

Contract (the contract test suite in ``tests/container`` runs it against every backend):

- A file becomes visible only when it is complete; a failed or aborted write leaves nothing behind.
- Writing an existing path replaces it as a whole.
- ``list`` returns every complete file under a prefix, in lexicographic path order, and never an
  unfinished one; listings of any length are complete (pagination is the backend's business).
- Missing files raise :class:`fdbcore.errors.FileNotFound`; any other failure raises an
  :class:`fdbcore.errors.FDBError`, never returns a partial or empty result.
- No path is also a folder of another path (``a/b`` and ``a/b/c``): a file system cannot hold both,
  and FDB's layout never needs it.
- Paths that could leave the root (absolute, ``..``, ``.`` or empty components) raise
  :class:`fdbcore.errors.ClientInvalidOperation`; see :func:`check_path`.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from fdbcore.errors import ClientInvalidOperation, IoError

#: Whole-file reads (:meth:`BackupContainer.sha256`) ask for pieces of this size: bounded memory, few requests.
READ_PIECE = 8 << 20


def check_path(path: str, *, prefix: bool = False) -> str:
    """Return ``path`` if it is a container-relative path, else raise ``client_invalid_operation``.

    With ``prefix``, ``path`` may also be empty or end in ``/`` (a listing prefix).
    Paths can come from manifests read back from storage, so every backend checks them.
    """
    parts = path.split("/")
    if prefix:
        parts = parts[:-1]  # the last component of a prefix may be empty or partial
    if "\0" in path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ClientInvalidOperation(f"invalid container path {path!r}")
    return path


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int


class ContainerWriter(ABC):
    """A file being written. Data becomes visible only on :meth:`finish`."""

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` (copied: the caller may reuse its buffer afterwards)."""

    @property
    @abstractmethod
    def bytes_written(self) -> int: ...

    @abstractmethod
    def finish(self) -> None:
        """Make the file visible, complete, under its final name."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written; idempotent."""

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()


class BackupContainer(ABC):
    """One backup's storage root: a local directory or an S3 prefix."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The container URL with any secret redacted; safe to log and display."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @abstractmethod
    def create(self) -> None:
        """Make sure the container exists (directory, or bucket and index object); idempotent."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def size(self, path: str) -> int: ...

    @abstractmethod
    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes ``[offset, offset + length)`` of a file (to its end when ``length`` is None).

        Reading past the end returns the bytes that exist; callers that need an exact length check it.
        """

    def sha256(self, path: str) -> str:
        """SHA-256 of a whole file, read in pieces; ``io_error`` if it changes size meanwhile."""
        digest = hashlib.sha256()
        size = self.size(path)
        for offset in range(0, size, READ_PIECE):
            want = min(READ_PIECE, size - offset)
            piece = self.read(path, offset, want)
            if len(piece) != want:
                raise IoError(f"{path} changed size while being read")
            digest.update(piece)
        return digest.hexdigest()

    @abstractmethod
    def open_write(self, path: str) -> ContainerWriter: ...

    def write(self, path: str, data: bytes) -> None:
        """Write a whole file atomically."""
        with self.open_write(path) as w:
            w.write(data)

    @abstractmethod
    def upload_file(self, path: str, local_path: str) -> None:
        """Copy a local file into the container (large files: multipart/parallel)."""

    def move_file(self, path: str, local_path: str) -> None:
        """Like :meth:`upload_file`, but the local file is consumed (a backend may rename it)."""
        self.upload_file(path, local_path)
        os.unlink(local_path)

    @abstractmethod
    def download_file(self, path: str, local_path: str) -> None:
        """Copy a file out of the container to a local path, completely or not at all."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[FileInfo]:
        """Every complete file whose path starts with ``prefix``, sorted by path."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete one file; deleting a missing file is not an error."""

    def destroy(self) -> int:
        """Delete the whole backup (every file, and any marker of its existence); returns the file count."""
        return self.delete_prefix("")

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file under ``prefix``; returns how many were deleted."""
        n = 0
        for info in list(self.list(prefix)):
            self.delete(info.path)
            n += 1
        return n
