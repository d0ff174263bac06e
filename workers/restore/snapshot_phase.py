"""The snapshot phase of a restore: verify every file, then range files or BulkLoad, then prove it whole.

Both modes start with a chord of verify tasks (a bad file aborts the restore before anything
touches the destination); ``prerequisites`` then checks the destination's BulkLoad knobs, and
``snapshot_done`` proves every restore range arrived before it closes the phase.
"""

from __future__ import annotations

import time

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors
from fdbcore.container.base import BackupContainer
from fdbcore.keys import KeyRange, covers_exactly, subtract
from fdbcore.modes import RestoreMode
from fdbcore.mutations import clear
from workers import metrics
from workers.context import Context
from workers.restore import bulkload, rangefile, verify
from workers.restore.job import PhaseState, RestoreJob
from workers.restore.lifecycle import Dispatch, fail, load, plan_of, snapshot_fence_key
from workers.restore.plan import RestorePlan
from workers.state import ErrorRecord

#: Attempts of one BulkLoad group before the restore fails with restore_bulkload_failed.
BULKLOAD_ATTEMPTS = 5
BULKLOAD_KNOBS = ("shard_encode_location_metadata", "enable_read_lock_on_range")


def verify_task(ctx: Context, uid: str, index: int) -> None:
    """Verify one unit (see :mod:`workers.restore.verify`)."""
    job = load(ctx, uid)
    if not job.active or str(index) in ctx.restores.results(uid, "verify"):
        return
    plan = plan_of(ctx, uid)
    counts = _verify_unit(ctx.container(job), plan, plan.verify_units[index])
    ctx.restores.put_result(uid, "verify", str(index), counts)


def _verify_unit(container: BackupContainer, plan: RestorePlan, unit: verify.Unit) -> dict[str, int]:
    """Returns each verified batch manifest's key count (BulkLoad groups; nothing for other units)."""
    kind = unit[0]
    if kind == "group":
        sums = unit[2]
        assert isinstance(sums, dict)
        for path in sums:
            verify.check_dataset_file(container, path, sums, "batch manifest")
        return bulkload.verify_group(container, plan.groups[int(str(unit[1]))])
    if kind == "range":
        verify.verify_range_file(container, plan.range_files[int(str(unit[1]))], str(unit[2]))
        return {}
    stream, first, end = (int(str(x)) for x in unit[1:])
    verify.verify_log_files(container, plan.streams[stream][first:end], checksummed=plan.log_checksums)
    return {}


def prerequisites(ctx: Context, uid: str) -> Dispatch | None:
    """Everything verified and, for BulkLoad, the destination configured for it; returns the snapshot
    phase to dispatch (range files or BulkLoad groups)."""
    job = load(ctx, uid)
    if not job.active:
        return None
    plan = plan_of(ctx, uid)
    if len(ctx.restores.results(uid, "verify")) != len(plan.verify_units):
        err = "not every file of the restore was verified"
        fail(ctx, uid, ds.incomplete(err) if job.mode == RestoreMode.BULKLOAD else errors.RestoreError(err), "verify")
        return None
    if job.mode == RestoreMode.BULKLOAD:
        knobs = ctx.cluster(job.cluster_file).knobs()
        for knob in BULKLOAD_KNOBS:
            if knobs.get(knob, "0") not in ("1", "true"):
                hint = f"BulkLoad requires --knob_{knob}=1. Restart the destination cluster with this knob enabled."
                fail(ctx, uid, errors.BulkloadInvalidConfiguration(hint), "prerequisites")
                return None
    if job.verified_at is None:
        ctx.restores.job(uid).update(verified_at=time.time())
    return Dispatch(job.mode, plan.snapshot_tasks)


def rangefile_task(ctx: Context, uid: str, index: int) -> None:
    job = load(ctx, uid)
    if not job.active or str(index) in ctx.restores.results(uid, "rangefile"):
        return
    ref = plan_of(ctx, uid).range_files[index]
    try:
        blocks, written = rangefile.restore_file(
            ctx.cluster(job.cluster_file),
            ctx.container(job),
            ref,
            job.ranges,
            job.rewrite,
            job.lock_owner,
            snapshot_fence_key(uid),
        )
    except rangefile.SnapshotPhaseClosed:
        return  # another copy restored this file and the log replay has begun
    ctx.restores.put_result(uid, "rangefile", str(index), {"blocks": blocks, "bytes": written})
    metrics.FILES_READ.labels("restore_rangefile").inc()
    metrics.BYTES_READ.labels("restore_rangefile").inc(ref.size)
    metrics.BYTES_WRITTEN.labels("restore_rangefile").inc(written)
    record = ctx.restores.job(uid)
    record.incr("blocks_done", blocks)
    record.incr("bytes_written", written)


def bulkload_task(ctx: Context, uid: str, index: int) -> None:
    """Load one group; retried while attempts remain, then fails the restore (2391).

    Retryable errors (connection loss, timeouts) are retried without limit like everything else;
    other failures get ``BULKLOAD_ATTEMPTS`` tries.
    """
    job = load(ctx, uid)
    if not job.active or str(index) in ctx.restores.results(uid, "bulkload"):
        return
    plan = plan_of(ctx, uid)
    entries = plan.groups[index]
    driver = ctx.cluster(job.cluster_file)
    if driver.get(snapshot_fence_key(uid), driver.get_read_version()) is None:
        return  # the snapshot phase is over: another copy loaded this group
    ctx.restores.put_result(uid, "bulkload_started", str(index), time.time())
    try:
        parts = bulkload.load_group(
            driver,
            job.url,
            plan.bulkdump_job_id,
            entries,
            job.ranges,
            job.rewrite,
            job.lock_owner,
            timeout=None,
            encryption=job.encryption,
        )
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        if not load(ctx, uid).active:
            return  # aborted meanwhile: the rollback took the lock, so the load was shut out
        if isinstance(exc, errors.RangeLockReject):
            # The restore holds the lock on every destination range from its start on, so the only
            # load the cluster can be running there is another copy of this task (a redelivery):
            # wait for it, then find its result recorded.
            raise errors.Retry(f"BulkLoad group {index}: {exc.message}") from exc
        fatal = isinstance(exc, errors.BulkloadInvalidConfiguration)
        if exc.retryable and not fatal:
            raise
        if not fatal and ctx.restores.job(uid).incr("bulkload_attempts", key=index) < BULKLOAD_ATTEMPTS:
            ctx.restores.add_error(uid, ErrorRecord.from_error("bulkload", exc))
            raise errors.Retry(f"BulkLoad group {index} failed, retrying: {exc.message}") from exc
        span = f"{entries[0].range.begin!r}..{entries[-1].range.end!r}"
        failure = exc if fatal else errors.RestoreBulkloadFailed(f"BulkLoad of shard {span} failed: {exc}")
        fail(ctx, uid, failure, "bulkload")
        return
    ctx.restores.put_result(uid, "bulkload", str(index), [p.to_json() for p in parts])
    record = ctx.restores.job(uid)
    record.incr("tasks_done")
    record.incr("bytes_written", sum(p.bytes for p in parts))
    metrics.BYTES_WRITTEN.labels("bulkload").inc(sum(p.bytes for p in parts))
    metrics.FILES_READ.labels("bulkload").inc(sum(p.files for p in parts))


def snapshot_done(ctx: Context, uid: str) -> int | None:
    """Prove the snapshot phase complete and close it; returns the number of replay streams to start
    (0: none, go straight to ``finish``), or None when the restore is over.

    A second copy (a redelivery, or a callback of a duplicated chord) gets the same count again: the
    replay tasks it starts find their streams done or race the first ones exactly once. Answering 0
    there instead would send ``finish`` in while the streams still replay, and abort the restore.
    """
    job = load(ctx, uid)
    if not job.active:
        return None
    if job.snapshot_phase != PhaseState.COMPLETE:
        try:
            _check_snapshot_complete(ctx, job)
        except errors.FDBError as exc:
            fail(ctx, uid, exc, "snapshot")
            return None
        # Before any replay commit: a late copy of a snapshot task can no longer write.
        ctx.cluster(job.cluster_file).commit([clear(snapshot_fence_key(uid))], lock_owner=job.lock_owner)
        record = ctx.restores.job(uid)
        if record.compare_and_set("snapshot_phase", [PhaseState.IN_PROGRESS], PhaseState.COMPLETE):
            record.update(log_phase=PhaseState.IN_PROGRESS, snapshot_done_at=time.time())
            if job.mode == RestoreMode.BULKLOAD:
                metrics.BULKLOAD_RESTORES.labels("complete").inc()
            if job.started_at is not None:
                metrics.observe_throughput("restore", job.mode.value, job.bytes_written, time.time() - job.started_at)
    return job.streams


def _check_snapshot_complete(ctx: Context, job: RestoreJob) -> None:
    tasks = plan_of(ctx, job.uid).snapshot_tasks
    if job.mode == RestoreMode.RANGEFILE:
        done = ctx.restores.results(job.uid, "rangefile")
        if len(done) != tasks:
            raise errors.RestoreMissingData(f"only {len(done)} of {tasks} range files were restored")
        return
    loaded = [
        bulkload.LoadedPart.from_json(p) for parts in ctx.restores.results(job.uid, "bulkload").values() for p in parts
    ]
    ranges: list[KeyRange] = [p.range for p in loaded]
    if not covers_exactly(ranges, job.ranges):
        missing = subtract(job.ranges, ranges)
        raise errors.RestoreBulkloadFailed(
            f"BulkLoad did not load every restore range; missing {', '.join(map(str, missing)) or 'overlaps'}"
        )
    counts: dict[str, int] = {}
    for group in ctx.restores.results(job.uid, "verify").values():
        counts.update(group)
    for p in loaded:
        if p.whole_batches:
            expected = sum(counts[m] for m in p.manifests)
            if p.keys != expected:
                raise errors.RestoreBulkloadFailed(
                    f"BulkLoad of {p.range} loaded {p.keys} keys; the dataset holds {expected}"
                )
