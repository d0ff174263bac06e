"""The data directory's RocksDB as the primary and its secondary instances both read it.

Column families:

- ``default``: the key-value data, user keys ``['', '\\xff')`` and system keys under ``\\xff``;
- ``meta``: the last committed version (with its wall time), the shard map, log captures, range locks,
  ingest markers, the timekeeper and the knobs the server last started with;
- ``mlog``: retained mutation-log entries (see :mod:`.mutation_log`).

What is here is shared by the server's primary (:mod:`.store`) and the worker processes' secondary
instances (:mod:`.secondary`), which is why it stands apart from the commit path.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import cast

from rocksdict import AccessType, DBCompressionType, Env, Options, Rdict, ReadOptions

from embedded_cluster.versions import decode_version_record
from fdbcore import errors
from fdbcore.keys import key_after, printable

META_CF = "meta"
MLOG_CF = "mlog"
DB_DIRNAME = "db"
#: ``meta`` key of the last committed version and its wall time, written by every commit.
VERSION_KEY = b"version"


def rocksdb_options() -> Options:
    """Raw-mode options (plain RocksDB bytes, readable by other tools and by SST ingestion)."""
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    opts.set_compression_type(DBCompressionType.lz4())
    opts.set_max_background_jobs(4)
    # Compactions (RocksDB's low-priority pool) run at the lowest CPU priority, on time the server's
    # requests leave: a BulkLoad's ingest sets off compactions of hundreds of megabytes at once, which
    # would otherwise take both cores from a live cluster's workload. Flushes keep their priority.
    env = Env()
    env.lower_thread_pool_cpu_priority()
    opts.set_env(env)
    return opts


def column_families() -> dict[str, Options]:
    return {META_CF: Options(raw_mode=True), MLOG_CF: Options(raw_mode=True)}


def open_secondary(data_dir: Path, secondary_dir: Path) -> Rdict:
    """Open the data directory as a RocksDB secondary instance (read-only, catches up on demand)."""
    opts = Options(raw_mode=True)
    opts.set_max_open_files(-1)  # required by secondary instances
    return Rdict(
        str(data_dir / DB_DIRNAME),
        opts,
        column_families=column_families(),
        access_type=AccessType.secondary(str(secondary_dir)),
    )


def read_committed_version(meta: Rdict) -> int:
    raw = meta.get(VERSION_KEY)
    return decode_version_record(raw)[0] if raw is not None else 0


class RangeIterator:
    """A RocksDB iterator over ``[begin, end)``, pinned to the database state at its creation.

    It owns its ``ReadOptions``: rocksdict iterators keep only a pointer to the iterate bounds, and
    once the options object is freed the bounds dangle (the iterator then silently returns nothing
    or garbage), so the options must live as long as the iterator.
    """

    def __init__(self, db: Rdict, begin: bytes, end: bytes) -> None:
        self.begin, self.end = begin, end
        self._opts = ReadOptions()
        self._opts.set_iterate_lower_bound(begin)
        self._opts.set_iterate_upper_bound(end)
        self._it = db.iter(self._opts)

    def pairs(self, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """The pairs in key order (descending when ``reverse``), then a status check: RocksDB
        iterators stop quietly on corruption and only ``status()`` tells."""
        it = self._it
        if reverse:
            it.seek_for_prev(self.end)
            if it.valid() and it.key() >= self.end:
                it.prev()
            step = it.prev
        else:
            it.seek(self.begin)
            step = it.next
        while it.valid():
            yield it.key(), it.value()
            step()
        try:
            it.status()
        except Exception as exc:  # rocksdict raises plain Exception
            raise errors.IoError(f"RocksDB read failed: {exc}") from exc


def scan(db: Rdict, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The current pairs of ``[begin, end)`` (the iterator is created on first ``next``)."""
    yield from RangeIterator(db, begin, end).pairs()


def scan_chunks(db: Rdict, begin: bytes, end: bytes, size: int = 1024) -> Iterator[list[tuple[bytes, bytes]]]:
    """The current pairs of ``[begin, end)`` in lists of up to ``size``, iterated by RocksDB without a
    Python step per pair. Like every rocksdict iteration it may end quietly at a corrupt block and has
    no end-of-range proof (see :class:`ChunkedScan`): for estimates only, such as shard sizes."""
    opts = ReadOptions()  # referenced by the generator for the iterator's lifetime (see RangeIterator)
    opts.set_iterate_lower_bound(begin)
    opts.set_iterate_upper_bound(end)
    items = cast("Iterator[tuple[bytes, bytes]]", db.items(from_key=begin, read_opt=opts))
    while chunk := list(islice(items, size)):
        yield chunk


class ChunkedScan:
    """The pairs of ``[begin, end)`` in lists, read without a Python step per pair, for bulk readers.

    rocksdict's ``items()`` iterates in Rust (about twice as fast as stepping an iterator from Python)
    but, like every rocksdict iteration, ends quietly at a corrupt block and offers no ``status()``.
    So when it ends, a second iterator is positioned after the last pair returned: it must find
    nothing, and its ``status()`` must be clean. That proof holds only on a database that does not
    change meanwhile, such as a secondary instance between catch-ups; do not use this on the primary.
    """

    def __init__(self, db: Rdict, begin: bytes, end: bytes) -> None:
        self._db = db
        self.begin, self.end = begin, end
        self._opts = ReadOptions()  # owned for the iterator's lifetime (see RangeIterator)
        self._opts.set_iterate_lower_bound(begin)
        self._opts.set_iterate_upper_bound(end)
        # A bulk scan reads each block once: keep the cache for others (the stub omits the argument).
        self._opts.fill_cache(False)  # type: ignore[call-arg]
        # rocksdict's stubs type items() as a bare iterator of tuples; in raw mode they hold bytes.
        self._items = cast("Iterator[tuple[bytes, bytes]]", db.items(from_key=begin, read_opt=self._opts))
        self._last: bytes | None = None
        self.exhausted = False

    def next_chunk(self, size: int) -> list[tuple[bytes, bytes]]:
        """Up to ``size`` next pairs; an empty list once the range is exhausted (and proven so)."""
        if self.exhausted:
            return []
        chunk: list[tuple[bytes, bytes]] = list(islice(self._items, size))
        if chunk:
            self._last = chunk[-1][0]
        else:
            self.exhausted = True
            self._check_exhausted()
        return chunk

    def _check_exhausted(self) -> None:
        after = self.begin if self._last is None else key_after(self._last)
        probe = RangeIterator(self._db, after, self.end)
        for key, _ in probe.pairs():  # raises io_error on a bad status
            raise errors.IoError(
                f"RocksDB scan of [{printable(self.begin)}, {printable(self.end)}) stopped early before "
                f"{printable(key)}; the database may be corrupt"
            )
