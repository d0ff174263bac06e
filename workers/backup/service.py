"""Backup steps, one function per Celery task (the tasks only add retries and canvas).

Every step is idempotent: it re-reads the record, skips work already recorded, and makes its
changes with compare-and-set or keyed results, so a redelivered or concurrent copy leaves one
correct outcome. Steps never raise for a failure that policy says to record instead (a BulkDump
failure in ``both`` mode must not stop the range-file snapshot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors, naming
from fdbcore.catalog import LOG_CHECKSUM_ALGORITHM, MUTATION_LOG_PARTITIONED, encode_partition_map
from fdbcore.formats.properties import EncryptionMetadata, format_version_property
from workers import metrics, trace
from workers.backup import bulkdump, mutationlog, planning, rangefile
from workers.backup.job import ACTIVE_STATES, BackupJob, BackupState, Phase, SnapshotMode, ranges_from_json
from workers.backup.job import ranges_to_json as _ranges_json
from workers.context import Context
from workers.state import ErrorRecord

BULKDUMP_ONLY_ADVICE = "BulkDump failed in --mode bulkdump; retry with --mode rangefile or --mode both"
#: Attempts of one BulkDump task that fails (not merely a retryable error, which is retried until the
#: deadline) before the BulkDump snapshot is recorded as failed: a failing storage server may recover.
BULKDUMP_ATTEMPTS = 5
#: An idle partition still writes a (possibly empty) file once its pending span exceeds this.
MAX_LOG_SPAN_SECONDS = 10.0


def load(ctx: Context, uid: str) -> BackupJob:
    return BackupJob.from_fields(ctx.backups.get(uid))


def record_error(ctx: Context, uid: str, phase: str, err: BaseException) -> None:
    ctx.backups.add_error(uid, ErrorRecord.from_error(phase, err))
    trace.event(
        "BackupError",
        trace.SEV_WARN_ALWAYS,
        BackupUID=uid,
        Phase=phase,
        Error=getattr(err, "name", repr(err)),
    )


# --- start ------------------------------------------------------------------------------------------


def start(ctx: Context, uid: str) -> bool:
    """Register log capture and write the container metadata; True if the backup is now running."""
    job = load(ctx, uid)
    if job.state != BackupState.SUBMITTED:
        return job.state in ACTIVE_STATES
    driver = ctx.cluster(job.cluster_file)
    container = ctx.container(job.url, job.credential_files)
    parts = planning.choose_partitions(job.ranges, driver.shard_map())
    saved = {tag: driver.start_log_capture(job.capture_id(tag), p.ranges) for tag, p in enumerate(parts)}
    container.create()
    container.write(naming.property_path(naming.MUTATION_LOG_TYPE), format_version_property(MUTATION_LOG_PARTITIONED))
    container.write(naming.property_path(naming.ENCRYPTION_METADATA), EncryptionMetadata().to_json())
    container.write(naming.property_path(naming.LOG_CHECKSUMS), LOG_CHECKSUM_ALGORITHM)
    container.write(
        naming.property_path(naming.LOG_PARTITION_MAP),
        encode_partition_map({tag: p.span for tag, p in enumerate(parts)}),
    )
    ctx.backups.update(
        uid,
        partitions=_ranges_json([p.span for p in parts]),
        begin_version=max(saved.values()),
        log_round=1,
        **{f"log_saved:{tag}": v for tag, v in saved.items()},
    )
    trace.event("BackupBulkDumpIntegrationStart", BackupUID=uid, BackupURL=job.url_display, SnapshotMode=job.mode)
    return ctx.backups.compare_and_set(uid, "state", [BackupState.SUBMITTED], BackupState.RUNNING)


# --- snapshot dispatch --------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotPlan:
    seq: int
    rangefile_tasks: int
    bulkdump_tasks: int


def plan_snapshot(ctx: Context, uid: str, seq: int) -> SnapshotPlan | None:
    """Claim snapshot ``seq`` and record its task lists; None if there is nothing to dispatch.

    A redelivered dispatch whose claim succeeded but whose chords were never marked dispatched
    gets the recorded plan again (duplicate chords are harmless: every step is idempotent).
    """
    job = load(ctx, uid)
    if not job.active:
        return None
    previous = [str(seq - 1), ""] if seq == 1 else [str(seq - 1)]  # "" = never claimed
    if not ctx.backups.compare_and_set(uid, "snapshot_seq", previous, seq):
        if job.snapshot_seq != seq or job.raw.get(f"snapshot_dispatched:{seq}") == "1":
            return None
        return _recorded_plan(load(ctx, uid), seq)
    driver = ctx.cluster(job.cluster_file)
    pieces = planning.split_by_shards(job.ranges, driver.shard_map())
    fields: dict[str, object] = {
        "snapshot_started_at": time.time(),
        "snapshot_version": driver.get_read_version(),
    }
    if job.mode.range_files:
        fields.update(rf_phase=Phase.RUNNING, rf_tasks_total=len(pieces), rf_tasks_done=0)
        fields[f"rf_tasks:{seq}"] = _ranges_json(pieces)
    if job.mode.bulkdump:
        fields.update(
            bd_phase=Phase.RUNNING,
            bd_job_id=naming.new_uid(),
            bd_tasks_total=len(pieces),
            bd_tasks_done=0,
            bd_bytes=0,
            bd_keys=0,
            bd_started_at=time.time(),
            bd_deadline_at=time.time() + job.bulkdump_deadline,
        )
        fields[f"bd_tasks:{seq}"] = _ranges_json(pieces)
    ctx.backups.update(uid, **fields)
    return _recorded_plan(load(ctx, uid), seq)


def _recorded_plan(job: BackupJob, seq: int) -> SnapshotPlan:
    def count(field: str) -> int:
        return len(ranges_from_json(job.raw[field])) if field in job.raw else 0

    return SnapshotPlan(seq, count(f"rf_tasks:{seq}"), count(f"bd_tasks:{seq}"))


def mark_dispatched(ctx: Context, uid: str, seq: int) -> None:
    ctx.backups.update(uid, **{f"snapshot_dispatched:{seq}": True})


# --- range files --------------------------------------------------------------------------------


def rangefile_task(ctx: Context, uid: str, seq: int, index: int) -> None:
    job = load(ctx, uid)
    name = f"rangefile:{seq}"
    if not job.active or str(index) in ctx.backups.results(uid, name):
        return
    piece = ranges_from_json(job.raw[f"rf_tasks:{seq}"])[index]
    assert job.snapshot_version is not None
    try:
        files = rangefile.write_range_files(
            ctx.cluster(job.cluster_file),
            ctx.container(job.url, job.credential_files),
            piece,
            job.snapshot_version,
            index,
        )
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        if exc.retryable:
            raise
        if ctx.backups.record_outcome(uid, name, str(index), {"error": exc.to_dict()}):
            record_error(ctx, uid, "rangefile", exc)
        return
    if not ctx.backups.record_outcome(uid, name, str(index), {"files": [rangefile.result_to_json(f) for f in files]}):
        return  # another copy of this task recorded its files first; ours are orphans finish_rangefile removes
    metrics.BYTES_WRITTEN.labels("rangefile").inc(sum(f.size for f in files))
    metrics.BYTES_READ.labels("rangefile").inc(sum(f.kv_bytes for f in files))
    metrics.FILES_WRITTEN.labels("rangefile").inc(len(files))
    ctx.backups.incr(uid, "rf_bytes", sum(f.size for f in files))
    ctx.backups.incr(uid, "rf_tasks_done")


def finish_rangefile(ctx: Context, uid: str, seq: int) -> None:
    job = load(ctx, uid)
    if not job.active or job.snapshot_seq != seq or job.rf_phase != Phase.RUNNING:
        return
    results = ctx.backups.results(uid, f"rangefile:{seq}")
    container = ctx.container(job.url, job.credential_files)
    try:
        failures = [r["error"]["message"] for r in results.values() if "error" in r]
        if failures:
            raise errors.BackupError(f"range-file snapshot failed: {failures[0]}")
        files = [rangefile.RangeFileResult(**f) for r in results.values() for f in r["files"]]
        path, manifest = rangefile.build_manifest(container, files, job.ranges)
        container.write(path, manifest.to_json())
    except errors.FDBError as exc:
        if exc.retryable:
            raise
        record_error(ctx, uid, "rangefile", exc)
        ctx.backups.update(uid, rf_phase=Phase.FAILED)
        fail(ctx, uid, errors.BackupError(f"the range-file snapshot failed: {exc.message}"))
        return
    _delete_orphans(ctx, job, set(manifest.files))
    if job.snapshot_started_at is not None:
        metrics.observe_throughput("backup", "rangefile", manifest.total_bytes, time.time() - job.snapshot_started_at)
    ctx.backups.update(
        uid,
        rf_phase=Phase.COMPLETE,
        rf_begin_version=manifest.begin_version,
        rf_end_version=manifest.end_version,
        rf_total_bytes=manifest.total_bytes,
        rf_manifest=path,
        rf_finished_at=time.time(),
    )
    _maybe_dual_complete(ctx, uid)


def _delete_orphans(ctx: Context, job: BackupJob, keep: set[str]) -> None:
    """Range files of this snapshot that no manifest names (left by crashed or duplicate tasks)."""
    assert job.snapshot_version is not None
    container = ctx.container(job.url, job.credential_files)
    for info in list(container.list(naming.snapshot_folder(job.snapshot_version) + "/")):
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
    remaining = float(job.raw.get("bd_deadline_at", "0")) - time.time()
    piece = ranges_from_json(job.raw[f"bd_tasks:{seq}"])[index]
    if remaining <= 0:
        err: errors.FDBError = errors.BackupBulkdumpTimeout(f"BulkDump of {piece} passed its deadline")
        ctx.backups.record_outcome(uid, name, str(index), {"error": err.to_dict()})
        return
    try:
        batches = bulkdump.dump_piece(
            ctx.cluster(job.cluster_file),
            ctx.container(job.url, job.credential_files),
            job.url,
            job.bd_job_id,
            index,
            piece,
            remaining,
            content_check=ctx.settings.verify_dump_content,
        )
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        in_time = time.time() < float(job.raw["bd_deadline_at"])
        if exc.retryable and in_time:
            raise
        if in_time and ctx.backups.incr(uid, f"bd_attempts:{seq}:{index}") < BULKDUMP_ATTEMPTS:
            record_error(ctx, uid, "bulkdump", exc)
            raise errors.Retry(f"BulkDump of {piece} failed, retrying: {exc.message}") from exc
        err = exc if exc.code != errors.TimedOut.code else errors.BackupBulkdumpTimeout(exc.message)
        if ctx.backups.record_outcome(uid, name, str(index), {"error": err.to_dict()}):
            record_error(ctx, uid, "bulkdump", err)
        return
    sums = bulkdump.manifest_checksums(ctx.container(job.url, job.credential_files), batches)
    outcome = {"batches": [ds.batch_to_json(b) for b in batches], "manifest_sha256": sums}
    if not ctx.backups.record_outcome(uid, name, str(index), outcome):
        return  # another copy of this task recorded its batches first; finish_bulkdump removes ours
    metrics.BYTES_WRITTEN.labels("bulkdump").inc(sum(b.data_file_size for b in batches))
    metrics.FILES_WRITTEN.labels("bulkdump").inc(sum(2 if b.data_path else 1 for b in batches))
    ctx.backups.incr(uid, "bd_bytes", sum(b.data_file_size for b in batches))
    ctx.backups.incr(uid, "bd_keys", sum(b.key_count for b in batches))
    ctx.backups.incr(uid, "bd_tasks_done")


def finish_bulkdump(ctx: Context, uid: str, seq: int) -> None:
    job = load(ctx, uid)
    if not job.active or job.snapshot_seq != seq or job.bd_phase != Phase.RUNNING:
        return
    results = ctx.backups.results(uid, f"bulkdump:{seq}")
    failures = [r["error"] for r in results.values() if "error" in r]
    container = ctx.container(job.url, job.credential_files)
    try:
        if failures:
            code = errors.BackupBulkdumpTimeout.code
            timed_out = any(f["code"] in (code, errors.TimedOut.code) for f in failures)
            cls = errors.BackupBulkdumpTimeout if timed_out else errors.BackupBulkdumpFailed
            raise cls(f"{len(failures)} of {len(results)} BulkDump tasks failed: {failures[0]['message']}")
        batches = [ds.batch_from_json(b) for r in results.values() for b in r["batches"]]
        sums = {p: d for r in results.values() for p, d in r.get("manifest_sha256", {}).items()}
        path, manifest = bulkdump.assemble(container, job.bd_job_id, batches, job.ranges, sums)
        container.write(path, manifest.to_json())
    except errors.FDBError as exc:
        if exc.retryable:
            raise
        _bulkdump_failed(ctx, job, exc)
        return
    bulkdump.delete_unused_task_folders(container, job.bd_job_id, batches)
    ctx.backups.update(
        uid,
        bd_phase=Phase.COMPLETE,
        bd_finished_at=time.time(),
        bd_begin_version=manifest.begin_version,
        bd_end_version=manifest.end_version,
        bd_total_bytes=manifest.total_bytes,
        bd_manifest=path,
    )
    metrics.BULKDUMP_SNAPSHOTS.labels("complete").inc()
    if job.bd_started_at is not None:
        metrics.observe_throughput("backup", "bulkdump", manifest.total_bytes, time.time() - job.bd_started_at)
    _maybe_dual_complete(ctx, uid)


def _bulkdump_failed(ctx: Context, job: BackupJob, exc: errors.FDBError) -> None:
    timed_out = exc.code == errors.BackupBulkdumpTimeout.code
    err = (
        exc
        if exc.code in (errors.BackupBulkdumpTimeout.code, errors.BackupBulkdumpFailed.code)
        else (errors.BackupBulkdumpFailed(exc.message))
    )
    record_error(ctx, job.uid, "bulkdump", err)
    metrics.BULKDUMP_SNAPSHOTS.labels("timed_out" if timed_out else "failed").inc()
    if job.mode == SnapshotMode.BOTH:
        metrics.FALLBACKS.labels("backup").inc()
    ctx.backups.update(job.uid, bd_phase=Phase.TIMED_OUT if timed_out else Phase.FAILED, bd_finished_at=time.time())
    if job.mode == SnapshotMode.BULKDUMP:
        fail(
            ctx,
            job.uid,
            type(err)(f"{err.message}. {BULKDUMP_ONLY_ADVICE}"),
        )
    _maybe_dual_complete(ctx, job.uid)  # the range files may have finished first


def _maybe_dual_complete(ctx: Context, uid: str) -> None:
    job = load(ctx, uid)
    if job.mode == SnapshotMode.BOTH and job.rf_phase.finished and job.bd_phase.finished:
        rf_bytes, bd_bytes = int(job.raw.get("rf_total_bytes", "0")), int(job.raw.get("bd_total_bytes", "0"))
        if rf_bytes:
            metrics.DUAL_OVERHEAD.set((rf_bytes + bd_bytes) / rf_bytes)
        trace.event(
            "BackupDualSnapshotComplete",
            BackupUID=uid,
            RangeFilesBytes=int(job.raw.get("rf_total_bytes", "0")),
            BulkDumpBytes=int(job.raw.get("bd_total_bytes", "0")),
            BulkDumpPhase=job.bd_phase,
        )


def snapshot_chord_failed(ctx: Context, uid: str, seq: int, phase: str) -> None:
    """A snapshot chord broke (a header task was killed by its hard time limit): never hang, record it."""
    job = load(ctx, uid)
    if not job.active or job.snapshot_seq != seq:
        return
    err = errors.BackupError(f"a {phase} snapshot task failed without recording a result")
    if phase == "bulkdump" and job.bd_phase == Phase.RUNNING:
        _bulkdump_failed(ctx, job, errors.BackupBulkdumpFailed(err.message))
    elif phase == "rangefile" and job.rf_phase == Phase.RUNNING:
        ctx.backups.update(uid, rf_phase=Phase.FAILED)
        fail(ctx, uid, err)


# --- end states ---------------------------------------------------------------------------------


def fail(ctx: Context, uid: str, err: errors.FDBError) -> None:
    """The backup cannot continue: record why, stop capturing, and mark it errored."""
    record_error(ctx, uid, "backup", err)
    if ctx.backups.compare_and_set(uid, "state", list(ACTIVE_STATES), BackupState.ERRORED):
        stop_captures(ctx, load(ctx, uid))


def stop_captures(ctx: Context, job: BackupJob) -> None:
    driver = ctx.cluster(job.cluster_file)
    for tag in range(len(job.partitions)):
        driver.stop_log_capture(job.capture_id(tag))


# --- mutation logs and progress ----------------------------------------------------------------


@dataclass(frozen=True)
class RoundOutcome:
    next_round: int | None
    snapshot_seq: int | None = None


def log_round(ctx: Context, uid: str, round_no: int) -> RoundOutcome:
    """One round of the capture chain; see :mod:`workers.backup.mutationlog`."""
    lease_ms = int(ctx.settings.task_time_limit * 1000)
    with mutationlog.round_lease(ctx.redis, uid, lease_ms) as held:
        if not held:
            # Another copy holds the lease: a live one that will enqueue the next round, or one that
            # was killed mid-round, whose lease expires after the task time limit. Dropping this
            # message would end the chain in the second case, so try again later.
            raise errors.Retry(f"another copy of log round {round_no} of backup {uid} holds the log lease")
        job = load(ctx, uid)
        decision = mutationlog.decide(int(job.raw.get("log_round", "0")), round_no)
        if decision == mutationlog.RoundDecision.EXIT:
            return RoundOutcome(None)
        if decision == mutationlog.RoundDecision.REENQUEUE_CURRENT:
            return RoundOutcome(round_no + 1)
        if not job.active:
            if job.state == BackupState.ABORTED:
                stop_captures(ctx, job)
            return RoundOutcome(None)
        finishing = job.stop_when_done and _snapshot_finished(job)
        driver = ctx.cluster(job.cluster_file)
        container = ctx.container(job.url, job.credential_files)
        span = int(MAX_LOG_SPAN_SECONDS * 1_000_000)
        for tag in range(len(job.partitions)):
            mutationlog.flush_partition(
                driver, container, ctx.backups, job, tag, force=finishing, max_span_versions=span
            )
        outcome = _advance(ctx, load(ctx, uid))
        ctx.backups.compare_and_set(uid, "log_round", [str(round_no)], round_no + 1)
        return RoundOutcome(None if outcome is None else round_no + 1, outcome or None)


def _snapshot_finished(job: BackupJob) -> bool:
    if job.snapshot_seq == 0:
        return False
    return (not job.mode.range_files or job.rf_phase.finished) and (not job.mode.bulkdump or job.bd_phase.finished)


def _required_snapshot_end(job: BackupJob) -> int | None:
    """The snapshot end version the logs must pass for the backup to be restorable."""
    if job.mode.range_files:
        return job.rf_end_version if job.rf_phase == Phase.COMPLETE else None
    return job.bd_end_version if job.bd_phase == Phase.COMPLETE else None


def _advance(ctx: Context, job: BackupJob) -> int | None:
    """Update restorability and end states after a round. Returns a snapshot seq to dispatch, or 0
    to keep going, or None when the chain should stop."""
    end = job.log_end_version
    snap_end = _required_snapshot_end(job)
    if end is not None and snap_end is not None and end > snap_end:
        if job.restorable_version is None or end - 1 > job.restorable_version:
            ctx.backups.set_max(job.uid, "restorable_version", end - 1)
            ctx.backups.update(job.uid, restorable_at=time.time())
        ctx.backups.compare_and_set(job.uid, "state", [BackupState.RUNNING], BackupState.RUNNING_DIFFERENTIAL)
    job = load(ctx, job.uid)
    if not job.active:
        return None
    stop_version = int(job.raw.get("stop_version", "0"))  # set by discontinue: logs must reach it
    if (
        job.stop_when_done
        and _snapshot_finished(job)
        and job.restorable_version is not None
        and job.restorable_version >= stop_version
    ):
        bd_done = job.bd_phase != Phase.COMPLETE or job.bulkload_compatible
        if bd_done and ctx.backups.compare_and_set(
            job.uid, "state", [BackupState.RUNNING_DIFFERENTIAL], BackupState.COMPLETED
        ):
            ctx.backups.update(job.uid, completed_version=job.restorable_version, completed_at=time.time())
            stop_captures(ctx, job)
            trace.event("BackupComplete", BackupUID=job.uid, Version=job.restorable_version)
            return None
    if (
        not job.stop_when_done
        and _snapshot_finished(job)
        and job.snapshot_started_at is not None
        and time.time() - job.snapshot_started_at >= job.snapshot_interval
    ):
        return job.snapshot_seq + 1
    return 0
