"""Replacing a restore's destination ranges in a live cluster, and putting their old contents back.

The restore holds its lock on the ranges from ``start`` (other writers are refused). After
verification, :func:`set_aside` copies what the ranges hold into the restore's own system keys in the
destination, while readers still see the old data; :func:`clear` then turns the lock into one that
blocks reads and clears the ranges. From then on nobody reads them until :func:`unlock` lets them go,
at the target version; once the restore is complete, :func:`drop_aside` drops the copy.

After an abort, the lock is handed to the restore's abort owner (which shuts out the restore's
writers still in flight), :func:`put_back` restores the old contents, if the clearing had begun, and
:func:`release` drops the copy and unlocks the ranges.

All of it moves data in chunks small enough that a workload's operations on other ranges are not
held up behind them. Copying, clearing and putting back commit their progress (a cursor in the
destination) with each chunk, so a killed worker's successor continues where it stopped; dropping
the copy needs no cursor (what is dropped is gone) and reads on from where its last chunk ended.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config import Settings
from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange, key_after
from fdbcore.mutations import Mutation, clear_range, set_value
from workers.restore import replay
from workers.restore.job import RestoreJob

#: Bytes read per commit while copying or clearing: a chunk's commit must not hold the cluster (its
#: commit lock, and the stand-in's interpreter) for long, or a live workload's p99 pays for it. In
#: ``benchmarks/live_restore.py`` (1M keys replaced) 256 KB gave the workload a p99 of 37 ms while the
#: old contents were set aside and cleared, 64 KB 6 ms, for 1.8 times as long a phase.
CHUNK_BYTES = 64 << 10
#: A prepare or rollback task hands over to a fresh copy of itself after this long (at most).
BUDGET_SECONDS = 60.0
_COUNTS = struct.Struct(">QQ")

Pairs = list[tuple[bytes, bytes]]


def budget_seconds(settings: Settings) -> float:
    """How long one prepare or rollback task moves data: well inside the task time limit."""
    return min(BUDGET_SECONDS, settings.soft_time_limit / 2)


def _key(uid: str, name: bytes) -> bytes:
    return replay.MARKER_PREFIX + uid.encode() + b"/" + name


def aside_range(uid: str) -> KeyRange:
    """Where the old contents wait: ``<markers>/aside/`` + the destination key."""
    prefix = _key(uid, b"aside/")
    return KeyRange(prefix, prefix[:-1] + b"0")


def _point(key: bytes) -> KeyRange:
    return KeyRange(key, key_after(key))


@dataclass(frozen=True)
class Cursor:
    """How far a walk got: keys and bytes so far, and the next key (None: done)."""

    keys: int
    nbytes: int
    next: bytes | None

    def encode(self) -> bytes:
        return _COUNTS.pack(self.keys, self.nbytes) + (b"\x01" if self.next is None else b"\x00" + self.next)

    @staticmethod
    def decode(raw: bytes | None, begin: bytes) -> Cursor:
        if raw is None:
            return Cursor(0, 0, begin)
        keys, nbytes = _COUNTS.unpack_from(raw)
        rest = raw[_COUNTS.size :]
        return Cursor(keys, nbytes, None if rest == b"\x01" else rest[1:])


def _walk(
    driver: ClusterDriver,
    source: KeyRange,
    cursor_key: bytes,
    owner: str,
    deadline: float,
    step: Callable[[bytes, bytes, Pairs], list[Mutation]],
) -> Cursor | None:
    """Read ``source`` chunk by chunk and commit ``step(chunk begin, chunk end, pairs)`` for each,
    the cursor moving in the same commit. The finished cursor, or None once past ``deadline`` (after
    at least one chunk: every call makes progress)."""
    while True:
        version = driver.get_read_version()
        cursor = Cursor.decode(driver.get(cursor_key, version), source.begin)
        if cursor.next is None:
            return cursor
        chunk = driver.get_range(cursor.next, source.end, version, limit_bytes=CHUNK_BYTES)
        end = key_after(chunk.kvs[-1][0]) if chunk.more else source.end
        batch = step(cursor.next, end, chunk.kvs)
        moved = Cursor(
            cursor.keys + len(chunk.kvs),
            cursor.nbytes + sum(len(k) + len(v) for k, v in chunk.kvs),
            end if chunk.more else None,
        )
        batch.append(set_value(cursor_key, moved.encode()))
        driver.commit(batch, read_version=version, read_conflict_ranges=[_point(cursor_key)], lock_owner=owner)
        if moved.next is None:
            return moved
        if time.monotonic() > deadline:
            return None


def _once(driver: ClusterDriver, marker: bytes, mutations: Sequence[Mutation], owner: str) -> None:
    """Commit ``mutations`` with ``marker`` unless the marker exists (a copy before us did it)."""
    version = driver.get_read_version()
    if driver.get(marker, version) is None:
        batch = [*mutations, set_value(marker, b"")]
        driver.commit(batch, read_version=version, read_conflict_ranges=[_point(marker)], lock_owner=owner)


def _exists(driver: ClusterDriver, key: bytes) -> bool:
    return driver.get(key, driver.get_read_version()) is not None


def set_aside(
    driver: ClusterDriver, uid: str, ranges: Sequence[KeyRange], owner: str, deadline: float
) -> tuple[int, int] | None:
    """Copy every destination range into the aside area; (keys, bytes) copied, None past ``deadline``."""
    aside = aside_range(uid).begin
    keys = nbytes = 0
    for i, r in enumerate(ranges):
        done = _walk(
            driver,
            r,
            _key(uid, b"aside_cursor/%d" % i),
            owner,
            deadline,
            lambda b, e, kvs: [set_value(aside + k, v) for k, v in kvs],
        )
        if done is None:
            return None
        keys, nbytes = keys + done.keys, nbytes + done.nbytes
    return keys, nbytes


def clear(driver: ClusterDriver, uid: str, ranges: Sequence[KeyRange], owner: str, deadline: float) -> bool:
    """Block reads of the ranges (from now on they hold neither the old nor the restored data), then
    clear them in pieces cut at the keys of their copy. False past ``deadline``."""
    for r in ranges:
        driver.lock_range(r, owner, block_reads=True)
    _once(driver, _key(uid, b"clearing"), [], owner)
    aside = aside_range(uid).begin
    cut = len(aside)
    for i, r in enumerate(ranges):
        copy = KeyRange(aside + r.begin, aside + r.end)
        cursor = _key(uid, b"clear_cursor/%d" % i)
        if _walk(driver, copy, cursor, owner, deadline, lambda b, e, kvs: [clear_range(b[cut:], e[cut:])]) is None:
            return False
    _once(driver, _key(uid, b"cleared"), [], owner)
    return True


def put_back(driver: ClusterDriver, uid: str, ranges: Sequence[KeyRange], owner: str, deadline: float) -> bool:
    """Give the ranges their old contents again, if their clearing had begun; True when done (also when
    there was nothing to do), False past ``deadline``. ``owner`` must hold the ranges' lock."""
    if not _exists(driver, _key(uid, b"clearing")):
        return True
    if _exists(driver, _key(uid, b"cleared")):  # the restore may have written: clear all it wrote
        _once(driver, _key(uid, b"putback_cleared"), [clear_range(r.begin, r.end) for r in ranges], owner)
    aside = aside_range(uid)
    cut = len(aside.begin)
    cursor = _key(uid, b"putback_cursor")
    return (
        _walk(driver, aside, cursor, owner, deadline, lambda b, e, kvs: [set_value(k[cut:], v) for k, v in kvs])
        is not None
    )


def touched(driver: ClusterDriver, uid: str) -> bool:
    """Whether the restore began clearing its ranges (an abort must then put their contents back)."""
    return _exists(driver, _key(uid, b"clearing"))


def take_over(driver: ClusterDriver, job: RestoreJob, block_reads: bool) -> None:
    """Hand the restore's lock on its ranges to its abort owner (or take the lock, where the restore
    never took it or an earlier rollback already did), shutting out the restore's writers."""
    for r in job.dest_ranges:
        try:
            driver.transfer_range_lock(r, job.lock_owner, job.abort_owner)
        except errors.RangeLockFailed:
            with contextlib.suppress(errors.RangeLockReject):  # another job's range: ours never got it
                driver.lock_range(r, job.abort_owner, block_reads=block_reads)


def unlock(driver: ClusterDriver, job: RestoreJob) -> None:
    """Drop the restore's system keys other than the copy of the old contents (fence, replay positions,
    cursors), then its lock on the ranges, whichever of its owners holds it."""
    marks, aside = replay.markers_range(job.uid), aside_range(job.uid)
    driver.commit([clear_range(marks.begin, aside.begin), clear_range(aside.end, marks.end)])
    for r in job.dest_ranges:
        for owner in (job.lock_owner, job.abort_owner):
            with contextlib.suppress(errors.RangeUnlockReject):  # never locked, or held by the other owner
                driver.unlock_range(r, owner)


def drop_aside(driver: ClusterDriver, uid: str, deadline: float) -> bool:
    """Drop the copy of the old contents in chunks, each read from where the last one ended (reading from
    the copy's start every time would step over every key already dropped: quadratic). True once it
    is gone, False past ``deadline`` (after at least one chunk; call again)."""
    aside = aside_range(uid)
    begin = aside.begin
    while chunk := driver.get_range(begin, aside.end, driver.get_read_version(), limit_bytes=CHUNK_BYTES).kvs:
        end = key_after(chunk[-1][0])
        driver.commit([clear_range(begin, end)])
        begin = end
        if time.monotonic() > deadline:
            return False
    return True


def release(driver: ClusterDriver, job: RestoreJob, deadline: float) -> bool:
    """Release the destination after an abort: the copy of the old contents, then the restore's other
    system keys and its lock. False past ``deadline`` (call again)."""
    if not drop_aside(driver, job.uid, deadline):
        return False
    unlock(driver, job)
    return True
