"""Mutation-log replay onto the destination, exactly once, partition by partition.

The rule (FDB's applyMutations, ``fdb-formats.md`` §7.1): after the snapshot phase every key ``k`` of
the restore ranges holds data as of ``map[k]`` — the version of the range file or BulkDump batch it
came from (per batch, not one snapshot version, so atomic ops between batch versions are applied
exactly once). A logged mutation at version ``v`` applies to ``k`` only when ``map[k] < v <= target``;
a clear is cut into the pieces where that holds.

Exactly once: each partition's applied-through position ``(version, subsequence)`` is stored in the
destination under a system key, in the same commit as the mutations it covers, and every commit
reads it with a conflict range. A second copy of the task (redelivery) either conflicts
(``not_committed``) and resumes from the stored position, or finds the work already done.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice

from fdbcore import errors
from fdbcore.catalog import LogFileRef
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.encoded_mutations import EMPTY, EncodedMutations
from fdbcore.formats.io import ContainerSource
from fdbcore.formats.partitioned_log import decode_partitioned_log_block, iter_partitioned_log
from fdbcore.formats.plog_blocks import UniformBlock, uniform_block
from fdbcore.formats.v1_log import iter_v1_log
from fdbcore.keys import KeyRange, VersionedRange, key_after
from fdbcore.mutations import Mutation, MutationType, clear_range
from workers.restore.job import Rewrite

MARKER_PREFIX = b"\xff\x02/fdbbr/restore/"
COMMIT_BYTES = 1 << 20
#: Commit at least this often (possibly only the marker) so the read version stays in the MVCC window.
COMMIT_SECONDS = 1.0
_POSITION = struct.Struct(">qI")
Position = tuple[int, int]  # (version, subsequence)
START: Position = (-1, 0)
_IGNORED = frozenset(int(t) for t in (MutationType.NO_OP, MutationType.DEBUG_KEY, MutationType.DEBUG_KEY_RANGE))
_CLEAR_RANGE = int(MutationType.CLEAR_RANGE)  # plain ints: Enum attribute lookups are slow in the hot loop
#: Types that a block taken whole must not hold: clears are clipped to the version map, the rest ignored.
_NOT_SINGLE_KEY = _IGNORED | {_CLEAR_RANGE}


def marker_key(uid: str, stream: int) -> bytes:
    return MARKER_PREFIX + uid.encode() + b"/applied/" + str(stream).encode()


def markers_range(uid: str) -> KeyRange:
    prefix = MARKER_PREFIX + uid.encode() + b"/"
    return KeyRange(prefix, prefix[:-1] + b"0")


class VersionMap:
    """Source-key-space pieces and the version each piece's data is at."""

    def __init__(self, pieces: Sequence[VersionedRange]) -> None:
        self._pieces = sorted(pieces, key=lambda p: p.range.begin)
        self._begins = [p.range.begin for p in self._pieces]
        self._ends = [p.range.end for p in self._pieces]
        self._versions = [p.version for p in self._pieces]

    def version_of(self, key: bytes) -> int | None:
        i = bisect.bisect_right(self._begins, key) - 1
        return self._versions[i] if i >= 0 and key < self._ends[i] else None

    def all_older(self, first: bytes, last: bytes, version: int) -> bool:
        """Every key in ``[first, last]`` lies in a piece whose data is older than ``version``."""
        begins, ends, versions = self._begins, self._ends, self._versions
        i = bisect.bisect_right(begins, first) - 1
        cursor = first
        while 0 <= i < len(begins) and begins[i] <= cursor < ends[i] and versions[i] < version:
            if last < ends[i]:
                return True
            cursor = ends[i]
            i += 1
        return False

    def pieces_in(self, r: KeyRange) -> Iterator[VersionedRange]:
        i = max(0, bisect.bisect_right(self._begins, r.begin) - 1)
        while i < len(self._pieces) and self._pieces[i].range.begin < r.end:
            part = self._pieces[i].range.intersection(r)
            if part is not None:
                yield VersionedRange(part, self._pieces[i].version)
            i += 1


def translate(m: Mutation, version: int, vmap: VersionMap, rewrite: Rewrite) -> list[Mutation]:
    """What ``m`` (logged at ``version``) does to the destination; empty when it does nothing."""
    if m.type == _CLEAR_RANGE:
        out = []
        for piece in vmap.pieces_in(KeyRange(m.param1, m.param2)):
            if version > piece.version:
                dest = rewrite.range(piece.range)
                out.append(clear_range(dest.begin, dest.end))
        return out
    if m.type in _IGNORED:
        return []
    at = vmap.version_of(m.param1)
    if at is None or version <= at:
        return []
    return [Mutation(m.type, rewrite.key(m.param1), m.param2)]


# --- reading the logs ----------------------------------------------------------------------------

Logged = tuple[int, int, Mutation]
#: What a stream yields, in log order: a whole block whose records share one layout (which the
#: replayer may take whole, without a Python step per record), or logged mutations one by one.
Chunk = UniformBlock | Sequence[Logged]
#: Mutations per chunk of the streams that merge or decode record by record.
CHUNK_MUTATIONS = 1024


def partition_stream(container: BackupContainer, files: Sequence[LogFileRef], after: Position) -> Iterator[Chunk]:
    """One tag's files in version order, block by block, skipping files wholly at or before ``after``."""
    for f in _files_after(files, after):
        source = ContainerSource(container, f.path)
        for offset, block in source.blocks(f.block_size):
            what = f"{source.name} block at offset {offset}"
            yield uniform_block(block, what) or decode_partitioned_log_block(block, what)


def _files_after(files: Sequence[LogFileRef], after: Position) -> Iterator[LogFileRef]:
    for f in sorted(files, key=lambda f: (f.begin, f.end)):
        if f.end > after[0] and f.size != 0:
            yield f


def _tag_mutations(container: BackupContainer, files: Sequence[LogFileRef], after: Position) -> Iterator[Logged]:
    for f in _files_after(files, after):
        yield from iter_partitioned_log(ContainerSource(container, f.path), f.block_size)


def key_partitioned(files: Sequence[LogFileRef]) -> bool:
    """Files of one tag (our key-range partitions) rather than every tag (FDB's) or V1 logs."""
    return all(f.partitioned for f in files) and len({f.tag for f in files}) == 1


def merged_stream(container: BackupContainer, files: Sequence[LogFileRef], after: Position) -> Iterator[Chunk]:
    """FDB-made partitioned logs: every tag merged by (version, subsequence); V1 logs: one chain."""
    if files and not files[0].partitioned:
        return _chunks(_v1_stream(container, files, after))
    tags: dict[int | None, list[LogFileRef]] = {}
    for f in files:
        tags.setdefault(f.tag, []).append(f)
    streams = [_tag_mutations(container, fs, after) for fs in tags.values()]
    return _chunks(heapq.merge(*streams, key=lambda lm: (lm[0], lm[1])))


def _v1_stream(container: BackupContainer, files: Sequence[LogFileRef], after: Position) -> Iterator[Logged]:
    for f in _files_after(files, after):
        for version, mutations in iter_v1_log(ContainerSource(container, f.path), f.block_size):
            for sub, m in enumerate(mutations):
                yield version, sub, m


def _chunks(logged: Iterator[Logged]) -> Iterator[list[Logged]]:
    while chunk := list(islice(logged, CHUNK_MUTATIONS)):
        yield chunk


# --- applying ------------------------------------------------------------------------------------


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding allocates millions of acyclic tuples, and the
    collections they trigger cost a quarter of the time. Reference counting still frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Batch:
    """The mutations of one commit, in order: encoded parts, then mutations not encoded yet."""

    def __init__(self, position: Position) -> None:
        self.parts: list[EncodedMutations] = []
        self.pending: list[Mutation] = []
        #: Mutation bytes (FDB's count) in the batch.
        self.size = 0
        #: The position of the last logged mutation the batch covers.
        self.position = position

    def add_encoded(self, part: EncodedMutations, position: Position) -> None:
        self._seal()
        self.parts.append(part)
        self.size += part.byte_size
        self.position = position

    def encoded(self) -> EncodedMutations:
        self._seal()
        return EncodedMutations.join(self.parts) if self.parts else EMPTY

    def _seal(self) -> None:
        if self.pending:
            self.parts.append(EncodedMutations.of(self.pending))
            self.pending = []


class Replayer:
    """Applies one stream of logged mutations to the destination, resumable at any commit."""

    def __init__(
        self,
        driver: ClusterDriver,
        uid: str,
        stream_id: int,
        vmap: VersionMap,
        rewrite: Rewrite,
        target: int,
        lock_owner: str,
    ) -> None:
        self.driver = driver
        self.key = marker_key(uid, stream_id)
        self.vmap = vmap
        self.rewrite = rewrite
        self.target = target
        self.lock_owner = lock_owner
        self.applied_bytes = 0
        #: Commits that found the marker moved by another copy (or could not tell): the race, counted.
        self.conflicts = 0
        self._read_version = driver.get_read_version()
        self.position = self._stored_position()

    def _stored_position(self) -> Position:
        raw = self.driver.get(self.key, self._read_version)
        if raw is None:
            return START
        v, s = _POSITION.unpack(raw)
        return (v, s)

    def run(self, source: Iterable[Chunk], budget_seconds: float) -> bool:
        """Apply until the source is exhausted or passes the target (True); False when the budget ran
        out or another copy moved the marker (call again with a stream from :attr:`position`).

        Each commit is in flight while the next batch is built: the decoding here and the cluster's
        apply run on different cores. Commits still happen one after another, each reading the marker
        at the version the previous one committed.
        """
        with _gc_paused():
            return self._run(source, time.monotonic() + budget_seconds)

    def _applies_whole(self, block: UniformBlock, after: Position) -> bool:
        """Every record of ``block`` applies unchanged: it lies after ``after`` and at or before the
        target, is a single-key mutation, and every key's data in the destination is older than it.
        (Anything else goes record by record through :func:`translate`.)"""
        return (
            not self.rewrite.add
            and not self.rewrite.remove
            and block.min_version > after[0]
            and block.max_version <= self.target
            and not block.kinds & _NOT_SINGLE_KEY
            and self.vmap.all_older(block.min_key, block.max_key, block.min_version)
        )

    def _run(self, source: Iterable[Chunk], deadline: float) -> bool:
        vmap, rewrite, target = self.vmap, self.rewrite, self.target
        version_of = vmap.version_of
        identity = not rewrite.add and not rewrite.remove
        start_v, start_s = after = self.position
        batch = _Batch(after)
        committed_at = time.monotonic()
        pending: Future[bool] | None = None

        with ThreadPoolExecutor(1, thread_name_prefix="replay-commit") as committer:

            def commit() -> bool:
                """Send the batch (after the previous commit landed); False to stop this run."""
                nonlocal batch, pending, committed_at
                if pending is not None and not pending.result():
                    return False
                pending = committer.submit(self._commit, batch.encoded(), batch.position)
                batch, committed_at = _Batch(batch.position), time.monotonic()
                if committed_at > deadline:
                    pending.result()
                    return False
                return True

            for chunk in source:
                if isinstance(chunk, UniformBlock):
                    if self._applies_whole(chunk, after):
                        # Whole blocks commit apart from mutations taken one by one, so that a few
                        # clears among those do not send a large commit down the cluster's slow path.
                        if batch.pending and not commit():
                            return False
                        batch.add_encoded(chunk.mutations, chunk.last)
                        due = batch.size >= COMMIT_BYTES or time.monotonic() - committed_at >= COMMIT_SECONDS
                        if due and not commit():
                            return False
                        continue
                    chunk = chunk.records()
                if batch.parts and not commit():
                    return False
                past_target = False
                for count, (version, sub, m) in enumerate(chunk):
                    if version < start_v or (version == start_v and sub <= start_s):
                        continue
                    if version > target:
                        past_target = True
                        break
                    kind = m[0]
                    if identity and kind != _CLEAR_RANGE and kind not in _IGNORED:
                        at = version_of(m[1])
                        if at is not None and version > at:
                            batch.pending.append(m)
                            batch.size += 12 + len(m[1]) + len(m[2])
                    else:
                        for out in translate(m, version, vmap, rewrite):
                            batch.pending.append(out)
                            batch.size += out.byte_size()
                    batch.position = (version, sub)
                    due = batch.size >= COMMIT_BYTES or (
                        count & 1023 == 0 and time.monotonic() - committed_at >= COMMIT_SECONDS
                    )
                    if due and not commit():
                        return False
                if past_target:
                    break
            if pending is not None and not pending.result():
                return False
        if batch.position != self.position or batch.size:
            return self._commit(batch.encoded(), batch.position)
        return True

    def _commit(self, batch: EncodedMutations, position: Position) -> bool:
        marker = EncodedMutations.of([Mutation(MutationType.SET_VALUE, self.key, _POSITION.pack(*position))])
        try:
            self._read_version = self.driver.commit_encoded(
                EncodedMutations.join([batch, marker]),
                read_version=self._read_version,
                read_conflict_ranges=[KeyRange(self.key, key_after(self.key))],
                lock_owner=self.lock_owner,
            )
        except (errors.NotCommitted, errors.TransactionTooOld, errors.CommitUnknownResult):
            # Someone else moved the marker, or we cannot tell whether this commit landed: the
            # stored position says what is applied.
            self.conflicts += 1
            self._read_version = self.driver.get_read_version()
            self.position = self._stored_position()
            return False
        self.position = position
        self.applied_bytes += batch.byte_size
        return True
