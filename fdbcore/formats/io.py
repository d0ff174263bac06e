"""Where format readers get bytes from and where writers put them.

Readers never load a whole file: they ask a :class:`ByteSource` for one block at a time. Every source
checks the length it got back, because a short read that went unnoticed would silently drop the tail
of a block (FDB's ``restore_bad_read``). Writers take any :class:`Sink` (a ``ContainerWriter``, a
``BytesIO``, an open file) and hand it whole blocks.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Protocol

from fdbcore import errors
from fdbcore.container.base import BackupContainer


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class HashingSink:
    """A sink that passes every write on and keeps the SHA-256 of all of it (what the backup records)."""

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._sha = hashlib.sha256()

    def write(self, data: bytes, /) -> object:
        self._sha.update(data)
        return self._out.write(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class ByteSource(ABC):
    """A readable file of known size; :meth:`read` returns exactly the bytes asked for or raises."""

    name: str

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def _read(self, offset: int, length: int) -> bytes: ...

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise errors.RestoreBadRead(
                f"{self.name}: {length} bytes at offset {offset} lie outside the file ({self.size} bytes)"
            )
        data = self._read(offset, length)
        if len(data) != length:
            raise errors.RestoreBadRead(
                f"{self.name}: short read, got {len(data)} of {length} bytes at offset {offset}"
            )
        return data

    def blocks(self, block_size: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, bytes)`` of each block; the last one may be short (it is never padded)."""
        for offset in range(0, self.size, block_size):
            yield offset, self.read(offset, min(block_size, self.size - offset))


class BytesSource(ByteSource):
    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self._data = data
        self.name = name

    @property
    def size(self) -> int:
        return len(self._data)

    def _read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


class LocalFileSource(ByteSource):
    """A local file; the size is taken once, so a file that shrinks later gives a bad read, not less data."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self._size = os.path.getsize(self.path)

    @property
    def size(self) -> int:
        return self._size

    def _read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length)


class ContainerSource(ByteSource):
    """One file of a backup container, read by ranged reads."""

    def __init__(self, container: BackupContainer, path: str) -> None:
        self._container = container
        self.path = path
        self.name = path
        self._size: int | None = None

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self._container.size(self.path)
        return self._size

    def _read(self, offset: int, length: int) -> bytes:
        return self._container.read(self.path, offset, length)
