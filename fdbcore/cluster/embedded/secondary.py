"""Reading the data directory from other processes, in parallel, at a consistent committed state.

rocksdict iterators ignore RocksDB snapshots, so a worker process cannot scan "as of version V" on the
primary. It opens the data directory as a RocksDB *secondary* instance instead: after
``try_catch_up_with_primary()`` the secondary is frozen at some point of the primary's write-ahead
log until the next catch-up, and because every commit is one write batch that also records the
last-committed version, that point is a whole commit. Reading the version from ``meta`` and then
scanning the data therefore gives the range exactly as of that version. This is how shards are
scanned in parallel (and how BulkDump will read its batches).

Worker processes are started with the ``spawn`` method: the server holds RocksDB handles, threads and
gRPC state that must not be copied into a forked child.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from fdbcore import errors
from fdbcore.cluster.checksum import RangeDigest
from fdbcore.cluster.embedded.storage import (
    META_CF,
    open_secondary,
    read_committed_version,
    scan,
)

SECONDARY_DIRNAME = "secondary"

R = TypeVar("R")


class SecondaryView:
    """A secondary instance frozen at one committed version (until :meth:`catch_up`)."""

    def __init__(self, data_dir: Path) -> None:
        root = data_dir / SECONDARY_DIRNAME
        root.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(dir=root))
        try:
            self._db = open_secondary(data_dir, self._dir)
        except Exception as exc:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise errors.IoError(f"cannot open {data_dir} as a secondary instance: {exc}") from exc
        self.version = 0
        self.catch_up()

    def catch_up(self) -> int:
        """Replay what the primary committed since; return the committed version now visible."""
        try:
            self._db.try_catch_up_with_primary()
        except Exception as exc:
            raise errors.IoError(f"secondary instance could not catch up with the primary: {exc}") from exc
        meta = self._db.get_column_family(META_CF)
        try:
            self.version = read_committed_version(meta)
        finally:
            meta.close()
        return self.version

    def scan(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        return scan(self._db, begin, end)

    def close(self) -> None:
        self._db.close()
        del self._db
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def secondary_view(data_dir: Path) -> Iterator[SecondaryView]:
    view = SecondaryView(data_dir)
    try:
        yield view
    finally:
        view.close()


@dataclass(frozen=True, slots=True)
class ShardDigest:
    begin: bytes
    end: bytes
    #: The committed version the digest describes.
    version: int
    keys: int
    bytes: int
    sha256: str


def digest_range(data_dir: str, begin: bytes, end: bytes) -> ShardDigest:
    """Worker-process entry point: the digest of ``[begin, end)`` at the latest committed version."""
    with secondary_view(Path(data_dir)) as view:
        digest = RangeDigest()
        digest.update(view.scan(begin, end))
        return ShardDigest(begin, end, view.version, digest.keys, digest.bytes, digest.hexdigest())


class WorkerPool:
    """Worker processes for CPU- and IO-heavy scans, started lazily with ``spawn``."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[..., R], calls: Sequence[tuple[object, ...]]) -> list[R]:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        futures = [self._executor.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
