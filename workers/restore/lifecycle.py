"""A restore's life around its two phases: start (lock and check the destination), prepare (set the
destination ranges' old contents aside and clear them), finish, failure and the rollback after it.

Pipeline: ``start`` -> verify every file -> prerequisites -> old contents set aside and the ranges
cleared (:mod:`.replacement`) -> snapshot phase (:mod:`.snapshot_phase`: range files or BulkLoad) ->
``snapshot_done`` -> log replay per stream (:mod:`.log_phase`) -> ``finish``. The destination ranges
are locked (owner ``restore:<uid>``) from ``start`` until the end; other ranges keep serving. A failure
that retrying cannot fix aborts the restore with its named error and sends its rollback (the old
contents back, the ranges released); success is declared only after every range and every log
stream is accounted for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange, printable
from fdbcore.modes import RestoreMode
from fdbcore.mutations import set_value
from workers import metrics, trace
from workers.context import Context
from workers.restore import replacement, replay
from workers.restore.job import ACTIVE_STATES, PhaseState, RestoreJob, RestoreState
from workers.restore.plan import RestorePlan
from workers.state import PREFIX, ErrorRecord, JobStore, lease

#: URLs whose BulkLoad restore failed, so a later range-file restore of them counts as a fallback.
FAILED_BULKLOAD_URLS = "fdbbr:restore:failed_bulkload_urls"

#: Sends a failing restore's :func:`rollback` to the fleet (``tasks.restore`` sets it: workers import
#: no Celery). Unset, the rollback waits for ``fdbrestore abort``.
send_rollback: Callable[[str], None] | None = None


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
    """A range-file restore of the whole database writes into an empty one only (FDB's
    ``restore_destination_not_empty``); a restore of chosen ranges (``-k``) replaces what they hold."""
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
        if job.mode == RestoreMode.RANGEFILE and job.whole_database and not job.overwrite:
            check_destination_empty(driver, job.dest_ranges)  # again, now that the ranges are locked
        if not record.compare_and_set("state", [RestoreState.STARTING], RestoreState.RUNNING):
            replacement.unlock(driver, job)  # aborted while it locked: the rollback may have passed already
            return None
        record.update(snapshot_phase=PhaseState.IN_PROGRESS, started_at=time.time())
        return Dispatch(job.mode, len(plan.verify_units))


def prepare(ctx: Context, uid: str) -> Dispatch | Literal["again"] | None:
    """Set the destination ranges' old contents aside and clear the ranges (:mod:`.replacement`);
    then the snapshot phase may start (its Dispatch). ``"again"``: the time budget ran out, run a
    fresh copy; None: the restore is over. A logs-only restore (``--incremental``) applies its logs
    onto what the ranges hold, so it neither clears them nor has anything to put back."""
    job = load(ctx, uid)
    if not job.active:
        return None
    ttl_ms = int(ctx.settings.task_time_limit * 1000)
    with lease(ctx.redis, f"{PREFIX}:restore:{uid}:preparelease", ttl_ms) as held:
        if not held:
            raise errors.Retry(f"another copy of the preparation of restore {uid} is running")
        plan = plan_of(ctx, uid)
        if not job.ranges_cleared and not plan.logs_only:
            driver = ctx.cluster(job.cluster_file)
            deadline = time.monotonic() + replacement.budget_seconds(ctx.settings)
            copied = replacement.set_aside(driver, uid, job.dest_ranges, job.lock_owner, deadline)
            if copied is None or not replacement.clear(driver, uid, job.dest_ranges, job.lock_owner, deadline):
                return "again"
            ctx.restores.job(uid).update(
                aside_keys=copied[0], aside_bytes=copied[1], ranges_cleared=True, prepared_at=time.time()
            )
            trace.event("RestoreRangesSetAside", RestoreUID=uid, Keys=copied[0], Bytes=copied[1])
        return Dispatch(job.mode, plan.snapshot_tasks)


def rollback(store: JobStore[RestoreJob], driver: ClusterDriver, uid: str, lease_ms: int, budget: float) -> bool | None:
    """After an abort: shut the restore's writers out, put the old contents back, release the ranges.

    True once done (or nothing to do); False when ``budget`` seconds ran out (call again). Runs in a
    ``restore.rollback`` task after a failure and in ``fdbrestore abort``; a lease keeps it to one copy.
    None while the restore is still active: a failure sends its rollback just before it aborts the
    restore, so the rollback may run first (or the failing task may run again and succeed).
    """
    job = store.get(uid)
    if job.active:
        return None
    if job.state != RestoreState.ABORTED or job.rollback == PhaseState.COMPLETE:
        return True
    with lease(store.client, f"{PREFIX}:restore:{uid}:rollbacklease", lease_ms) as held:
        if not held:
            raise errors.Retry(f"another copy of the rollback of restore {uid} is running")
        store.job(uid).compare_and_set("rollback", [PhaseState.NOT_STARTED], PhaseState.IN_PROGRESS)
        touched = replacement.touched(driver, uid)
        replacement.take_over(driver, job, block_reads=touched)
        deadline = time.monotonic() + budget
        put_back = replacement.put_back(driver, uid, job.dest_ranges, job.abort_owner, deadline)
        if not put_back or not replacement.release(driver, job, deadline):
            return False
        store.job(uid).update(rollback=PhaseState.COMPLETE, ranges_cleared=touched)
        trace.event("RestoreRolledBack", RestoreUID=uid, OldContentsPutBack=touched)
        return True


def mark_dispatched(ctx: Context, uid: str) -> None:
    """The verify chord is sent: a redelivered ``restore.start`` has nothing left to do."""
    ctx.restores.job(uid).update(snapshot_dispatched=True)


def fail(ctx: Context, uid: str, err: errors.FDBError, phase: str) -> None:
    """Abort the restore with ``err``: record it, send the rollback. An error of a restore already
    over (a late copy of one of its tasks, shut out by the rollback) changes nothing."""
    job = load(ctx, uid)
    if not job.active:
        return
    ctx.restores.add_error(uid, ErrorRecord.from_error(phase, err))
    if job.mode == RestoreMode.BULKLOAD and job.snapshot_phase != PhaseState.COMPLETE:
        metrics.BULKLOAD_RESTORES.labels("failed").inc()
        ctx.redis.sadd(FAILED_BULKLOAD_URLS, job.url_display)
    trace.event("RestoreFailed", trace.SEV_WARN_ALWAYS, RestoreUID=uid, Phase=phase, Error=err.name, Code=err.code)
    if send_rollback is not None:  # before the abort: a worker dying in between leaves the rollback queued
        send_rollback(uid)
    ctx.restores.job(uid).compare_and_set("state", ACTIVE_STATES, RestoreState.ABORTED)


def chord_failed(ctx: Context, uid: str, phase: str) -> None:
    """A restore chord broke (a task was killed by its hard time limit): abort with a named error."""
    fail(ctx, uid, errors.RestoreError(f"a {phase} task failed without recording a result"), phase)


def finish(ctx: Context, uid: str) -> bool:
    """Once every log stream is done: unlock the ranges (readable at once, at the target version), mark
    the restore complete, then drop the copy of their old contents. True when done; False when the time
    budget ran out while dropping the copy (run a fresh copy: it goes on, the restore stays complete).

    The copy goes only after the restore is complete: an abort before that point puts it back whole.
    """
    job = load(ctx, uid)
    driver = ctx.cluster(job.cluster_file)
    deadline = time.monotonic() + replacement.budget_seconds(ctx.settings)
    if job.state == RestoreState.COMPLETED:  # an earlier copy of this task got this far
        return replacement.drop_aside(driver, uid, deadline)
    if not job.active:
        return True
    done = ctx.restores.results(uid, "replay")
    if len(done) != job.streams:
        fail(ctx, uid, errors.RestoreMissingData(f"only {len(done)} of {job.streams} log streams finished"), "replay")
        return True
    replacement.unlock(driver, job)
    if not ctx.restores.job(uid).compare_and_set("state", [RestoreState.RUNNING], RestoreState.COMPLETED):
        return True  # aborted meanwhile: its rollback puts the old contents back from the copy
    ctx.restores.job(uid).update(log_phase=PhaseState.COMPLETE, completed_at=time.time())
    if job.mode == RestoreMode.RANGEFILE and ctx.redis.srem(FAILED_BULKLOAD_URLS, job.url_display):
        metrics.FALLBACKS.labels("restore").inc()
    trace.event("RestoreComplete", RestoreUID=uid, Version=job.target_version, Method=job.mode.value)
    return replacement.drop_aside(driver, uid, deadline)
