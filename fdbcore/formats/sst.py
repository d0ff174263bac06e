"""BulkDump SST files: writing data files as FDB does, and reading them with corruption detection.

FDB writes SSTs with RocksDB's default options (bytewise comparator, and no compression in its build),
raw keys and values, keys strictly ascending; an SST cannot be empty, so an empty batch has no data
file (fdb-formats.md §4.4).

rocksdict has no SST reader, ingests corrupt SSTs without complaint, and its iterators stop silently at
a bad block. So a read ingests a hard link (or copy) of the file into a throwaway database and checks
the iterator's ``status()`` whenever iteration stops; any failure becomes ``file_corrupt`` naming the
file. Data streams out before the end of the file is verified: act on the KVs only once the iterator
is exhausted.

Byte samples: :func:`byte_sample_entries` computes FDB's ``<v>-sample.sst`` entries; writing that
file is optional because FDB's loader rebuilds the sample from the data file when it is absent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, starmap

from rocksdict import DBCompressionType, IngestExternalFileOptions, Options, Rdict, SstFileWriter

from fdbcore import errors
from fdbcore.formats.lookup3 import hashlittle2
from fdbcore.keys import KeyRange, printable

KV = tuple[bytes, bytes]
BYTE_SAMPLING_FACTOR = 250
BYTE_SAMPLING_OVERHEAD = 100
MIN_BYTE_SAMPLING_PROBABILITY = 0.0
_I64 = struct.Struct("<q")


def sst_options() -> Options:
    """What FDB writes SSTs with: raw keys and values, no compression."""
    opts = Options(raw_mode=True)
    opts.set_compression_type(DBCompressionType.none())
    return opts


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class SstFileInfo:
    path: str
    key_count: int
    total_bytes: int  # sum of key and value sizes, as the manifest's [Bytes]
    size: int
    sha256: str


class _GrowingFileHash:
    """SHA-256 of a file that another writer appends to, read in a thread as the file grows.

    RocksDB's SstFileWriter drops what it wrote from the page cache (its ``invalidate_page_cache``,
    which rocksdict cannot turn off), so hashing a finished SST reads it back from disk: in a busy
    BulkDump that wait was up to a fifth of each task. Reading behind the writer finds the pages still
    cached, and the hash (which releases the GIL) runs beside the writing."""

    _PIECE = 1 << 20
    _POLL_SECONDS = 0.002

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the thread
        self._digest = hashlib.sha256()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sst-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(self._PIECE)
        view = memoryview(buf)
        try:
            with self._file as f:
                while True:
                    finished = self._finished.is_set()  # before the read: a short read then means the end
                    n = f.readinto(buf)
                    if n:
                        self._digest.update(view[:n])
                    elif finished:
                        return
                    else:
                        self._finished.wait(self._POLL_SECONDS)
        except BaseException as exc:  # handed to hexdigest()'s caller
            self._error = exc

    def hexdigest(self) -> str:
        """The digest of the whole file; call once the writer has closed it."""
        self._finished.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def stop(self) -> None:
        self._finished.set()
        self._thread.join()


class SstWriter:
    """Streams KVs in strictly ascending key order into a new SST; the file is created on the first KV
    and hashed as it is written."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._writer: SstFileWriter | None = None
        self._hash: _GrowingFileHash | None = None
        self._last: bytes | None = None
        self.key_count = 0
        self.total_bytes = 0

    def add(self, key: bytes, value: bytes) -> None:
        self.add_many(((key, value),))

    def add_many(self, pairs: Sequence[KV], nbytes: int | None = None) -> None:
        """Add pairs in strictly ascending key order, such as a chunk of a RocksDB scan; ``nbytes`` is
        their keys' and values' size when the caller has summed it already.

        The pairs are handed to RocksDB without a Python step per pair (which would halve the speed of
        a dump); RocksDB's writer itself refuses a key that does not ascend.
        """
        if not pairs:
            return
        first = pairs[0][0]
        if self._last is not None and first <= self._last:
            raise errors.InternalError(
                f"SST keys must ascend strictly: {printable(first)} after {printable(self._last)}"
            )
        try:
            if self._writer is None:
                writer = SstFileWriter(options=sst_options())
                writer.open(self.path)
                self._writer = writer
                self._hash = _GrowingFileHash(self.path)
            deque(starmap(self._writer.__setitem__, pairs), maxlen=0)
        except Exception as exc:
            raise errors.IoError(f"cannot write SST file {self.path}: {exc}") from exc
        self._last = pairs[-1][0]
        self.key_count += len(pairs)
        self.total_bytes += sum(map(len, chain.from_iterable(pairs))) if nbytes is None else nbytes

    def finish(self) -> SstFileInfo | None:
        """Complete the file; None (and no file) when no KV was added."""
        if self._writer is None:
            return None
        assert self._hash is not None
        try:
            self._writer.finish()
            sha256 = self._hash.hexdigest()
        except Exception as exc:
            raise errors.IoError(f"cannot finish SST file {self.path}: {exc}") from exc
        self._writer = self._hash = None
        return SstFileInfo(self.path, self.key_count, self.total_bytes, os.path.getsize(self.path), sha256)

    def abort(self) -> None:
        """Drop a partly written file."""
        if self._hash is not None:
            self._hash.stop()
            self._hash = None
        if self._writer is not None:
            self._writer = None
            os.unlink(self.path)


def write_sst(path: str | os.PathLike[str], kvs: Iterable[KV]) -> SstFileInfo | None:
    w = SstWriter(path)
    try:
        for key, value in kvs:
            w.add(key, value)
    except BaseException:
        w.abort()
        raise
    return w.finish()


@dataclass(frozen=True, slots=True)
class SstStats:
    key_count: int
    total_bytes: int
    first_key: bytes | None
    last_key: bytes | None


def read_sst(
    path: str | os.PathLike[str],
    key_range: KeyRange | None = None,
    expected_key_count: int | None = None,
    expected_bytes: int | None = None,
    tmp_dir: str | None = None,
) -> Iterator[KV]:
    """KVs of an SST in key order, optionally only those in ``key_range``.

    The expected count and bytes (of what is scanned) are checked after the last KV; a mismatch or any
    corruption raises ``file_corrupt``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise errors.FileNotFound(f"SST file {path} does not exist")
    work = tempfile.mkdtemp(prefix="sst-read-", dir=tmp_dir)
    try:
        db = _ingest(path, work)
        scan = _scan(db, path, key_range)
        try:
            count = nbytes = 0
            for key, value in scan:
                count += 1
                nbytes += len(key) + len(value)
                yield key, value
        finally:
            scan.close()  # release the iterator before its database
            db.close()
        for name, expected, found in (("keys", expected_key_count, count), ("bytes", expected_bytes, nbytes)):
            if expected is not None and expected != found:
                raise errors.FileCorrupt(f"SST file {path} holds {found} {name}, expected {expected}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verify_sst(
    path: str | os.PathLike[str],
    key_range: KeyRange | None = None,
    expected_key_count: int | None = None,
    expected_bytes: int | None = None,
    tmp_dir: str | None = None,
) -> SstStats:
    """Scan a whole SST (or the part in ``key_range``) and report what it holds."""
    count = nbytes = 0
    first: bytes | None = None
    last: bytes | None = None
    for key, value in read_sst(path, key_range, expected_key_count, expected_bytes, tmp_dir):
        if first is None:
            first = key
        last = key
        count += 1
        nbytes += len(key) + len(value)
    return SstStats(count, nbytes, first, last)


def _ingest(path: str, work: str) -> Rdict:
    link = os.path.join(work, "ingest.sst")
    try:
        os.link(path, link)
    except OSError:
        shutil.copyfile(path, link)
    db = Rdict(os.path.join(work, "db"), Options(raw_mode=True))
    opts = IngestExternalFileOptions()
    opts.set_move_files(True)
    try:
        db.ingest_external_file([link], opts)
    except Exception as exc:
        db.close()
        raise errors.FileCorrupt(f"SST file {path} cannot be ingested: {exc}") from exc
    return db


def _scan(db: Rdict, path: str, key_range: KeyRange | None) -> Generator[KV, None, None]:
    it = db.iter()
    try:
        if key_range is None:
            it.seek_to_first()
        else:
            it.seek(key_range.begin)
        while it.valid():
            key = it.key()
            if key_range is not None and key >= key_range.end:
                break
            yield key, it.value()
            it.next()
        it.status()
    except Exception as exc:
        raise errors.FileCorrupt(f"SST file {path} is corrupt: {exc}") from exc
    finally:
        del it


def byte_sample(key: bytes, value_size: int) -> int | None:
    """FDB's ``isKeyValueInSample``: the sampled size if this KV is in the byte sample, else None."""
    size = len(key) + value_size
    probability = size / (len(key) + BYTE_SAMPLING_OVERHEAD) / BYTE_SAMPLING_FACTOR
    probability = min(max(probability, MIN_BYTE_SAMPLING_PROBABILITY), 1.0)
    if probability == 1.0 or hashlittle2(key)[0] / 4294967296.0 < probability:  # the hash is always < 2^32
        return int(size / probability)
    return None


def byte_sample_entries(kvs: Iterable[KV]) -> Iterator[KV]:
    """Entries of a ``<v>-sample.sst``: data key -> sampled size as int64 LE."""
    for key, value in kvs:
        sampled = byte_sample(key, len(value))
        if sampled is not None:
            yield key, _I64.pack(sampled)
