"""Reading the data directory from other processes, in parallel, at a consistent committed state.

rocksdict iterators ignore RocksDB snapshots, so a worker process cannot scan "as of version V" on the
primary. It opens the data directory as a RocksDB *secondary* instance instead: after
``try_catch_up_with_primary()`` the secondary is frozen at some point of the primary's write-ahead
log until the next catch-up, and because every commit is one write batch that also records the
last-committed version, that point is a whole commit. Reading the version from ``meta`` and then
scanning the data therefore gives the range exactly as of that version. This is how shards are
scanned in parallel, and how BulkDump reads its batches.

A BulkLoad changes the primary in two steps (a clearing commit, then an SST ingest outside the
write-ahead log); a catch-up that lands between them would pair the new version with a half-done
range, so :meth:`SecondaryView.catch_up` catches up again until no ingest is in progress.

Worker processes are started with the ``spawn`` method: the server holds RocksDB handles, threads and
gRPC state that must not be copied into a forked child.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from embedded_cluster.distribution import Measured, measure_pairs
from embedded_cluster.ingest import ingest_pending
from embedded_cluster.rocks import META_CF, ChunkedScan, open_secondary, read_committed_version, scan
from fdbcore import errors
from fdbcore.cluster.checksum import RangeDigest

log = logging.getLogger(__name__)

SECONDARY_DIRNAME = "secondary"
#: Pairs per chunk of a scan read in a worker process.
SCAN_CHUNK = 1024
#: How long a catch-up waits for an ingest on the primary to finish (it holds the commit lock).
INGEST_WAIT_SECONDS = 120.0

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
        deadline = time.monotonic() + INGEST_WAIT_SECONDS
        while True:
            try:
                self._db.try_catch_up_with_primary()
            except Exception as exc:
                raise errors.IoError(f"secondary instance could not catch up with the primary: {exc}") from exc
            meta = self._db.get_column_family(META_CF)
            try:
                self.version = read_committed_version(meta)
                pending = ingest_pending(meta)
            finally:
                meta.close()
            if not pending:
                return self.version
            if time.monotonic() > deadline:
                raise errors.IoError(f"an ingest into {pending[0]} has not finished in {INGEST_WAIT_SECONDS:g} s")
            time.sleep(0.01)

    def scan(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        return scan(self._db, begin, end)

    def chunked_scan(self, begin: bytes, end: bytes) -> ChunkedScan:
        """A fast scan of ``[begin, end)``; valid until the next :meth:`catch_up`."""
        return ChunkedScan(self._db, begin, end)

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


_process_views: dict[Path, SecondaryView] = {}


def process_view(data_dir: Path) -> SecondaryView:
    """This process's own secondary instance of ``data_dir``, caught up; for worker processes.

    Opening a secondary replays the primary's write-ahead log (a fifth of a second for 100 MB, which
    would dominate a shard's dump), while catching up again replays only what is new. So a worker
    keeps one open for its lifetime; it runs one task at a time, so the view is never shared.
    """
    view = _process_views.get(data_dir)
    if view is not None:
        try:
            view.catch_up()
            return view
        except errors.IoError:
            del _process_views[data_dir]
            view.close()
    view = _process_views[data_dir] = SecondaryView(data_dir)
    atexit.register(view.close)
    return view


def _warm_up(data_dir: str, modules: Sequence[str]) -> None:
    process_view(Path(data_dir))
    for name in modules:
        importlib.import_module(name)
    time.sleep(0.2)  # hold this worker so the pool hands the next warm-up to another process


#: Seconds between a worker process's checks that the server that started it is still alive.
PARENT_CHECK_SECONDS = 1.0
#: How much lower than the server's a worker process's CPU priority is (``nice`` increment).
WORKER_NICE = 10


def _start_worker(parent: int) -> None:
    """Pool initializer: run below the server's priority, and end this worker once its server is gone.

    Worker processes do background work (dumps, a load's staging, shard counts); on a busy machine the
    server's request threads, which a live cluster's workload waits on, come first. A server killed
    with ``kill -9`` cannot shut its pool down, and the workers never see end-of-file on the task queue
    (each holds the queue's write end too), so without the watch they would outlive it forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    os.nice(WORKER_NICE)


def clear_secondaries(data_dir: Path) -> None:
    """Remove the folders of secondary instances that processes of an earlier server left behind."""
    shutil.rmtree(data_dir / SECONDARY_DIRNAME, ignore_errors=True)


def measure_shard(data_dir: str, begin: bytes, end: bytes, estimate: int) -> Measured:
    """Worker-process entry point: a shard's bytes and midpoint at the latest committed version (see
    :meth:`DataDistributor.split_oversized`), read without holding up the server's commits."""
    scan = process_view(Path(data_dir)).chunked_scan(begin, end)
    return measure_pairs(iter(partial(scan.next_chunk, SCAN_CHUNK), []), begin, estimate)


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
    view = process_view(Path(data_dir))
    digest = RangeDigest()
    digest.update(view.scan(begin, end))
    return ShardDigest(begin, end, view.version, digest.keys, digest.bytes, digest.hexdigest())


def range_bytes(data_dir: str, begin: bytes, end: bytes) -> int:
    """Worker-process entry point: bytes (keys plus values) in ``[begin, end)`` at the latest committed
    version, counted away from the server's interpreter (an ingest's shard accounting)."""
    return sum(len(k) + len(v) for k, v in process_view(Path(data_dir)).scan(begin, end))


class WorkerPool:
    """Worker processes for CPU- and IO-heavy scans, started lazily with ``spawn``."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., R], *args: object) -> Future[R]:
        """Run ``fn(*args)`` in a worker process. If one of them died (the kernel's OOM killer, a stray
        ``kill``), the pool it belonged to is unusable: the calls it was running fail with
        ``BrokenProcessPool`` (``broken_promise`` to the caller, who may retry) and a new pool takes
        this call and the ones after it."""
        with self._lock:
            if self._executor is not None:
                try:
                    return self._executor.submit(fn, *args)
                except BrokenProcessPool:
                    log.warning("a worker process of this server died; starting new worker processes")
                    self._executor.shutdown(wait=True, cancel_futures=True)  # reaps the dead one
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
            )
            return self._executor.submit(fn, *args)

    def warm(self, data_dir: Path, modules: Sequence[str] = ()) -> None:
        """Start every worker process, open its secondary instance and import ``modules`` now, so the
        first BulkDump or BulkLoad after a server start does not pay for process start-up, the
        write-ahead-log replay and the imports (65 ms for the BulkLoad path, inside a 1M-key load's
        150 ms snapshot phase)."""
        futures = [self.submit(_warm_up, str(data_dir), tuple(modules)) for _ in range(self.processes)]
        for f in futures:
            try:
                f.result()
            except Exception:  # a warm-up is an optimization: the task that needs a view opens it again
                log.warning("warming a BulkDump worker failed", exc_info=True)

    def map(self, fn: Callable[..., R], calls: Sequence[tuple[object, ...]]) -> list[R]:
        futures = [self.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
