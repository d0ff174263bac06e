"""A restore's life around its two phases: start (lock and check the destination), finish, failure.

Pipeline: ``start`` -> verify every file -> snapshot phase (:mod:`.snapshot_phase`: range files, or
prerequisites -> BulkLoad) -> ``snapshot_done`` -> log replay per stream (:mod:`.log_phase`) ->
``finish``. The destination ranges are locked (owner ``restore:<uid>``) from ``start`` until the end.
A failure that retrying cannot fix aborts the restore with its named error; success is declared
only after every range and every log stream is accounted for.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange, printable
from fdbcore.modes import RestoreMode
from fdbcore.mutations import clear_range, set_value
from workers import metrics, trace
from workers.context import Context
from workers.restore import replay
from workers.restore.job import ACTIVE_STATES, PhaseState, RestoreJob, RestoreState
from workers.restore.plan import RestorePlan
from workers.state import PREFIX, ErrorRecord, lease

#: URLs whose BulkLoad restore failed, so a later range-file restore of them counts as a fallback.
FAILED_BULKLOAD_URLS = "fdbbr:restore:failed_bulkload_urls"


def load(ctx: Context, uid: str) -> RestoreJob:
    return ctx.restores.get(uid)


def plan_of(ctx: Context, uid: str) -> RestorePlan:
    """The restore's plan (immutable, so each process parses it once)."""
    return _parsed_plan(ctx.restores.document(uid, "plan"))


@lru_cache(maxsize=8)
def _parsed_plan(text: str) -> RestorePlan:
    return RestorePlan.from_json(text)


@dataclass(frozen=True)
class Dispatch:
    mode: RestoreMode
    tasks: int  # verify units, or range files / BulkLoad groups (after verification)


def snapshot_fence_key(uid: str) -> bytes:
    """A system key in the destination that exists while the restore's snapshot phase is open.

    ``start`` sets it, ``snapshot_done`` clears it before the log replay writes anything, and every
    range-file commit reads it with a conflict range: a copy of a snapshot task still running when
    the replay starts (a redelivery) fails to commit instead of overwriting replayed keys with older
    snapshot data. It lies under the replay markers' prefix, so ``finish`` clears it with them.
    """
    return replay.MARKER_PREFIX + uid.encode() + b"/snapshot_open"


def check_destination_empty(driver: ClusterDriver, ranges: Sequence[KeyRange]) -> None:
    """A range-file restore writes into empty ranges only (FDB's ``restore_destination_not_empty``)."""
    version = driver.get_read_version()
    for r in ranges:
        found = driver.get_range(r.begin, r.end, version, limit=1)
        if found.kvs:
            raise errors.RestoreDestinationNotEmpty(
                f"the destination already has keys in {r} (first: '{printable(found.kvs[0][0])}'); "
                "a range-file restore needs empty destination ranges"
            )


def start(ctx: Context, uid: str) -> Dispatch | None:
    """Lock and check the destination, open the snapshot phase; None if nothing is left to dispatch.

    One copy starts at a time (a lease that outlives a killed copy by the task time limit). A copy
    that finds the restore started but its verify tasks not known to be sent sends them (again): its
    predecessor may have died between the two, and a duplicate chord is harmless.
    """
    record = ctx.restores.job(uid)
    record.compare_and_set("state", [RestoreState.QUEUED], RestoreState.STARTING)
    ttl_ms = int(ctx.settings.task_time_limit * 1000)
    with lease(ctx.redis, f"{PREFIX}:restore:{uid}:startlease", ttl_ms) as held:
        if not held:
            raise errors.Retry(f"another copy of the start of restore {uid} is running")
        job = load(ctx, uid)
        if not job.active:
            return None
        plan = plan_of(ctx, uid)
        if job.started_at is not None:
            return None if job.snapshot_dispatched else Dispatch(job.mode, len(plan.verify_units))
        trace.event(
            "RestoreSnapshotMethodSelected",
            RestoreUID=uid,
            Method=job.mode.value,
            BulkLoadAvailable=plan.bulkload_available,
        )
        driver = ctx.cluster(job.cluster_file)
        for r in job.dest_ranges:
            driver.lock_range(r, job.lock_owner)
        driver.commit([set_value(snapshot_fence_key(uid), b"")], lock_owner=job.lock_owner)
        if job.mode == RestoreMode.RANGEFILE and not job.overwrite:
            check_destination_empty(driver, job.dest_ranges)  # again, now that the ranges are locked
        record.compare_and_set("state", [RestoreState.STARTING], RestoreState.RUNNING)
        record.update(snapshot_phase=PhaseState.IN_PROGRESS, started_at=time.time())
        return Dispatch(job.mode, len(plan.verify_units))


def mark_dispatched(ctx: Context, uid: str) -> None:
    """The verify chord is sent: a redelivered ``restore.start`` has nothing left to do."""
    ctx.restores.job(uid).update(snapshot_dispatched=True)


def fail(ctx: Context, uid: str, err: errors.FDBError, phase: str) -> None:
    """Abort the restore with ``err``: record it, release the destination."""
    ctx.restores.add_error(uid, ErrorRecord.from_error(phase, err))
    job = load(ctx, uid)
    if job.mode == RestoreMode.BULKLOAD and job.active and job.snapshot_phase != PhaseState.COMPLETE:
        metrics.BULKLOAD_RESTORES.labels("failed").inc()
        ctx.redis.sadd(FAILED_BULKLOAD_URLS, job.url_display)
    trace.event("RestoreFailed", trace.SEV_WARN_ALWAYS, RestoreUID=uid, Phase=phase, Error=err.name, Code=err.code)
    if ctx.restores.job(uid).compare_and_set("state", ACTIVE_STATES, RestoreState.ABORTED):
        release(ctx.cluster(job.cluster_file), job)


def release(driver: ClusterDriver, job: RestoreJob) -> None:
    """Release the destination: the restore's own system keys (fence, replay positions), then its lock."""
    marks = replay.markers_range(job.uid)
    driver.commit([clear_range(marks.begin, marks.end)], lock_owner=job.lock_owner)
    for r in job.dest_ranges:
        with contextlib.suppress(errors.RangeUnlockReject):  # never locked, or already released
            driver.unlock_range(r, job.lock_owner)


def chord_failed(ctx: Context, uid: str, phase: str) -> None:
    """A restore chord broke (a task was killed by its hard time limit): abort with a named error."""
    fail(ctx, uid, errors.RestoreError(f"a {phase} task failed without recording a result"), phase)


def finish(ctx: Context, uid: str) -> None:
    job = load(ctx, uid)
    if not job.active:
        return
    done = ctx.restores.results(uid, "replay")
    if len(done) != job.streams:
        fail(ctx, uid, errors.RestoreMissingData(f"only {len(done)} of {job.streams} log streams finished"), "replay")
        return
    release(ctx.cluster(job.cluster_file), job)
    if ctx.restores.job(uid).compare_and_set("state", [RestoreState.RUNNING], RestoreState.COMPLETED):
        ctx.restores.job(uid).update(log_phase=PhaseState.COMPLETE, completed_at=time.time())
        if job.mode == RestoreMode.RANGEFILE and ctx.redis.srem(FAILED_BULKLOAD_URLS, job.url_display):
            metrics.FALLBACKS.labels("restore").inc()
        trace.event("RestoreComplete", RestoreUID=uid, Version=job.target_version, Method=job.mode.value)
