"""Replacing the destination ranges of a restore, and putting their old contents back on abort.

A restore may land in ranges of a live cluster that hold data. Before its snapshot phase writes
anything, ``prepare`` copies the ranges' contents aside (into the restore's own system keys in the
destination, under the lock that keeps other writers out while readers still see the old data), then
turns the lock into one that blocks reads and clears the ranges in one commit. From then on nobody
reads the ranges until ``finish`` releases them at the target version; the copy is dropped with the
restore's other system keys.

An abort (``fdbrestore abort`` or a failure) hands the lock to the restore's abort owner, which
shuts out every writer of the restore still in flight (a range-file commit, a replay commit, a
BulkLoad about to ingest), puts the old contents back if the ranges were cleared, and releases them:
the ranges hold exactly what they held when the restore locked them, and no write landed meanwhile.

Every step is resumable: progress lives in the destination (a cursor per range, written in the same
commit as the data it covers), so a killed worker's successor continues where it stopped.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from config import Settings
from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange, key_after
from fdbcore.mutations import Mutation, clear_range, set_value
from workers.context import Context
from workers.restore import replay
from workers.restore.job import PhaseState, RestoreJob, RestoreState
from workers.restore.lifecycle import Dispatch, load, plan_of, release
from workers.state import PREFIX, JobStore, lease

#: Bytes read per commit while copying (keys plus values; the copy's keys are a little longer).
CHUNK_BYTES = 1 << 20
#: A prepare or rollback task hands over to a fresh copy of itself after this long (at most).
BUDGET_SECONDS = 60.0
_COUNTS = struct.Struct(">QQ")


def budget_seconds(settings: Settings) -> float:
    """How long one prepare or rollback task copies: well inside the task time limit."""
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
    """How far a copy got: keys and bytes so far, and the next key (None: done)."""

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


def _copy(
    driver: ClusterDriver,
    source: KeyRange,
    cursor_key: bytes,
    rename: int,
    prefix: bytes,
    owner: str,
    deadline: float,
) -> Cursor | None:
    """Copy ``source`` chunk by chunk, each key with its first ``rename`` bytes replaced by
    ``prefix``; the cursor moves in the same commit. Returns the finished cursor, None past ``deadline``."""
    while True:
        version = driver.get_read_version()
        cursor = Cursor.decode(driver.get(cursor_key, version), source.begin)
        if cursor.next is None:
            return cursor
        if time.monotonic() > deadline:
            return None
        chunk = driver.get_range(cursor.next, source.end, version, limit_bytes=CHUNK_BYTES)
        batch: list[Mutation] = [set_value(prefix + k[rename:], v) for k, v in chunk.kvs]
        moved = sum(len(k) - rename + len(v) for k, v in chunk.kvs)
        after = key_after(chunk.kvs[-1][0]) if chunk.more else None
        batch.append(set_value(cursor_key, Cursor(cursor.keys + len(chunk.kvs), cursor.nbytes + moved, after).encode()))
        driver.commit(batch, read_version=version, read_conflict_ranges=[_point(cursor_key)], lock_owner=owner)


def set_aside(
    driver: ClusterDriver, uid: str, ranges: Sequence[KeyRange], owner: str, deadline: float
) -> tuple[int, int] | None:
    """Copy every destination range into the aside area; (keys, bytes) copied, None past ``deadline``."""
    aside = aside_range(uid).begin
    keys = nbytes = 0
    for i, r in enumerate(ranges):
        done = _copy(driver, r, _key(uid, b"aside_cursor/%d" % i), 0, aside, owner, deadline)
        if done is None:
            return None
        keys, nbytes = keys + done.keys, nbytes + done.nbytes
    return keys, nbytes


def _once(driver: ClusterDriver, marker: bytes, mutations: Sequence[Mutation], owner: str) -> None:
    """Commit ``mutations`` with ``marker`` unless the marker exists (a copy before us did it)."""
    version = driver.get_read_version()
    if driver.get(marker, version) is None:
        batch = [*mutations, set_value(marker, b"")]
        driver.commit(batch, read_version=version, read_conflict_ranges=[_point(marker)], lock_owner=owner)


def clear_ranges(driver: ClusterDriver, uid: str, ranges: Sequence[KeyRange], owner: str) -> None:
    """Block reads of the ranges (from now on they hold neither the old nor the restored data), then
    clear them, once."""
    for r in ranges:
        driver.lock_range(r, owner, block_reads=True)
    _once(driver, _key(uid, b"cleared"), [clear_range(r.begin, r.end) for r in ranges], owner)


def was_cleared(driver: ClusterDriver, uid: str) -> bool:
    return driver.get(_key(uid, b"cleared"), driver.get_read_version()) is not None


def put_back(driver: ClusterDriver, uid: str, ranges: Sequence[KeyRange], owner: str, deadline: float) -> bool:
    """Clear the ranges of what the restore wrote and copy the old contents back; False past ``deadline``."""
    _once(driver, _key(uid, b"putback_cleared"), [clear_range(r.begin, r.end) for r in ranges], owner)
    aside = aside_range(uid)
    return _copy(driver, aside, _key(uid, b"putback_cursor"), len(aside.begin), b"", owner, deadline) is not None


# --- the steps ------------------------------------------------------------------------------------


def prepare(ctx: Context, uid: str) -> Dispatch | Literal["again"] | None:
    """Set the old contents aside and clear the ranges; then the snapshot phase may start (its
    Dispatch). ``"again"``: the time budget ran out, run a fresh copy; None: the restore is over."""
    job = load(ctx, uid)
    if not job.active:
        return None
    ttl_ms = int(ctx.settings.task_time_limit * 1000)
    with lease(ctx.redis, f"{PREFIX}:restore:{uid}:preparelease", ttl_ms) as held:
        if not held:
            raise errors.Retry(f"another copy of the preparation of restore {uid} is running")
        if not job.ranges_cleared:
            driver = ctx.cluster(job.cluster_file)
            deadline = time.monotonic() + budget_seconds(ctx.settings)
            copied = set_aside(driver, uid, job.dest_ranges, job.lock_owner, deadline)
            if copied is None:
                return "again"
            clear_ranges(driver, uid, job.dest_ranges, job.lock_owner)
            ctx.restores.job(uid).update(aside_keys=copied[0], aside_bytes=copied[1], ranges_cleared=True)
        return Dispatch(job.mode, plan_of(ctx, uid).snapshot_tasks)


def rollback(store: JobStore[RestoreJob], driver: ClusterDriver, uid: str, lease_ms: int, budget: float) -> bool:
    """After an abort: shut the restore's writers out, put the old contents back, release the ranges.

    True once done (or nothing to do); False when ``budget`` seconds ran out (call again). Runs in a
    ``restore.rollback`` task after a failure and in ``fdbrestore abort``; a lease keeps it to one copy.
    """
    job = store.get(uid)
    if job.state != RestoreState.ABORTED or job.rollback == PhaseState.COMPLETE:
        return True
    with lease(store.client, f"{PREFIX}:restore:{uid}:rollbacklease", lease_ms) as held:
        if not held:
            raise errors.Retry(f"another copy of the rollback of restore {uid} is running")
        store.job(uid).compare_and_set("rollback", [PhaseState.NOT_STARTED], PhaseState.IN_PROGRESS)
        cleared = was_cleared(driver, uid)
        for r in job.dest_ranges:
            _take_over(driver, job, r, cleared)
        if cleared and not put_back(driver, uid, job.dest_ranges, job.abort_owner, time.monotonic() + budget):
            return False
        release(driver, job)
        store.job(uid).update(rollback=PhaseState.COMPLETE, ranges_cleared=cleared)
        return True


def _take_over(driver: ClusterDriver, job: RestoreJob, r: KeyRange, cleared: bool) -> None:
    """Hand the restore's lock on ``r`` to its abort owner (or take it, if the restore never locked it
    or an earlier rollback already did)."""
    try:
        driver.transfer_range_lock(r, job.lock_owner, job.abort_owner)
    except errors.RangeLockFailed:
        with contextlib.suppress(errors.RangeLockReject):  # another job's range: ours never got it
            driver.lock_range(r, job.abort_owner, block_reads=cleared)
