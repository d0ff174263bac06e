"""Snapshot periods: dispatch, the range-file and BulkDump task steps, and their callbacks.

A step never raises for a failure that policy says to record instead (a BulkDump failure in
``both`` mode must not stop the range-file snapshot); failures that end a snapshot are handled by
the ``*_failed`` functions, which the task layer calls for errors retrying cannot fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypeVar

from fdbcore import errors, naming
from fdbcore.modes import SnapshotMode
from workers import codecs, metrics, trace
from workers.backup import bulkdump, planning, rangefile
from workers.backup.job import (
    BackupJob,
    BulkDumpSnapshot,
    MethodSnapshot,
    Phase,
    RangeFileSnapshot,
    bulkdump_record,
    rangefile_record,
)
from workers.backup.lifecycle import fail, load, record_error
from workers.context import Context
from workers.state import RecordHash

BULKDUMP_ONLY_ADVICE = "BulkDump failed in --mode bulkdump; retry with --mode rangefile or --mode both"
#: Attempts of one BulkDump task that fails (not merely a retryable error, which is retried until the
#: deadline) before the BulkDump snapshot is recorded as failed: a failing storage server may recover.
BULKDUMP_ATTEMPTS = 5


S = TypeVar("S", bound=MethodSnapshot)


@dataclass(frozen=True)
class SnapshotPlan:
    seq: int
    rangefile_tasks: int
    bulkdump_tasks: int


def plan(ctx: Context, uid: str, seq: int) -> SnapshotPlan | None:
    """Claim snapshot period ``seq`` and record its tasks; None if there is nothing to dispatch.

    The period's records are created only if absent, so two copies of this step agree on one plan
    (one BulkDump job id); a redelivered copy whose chords were never marked dispatched gets the
    recorded plan again (duplicate chords are harmless: every step is idempotent).
    """
    job = load(ctx, uid)
    if not job.active or job.snapshot_seq > seq or (job.snapshot_seq == seq and _dispatched(ctx, uid, seq)):
        return None
    if job.snapshot_seq < seq - 1:
        return None  # a period that was never due
    driver = ctx.cluster(job.cluster_file)
    pieces = planning.split_by_shards(job.ranges, driver.shard_map())
    now = time.time()
    if job.mode.range_files:
        rf = RangeFileSnapshot(seq=seq, tasks=pieces, started_at=now, version=driver.get_read_version())
        rangefile_record(ctx.backups, uid, seq).put_new(rf)
    if job.mode.bulkdump:
        deadline = now + job.bulkdump_deadline
        bd = BulkDumpSnapshot(seq=seq, tasks=pieces, started_at=now, job_id=naming.new_uid(), deadline_at=deadline)
        bulkdump_record(ctx.backups, uid, seq).put_new(bd)
    record = ctx.backups.job(uid)
    if record.compare_and_set("snapshot_seq", [seq - 1], seq):
        record.update(snapshot_started_at=now)
    rf_snap, bd_snap = rangefile_record(ctx.backups, uid, seq).load(), bulkdump_record(ctx.backups, uid, seq).load()
    return SnapshotPlan(seq, rf_snap.tasks_total if rf_snap else 0, bd_snap.tasks_total if bd_snap else 0)


def _dispatched(ctx: Context, uid: str, seq: int) -> bool:
    snaps = (rangefile_record(ctx.backups, uid, seq).load(), bulkdump_record(ctx.backups, uid, seq).load())
    return any(s is not None and s.dispatched for s in snaps)


def mark_dispatched(ctx: Context, uid: str, seq: int) -> None:
    for record in (rangefile_record(ctx.backups, uid, seq), bulkdump_record(ctx.backups, uid, seq)):
        if record.load() is not None:
            record.update(dispatched=True)


def _record_failure(ctx: Context, uid: str, results: str, index: int, exc: errors.FDBError, phase: str) -> None:
    """A task's failure as its outcome (once; a success recorded by another copy stays)."""
    if ctx.backups.record_outcome(uid, results, str(index), {"error": exc.to_dict()}):
        record_error(ctx, uid, phase, exc)


# --- range files --------------------------------------------------------------------------------


def rangefile_task(ctx: Context, uid: str, seq: int, index: int) -> None:
    job = load(ctx, uid)
    name = f"rangefile:{seq}"
    if not job.active or str(index) in ctx.backups.results(uid, name):
        return
    record = rangefile_record(ctx.backups, uid, seq)
    snap = record.get()
    files = rangefile.write_range_files(
        ctx.cluster(job.cluster_file),
        ctx.container(job),
        snap.tasks[index],
        snap.version,
        index,
    )
    if not ctx.backups.record_outcome(uid, name, str(index), {"files": [rangefile.result_to_json(f) for f in files]}):
        return  # another copy of this task recorded its files first; ours are orphans finish_rangefile removes
    metrics.BYTES_WRITTEN.labels("rangefile").inc(sum(f.size for f in files))
    metrics.BYTES_READ.labels("rangefile").inc(sum(f.kv_bytes for f in files))
    metrics.FILES_WRITTEN.labels("rangefile").inc(len(files))
    record.incr("bytes", sum(f.size for f in files))
    record.incr("tasks_done")


def rangefile_task_failed(ctx: Context, uid: str, seq: int, index: int, exc: errors.FDBError) -> None:
    _record_failure(ctx, uid, f"rangefile:{seq}", index, exc, "rangefile")


def _running(job: BackupJob, seq: int, record: RecordHash[S]) -> S | None:
    """The period's snapshot of one method, if the backup still waits for it to finish."""
    snap = record.load()
    if not job.active or job.snapshot_seq != seq or snap is None or snap.phase != Phase.RUNNING:
        return None
    return snap


def finish_rangefile(ctx: Context, uid: str, seq: int) -> None:
    job = load(ctx, uid)
    record = rangefile_record(ctx.backups, uid, seq)
    if (snap := _running(job, seq, record)) is None:
        return
    results = ctx.backups.results(uid, f"rangefile:{seq}")
    container = ctx.container(job)
    failures = [r["error"]["message"] for r in results.values() if "error" in r]
    if failures:
        raise errors.BackupError(f"range-file snapshot failed: {failures[0]}")
    files = [rangefile.RangeFileResult(**f) for r in results.values() for f in r["files"]]
    path, manifest = rangefile.build_manifest(container, files, job.ranges)
    container.write(path, manifest.to_json())
    _delete_orphans(ctx, job, snap, set(manifest.files))
    metrics.observe_throughput("backup", "rangefile", manifest.total_bytes, time.time() - snap.started_at)
    record.update(
        phase=Phase.COMPLETE,
        begin_version=manifest.begin_version,
        end_version=manifest.end_version,
        total_bytes=manifest.total_bytes,
        manifest=path,
        finished_at=time.time(),
    )
    _maybe_dual_complete(ctx, uid, seq)


def rangefile_snapshot_failed(ctx: Context, uid: str, seq: int, exc: errors.FDBError) -> None:
    """The period's range-file snapshot cannot be written: the backup fails."""
    record = rangefile_record(ctx.backups, uid, seq)
    snap = record.load()
    if snap is None or snap.phase != Phase.RUNNING:
        return
    record_error(ctx, uid, "rangefile", exc)
    record.update(phase=Phase.FAILED)
    fail(ctx, uid, errors.BackupError(f"the range-file snapshot failed: {exc.message}"))


def _delete_orphans(ctx: Context, job: BackupJob, snap: RangeFileSnapshot, keep: set[str]) -> None:
    """Range files of this snapshot that no manifest names (left by crashed or duplicate tasks)."""
    container = ctx.container(job)
    for info in list(container.list(naming.snapshot_folder(snap.version) + "/")):
        if info.path not in keep:
            container.delete(info.path)


# --- BulkDump -----------------------------------------------------------------------------------


def bulkdump_task(ctx: Context, uid: str, seq: int, index: int) -> None:
    """Dump one piece; retryable errors propagate (the task retries) until the deadline passes, and a
    failure is tried again up to ``BULKDUMP_ATTEMPTS`` times before it is recorded."""
    job = load(ctx, uid)
    name = f"bulkdump:{seq}"
    if not job.active or str(index) in ctx.backups.results(uid, name):
        return
    record = bulkdump_record(ctx.backups, uid, seq)
    snap = record.get()
    piece = snap.tasks[index]
    remaining = snap.deadline_at - time.time()
    if remaining <= 0:
        _record_failure(
            ctx, uid, name, index, errors.BackupBulkdumpTimeout(f"BulkDump of {piece} passed its deadline"), "bulkdump"
        )
        return
    container = ctx.container(job)
    try:
        batches = bulkdump.dump_piece(
            ctx.cluster(job.cluster_file),
            container,
            job.url,
            snap.job_id,
            index,
            piece,
            remaining,
            content_check=ctx.settings.verify_dump_content,
            encryption=job.encryption,
        )
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        in_time = time.time() < snap.deadline_at
        if exc.retryable and in_time:
            raise
        if in_time and record.incr("attempts", key=index) < BULKDUMP_ATTEMPTS:
            record_error(ctx, uid, "bulkdump", exc)
            raise errors.Retry(f"BulkDump of {piece} failed, retrying: {exc.message}") from exc
        err = exc if exc.code != errors.TimedOut.code else errors.BackupBulkdumpTimeout(exc.message)
        _record_failure(ctx, uid, name, index, err, "bulkdump")
        return
    sums = bulkdump.manifest_checksums(container, batches)
    outcome = {"batches": [codecs.batch_to_json(b) for b in batches], "manifest_sha256": sums}
    if not ctx.backups.record_outcome(uid, name, str(index), outcome):
        return  # another copy of this task recorded its batches first; finish_bulkdump removes ours
    metrics.BYTES_WRITTEN.labels("bulkdump").inc(sum(b.data_file_size for b in batches))
    metrics.FILES_WRITTEN.labels("bulkdump").inc(sum(2 if b.data_path else 1 for b in batches))
    record.incr("bytes", sum(b.data_file_size for b in batches))
    record.incr("keys", sum(b.key_count for b in batches))
    record.incr("tasks_done")


def finish_bulkdump(ctx: Context, uid: str, seq: int) -> None:
    job = load(ctx, uid)
    record = bulkdump_record(ctx.backups, uid, seq)
    if (snap := _running(job, seq, record)) is None:
        return
    results = ctx.backups.results(uid, f"bulkdump:{seq}")
    failures = [r["error"] for r in results.values() if "error" in r]
    container = ctx.container(job)
    if failures:
        code = errors.BackupBulkdumpTimeout.code
        timed_out = any(f["code"] in (code, errors.TimedOut.code) for f in failures)
        cls = errors.BackupBulkdumpTimeout if timed_out else errors.BackupBulkdumpFailed
        raise cls(f"{len(failures)} of {len(results)} BulkDump tasks failed: {failures[0]['message']}")
    batches = [codecs.batch_from_json(b) for r in results.values() for b in r["batches"]]
    sums = {p: d for r in results.values() for p, d in r.get("manifest_sha256", {}).items()}
    path, manifest = bulkdump.assemble(container, snap.job_id, batches, job.ranges, sums)
    container.write(path, manifest.to_json())
    bulkdump.delete_unused_task_folders(container, snap.job_id, batches)
    record.update(
        phase=Phase.COMPLETE,
        finished_at=time.time(),
        begin_version=manifest.begin_version,
        end_version=manifest.end_version,
        total_bytes=manifest.total_bytes,
        manifest=path,
    )
    metrics.BULKDUMP_SNAPSHOTS.labels("complete").inc()
    metrics.observe_throughput("backup", "bulkdump", manifest.total_bytes, time.time() - snap.started_at)
    _maybe_dual_complete(ctx, uid, seq)


def bulkdump_snapshot_failed(ctx: Context, uid: str, seq: int, exc: errors.FDBError) -> None:
    """The period's BulkDump is over without a dataset: recorded; in ``bulkdump`` mode the backup fails."""
    job = load(ctx, uid)
    record = bulkdump_record(ctx.backups, uid, seq)
    snap = record.load()
    if snap is None or snap.phase != Phase.RUNNING:
        return
    timed_out = exc.code == errors.BackupBulkdumpTimeout.code
    named = exc.code in (errors.BackupBulkdumpTimeout.code, errors.BackupBulkdumpFailed.code)
    err = exc if named else errors.BackupBulkdumpFailed(exc.message)
    record_error(ctx, uid, "bulkdump", err)
    metrics.BULKDUMP_SNAPSHOTS.labels("timed_out" if timed_out else "failed").inc()
    if job.mode == SnapshotMode.BOTH:
        metrics.FALLBACKS.labels("backup").inc()
    record.update(phase=Phase.TIMED_OUT if timed_out else Phase.FAILED, finished_at=time.time())
    if job.mode == SnapshotMode.BULKDUMP:
        fail(ctx, uid, type(err)(f"{err.message}. {BULKDUMP_ONLY_ADVICE}"))
    _maybe_dual_complete(ctx, uid, seq)  # the range files may have finished first


def _maybe_dual_complete(ctx: Context, uid: str, seq: int) -> None:
    rf, bd = rangefile_record(ctx.backups, uid, seq).load(), bulkdump_record(ctx.backups, uid, seq).load()
    if rf is None or bd is None or not (rf.phase.finished and bd.phase.finished):
        return
    if rf.total_bytes:
        metrics.DUAL_OVERHEAD.set((rf.total_bytes + bd.total_bytes) / rf.total_bytes)
    trace.event(
        "BackupDualSnapshotComplete",
        BackupUID=uid,
        RangeFilesBytes=rf.total_bytes,
        BulkDumpBytes=bd.total_bytes,
        BulkDumpPhase=bd.phase,
    )


def chord_failed(ctx: Context, uid: str, seq: int, phase: str) -> None:
    """A snapshot chord broke (a header task was killed by its hard time limit): never hang, record it."""
    job = load(ctx, uid)
    if not job.active or job.snapshot_seq != seq:
        return
    err = errors.BackupError(f"a {phase} snapshot task failed without recording a result")
    if phase == "bulkdump":
        bulkdump_snapshot_failed(ctx, uid, seq, errors.BackupBulkdumpFailed(err.message))
    elif phase == "rangefile":
        record = rangefile_record(ctx.backups, uid, seq)
        snap = record.load()
        if snap is not None and snap.phase == Phase.RUNNING:
            record.update(phase=Phase.FAILED)
            fail(ctx, uid, err)
