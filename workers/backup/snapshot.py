"""Snapshot periods: dispatch, the range-file and BulkDump task steps, and their callbacks.

A step never raises for a failure that policy says to record instead (a BulkDump failure in
``both`` mode must not stop the range-file snapshot); failures that end a snapshot are handled by
the ``*_failed`` functions, which the task layer calls for errors retrying cannot fix.
"""

from __future__ import annotations

import time
from typing import TypeVar

from fdbcore import errors, naming
from fdbcore.modes import SnapshotMode
from workers import codecs, metrics, trace
from workers.backup import bulkdump, control, planning, rangefile
from workers.backup.job import (
    BackupJob,
    BulkDumpSnapshot,
    MethodSnapshot,
    Phase,
    RangeFileSnapshot,
    bulkdump_record,
    rangefile_record,
    snapshot_url,
)
from workers.backup.lifecycle import fail, load, record_error
from workers.context import Context
from workers.state import RecordHash

BULKDUMP_ONLY_ADVICE = "BulkDump failed in --mode bulkdump; retry with --mode rangefile or --mode both"
#: Attempts of one BulkDump task that fails (not merely a retryable error, which is retried until the
#: deadline) before the BulkDump snapshot is recorded as failed: a failing storage server may recover.
BULKDUMP_ATTEMPTS = 5


S = TypeVar("S", bound=MethodSnapshot)


def open_period(ctx: Context, job: BackupJob, now: float) -> None:
    """Open snapshot period ``job.snapshot_seq + 1``: record its range-file tasks (sent later, paced,
    by :func:`workers.backup.schedule.next_steps`) and the seconds it lasts at least.

    Only the backup's log chain calls this (one round at a time), and the record is created only if
    absent, so a round that runs twice opens the period once.
    """
    seq = job.snapshot_seq + 1
    driver = ctx.cluster(job.cluster_file)
    if job.mode.range_files:
        pieces = planning.split_by_shards(job.ranges, driver.shard_map())
        rf = RangeFileSnapshot(seq=seq, tasks=pieces, started_at=now, url=job.url, version=driver.get_read_version())
        rangefile_record(ctx.backups, job.uid, seq).put_new(rf)
    period = job.initial_snapshot_interval if seq == 1 else job.snapshot_interval
    record = ctx.backups.job(job.uid)
    if record.compare_and_set("snapshot_seq", [job.snapshot_seq], seq):
        record.update(snapshot_started_at=now, period_seconds=period)
        trace.event("BackupSnapshotPeriodStart", BackupUID=job.uid, Period=seq, IntervalSeconds=period)


def start_bulkdump(ctx: Context, job: BackupJob, now: float) -> list[int]:
    """Claim the backup's one BulkDump for the newest period; returns its task indexes in the order
    to send them (none: not claimed)."""
    seq = job.snapshot_seq
    shards = ctx.cluster(job.cluster_file).shard_map()
    pieces = planning.split_by_shards(job.ranges, shards)
    bd = BulkDumpSnapshot(
        seq=seq,
        tasks=pieces,
        started_at=now,
        url=job.url,
        job_id=naming.new_uid(),
        deadline_at=now + job.bulkdump_deadline,
        estimated_bytes=planning.estimated_bytes(pieces, shards),
    )
    record = bulkdump_record(ctx.backups, job.uid, seq)
    record.put_new(bd)
    if not ctx.backups.job(job.uid).compare_and_set("bulkdump_seq", [job.bulkdump_seq], seq):
        return []
    return record.get().dispatch_order


def mark_rangefile_dispatched(ctx: Context, uid: str, seq: int, first: int, end: int) -> None:
    """Tasks ``[first, end)`` of the period's range-file snapshot were sent (after sending: a crash in
    between sends them again, which is harmless, rather than never)."""
    rangefile_record(ctx.backups, uid, seq).compare_and_set("tasks_dispatched", [first], end)


def skip_rangefile(ctx: Context, uid: str, seq: int) -> None:
    """The period's range-file snapshot will not be taken (``discontinue`` came before it began)."""
    if rangefile_record(ctx.backups, uid, seq).compare_and_set("phase", [Phase.RUNNING], Phase.SKIPPED):
        trace.event("BackupSnapshotPeriodSkipped", BackupUID=uid, Period=seq)


def mark_bulkdump_dispatched(ctx: Context, uid: str, seq: int) -> None:
    bulkdump_record(ctx.backups, uid, seq).update(dispatched=True)


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
    _wait_while_paused(ctx)
    record = rangefile_record(ctx.backups, uid, seq)
    snap = record.get()
    files = rangefile.write_range_files(
        ctx.cluster(job.cluster_file),
        ctx.container(job, snapshot_url(job, snap)),
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


def _wait_while_paused(ctx: Context) -> None:
    """``fdbbackup pause``: snapshot tasks wait (retrying) until ``resume``."""
    if control.paused(ctx.redis):
        raise errors.Retry("backup agents are paused (fdbbackup resume continues)")


def _running(job: BackupJob, current: int, record: RecordHash[S]) -> S | None:
    """The snapshot, if it is the backup's current one of its method and the backup still waits for it."""
    snap = record.load()
    if not job.active or snap is None or snap.seq != current or snap.phase != Phase.RUNNING:
        return None
    return snap


def finish_rangefile(ctx: Context, uid: str, seq: int) -> None:
    job = load(ctx, uid)
    record = rangefile_record(ctx.backups, uid, seq)
    if (snap := _running(job, job.snapshot_seq, record)) is None:
        return
    results = ctx.backups.results(uid, f"rangefile:{seq}")
    container = ctx.container(job, snapshot_url(job, snap))
    failures = [r["error"]["message"] for r in results.values() if "error" in r]
    if failures:
        raise errors.BackupError(f"range-file snapshot failed: {failures[0]}")
    if len(results) < snap.tasks_total:
        return  # the tasks are sent in paced batches, one chord each: the last batch's callback finishes
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
    ctx.backups.job(uid).compare_and_set("first_snapshot_end", [None], manifest.end_version)
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
    container = ctx.container(job, snapshot_url(job, snap))
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
    _wait_while_paused(ctx)
    record = bulkdump_record(ctx.backups, uid, seq)
    snap = record.get()
    piece = snap.tasks[index]
    remaining = snap.deadline_at - time.time()
    if remaining <= 0:
        _record_failure(
            ctx, uid, name, index, errors.BackupBulkdumpTimeout(f"BulkDump of {piece} passed its deadline"), "bulkdump"
        )
        return
    url = snapshot_url(job, snap)
    container = ctx.container(job, url)
    try:
        batches = bulkdump.dump_piece(
            ctx.cluster(job.cluster_file),
            container,
            url,
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
    if (snap := _running(job, job.bulkdump_seq, record)) is None:
        return
    results = ctx.backups.results(uid, f"bulkdump:{seq}")
    failures = [r["error"] for r in results.values() if "error" in r]
    container = ctx.container(job, snapshot_url(job, snap))
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
    job_record = ctx.backups.job(uid)
    job_record.set_max("bulkdump_end", manifest.end_version)
    if job.mode == SnapshotMode.BULKDUMP:
        job_record.compare_and_set("first_snapshot_end", [None], manifest.end_version)
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
    # No manifest will ever name this dump's files (the cluster stops a dump whose caller gave up).
    container = ctx.container(job, snapshot_url(job, snap))
    container.delete_prefix(f"{naming.BULKDUMP_ROOT}/{naming.bulkdump_job_dir(snap.job_id)}/")
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
    if not job.active or (job.bulkdump_seq if phase == "bulkdump" else job.snapshot_seq) != seq:
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
