"""Restore steps, one function per Celery task (the tasks add retries and canvas).

Pipeline: ``plan`` -> snapshot phase (range files, or verify -> prerequisites -> BulkLoad) ->
``snapshot_done`` (proves the whole restore range arrived) -> log replay per partition -> ``finish``.
The destination ranges are locked (owner ``restore:<uid>``) from the plan until the end. A failure
that retrying cannot fix aborts the restore with its named error; success is declared only after
every range and every log stream is accounted for.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from fdbcore import bulkdump_dataset as ds
from fdbcore import errors
from fdbcore.catalog import Catalog, LogFileRef, RangeFileRef, RestoreSet
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container.base import BackupContainer
from fdbcore.formats.bulkdump_manifest import JobManifestEntry
from fdbcore.keys import KeyRange, covers_exactly, normalize_ranges
from fdbcore.mutations import clear, clear_range, set_value
from workers import metrics, trace
from workers.context import Context
from workers.restore import bulkload, rangefile, replay, verify
from workers.restore.job import (
    ACTIVE_STATES,
    PhaseState,
    RestoreJob,
    RestoreMode,
    RestoreState,
    VersionPiece,
    pieces_from_json,
    pieces_to_json,
)
from workers.state import PREFIX, ErrorRecord, lease

#: A replay task hands over to a fresh copy of itself after this long (bounded task duration).
REPLAY_BUDGET_SECONDS = 120.0
#: Attempts of one BulkLoad group before the restore fails with restore_bulkload_failed.
BULKLOAD_ATTEMPTS = 5


def load(ctx: Context, uid: str) -> RestoreJob:
    return RestoreJob.from_fields(ctx.restores.get(uid))


FAILED_BULKLOAD_URLS = "fdbbr:restore:failed_bulkload_urls"


def fail(ctx: Context, uid: str, err: errors.FDBError, phase: str) -> None:
    """Abort the restore with ``err``: record it, release the destination lock."""
    ctx.restores.add_error(uid, ErrorRecord.from_error(phase, err))
    job = load(ctx, uid)
    if job.mode == RestoreMode.BULKLOAD and job.active and job.snapshot_phase != PhaseState.COMPLETE:
        metrics.BULKLOAD_RESTORES.labels("failed").inc()
        ctx.redis.sadd(FAILED_BULKLOAD_URLS, job.url_display)
    trace.event("RestoreFailed", trace.SEV_WARN_ALWAYS, RestoreUID=uid, Phase=phase, Error=err.name, Code=err.code)
    if ctx.restores.compare_and_set(uid, "state", list(ACTIVE_STATES), RestoreState.ABORTED):
        _unlock(ctx, job)


def _unlock(ctx: Context, job: RestoreJob) -> None:
    """Release the destination: the restore's own system keys (fence, replay positions), then its lock."""
    driver = ctx.cluster(job.cluster_file)
    marks = replay.markers_range(job.uid)
    driver.commit([clear_range(marks.begin, marks.end)], lock_owner=job.lock_owner)
    for r in job.dest_ranges:
        with contextlib.suppress(errors.RangeUnlockReject):  # never locked, or already released
            driver.unlock_range(r, job.lock_owner)


# --- plan --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dispatch:
    mode: RestoreMode
    tasks: int  # verify units (from the plan), or range files / BulkLoad groups (after verification)


def plan(ctx: Context, uid: str) -> Dispatch | None:
    """Choose files, lock and check the destination, record the work; None if nothing to dispatch.

    One copy plans at a time (a lease that outlives a killed planner by the task time limit). A copy
    that finds the plan recorded but the snapshot tasks not known to be sent sends them (again):
    its predecessor may have died between the two, and a duplicate snapshot chord is harmless. A
    copy that finds no plan although the restore left ``queued`` plans from scratch: its
    predecessor died while planning, before anything was written.
    """
    ctx.restores.compare_and_set(uid, "state", [RestoreState.QUEUED], RestoreState.STARTING)
    ttl_ms = int(ctx.settings.task_time_limit * 1000)
    with lease(ctx.redis, f"{PREFIX}:restore:{uid}:planlease", ttl_ms) as held:
        if not held:
            raise errors.Retry(f"another copy of the plan of restore {uid} is running")
        job = load(ctx, uid)
        if not job.active:
            return None
        if "verify_tasks" in job.raw:
            if job.raw.get("snapshot_dispatched") == "1":
                return None
            return Dispatch(job.mode, int(job.raw["verify_tasks"]))
        try:
            return _plan(ctx, job)
        except errors.FDBError as exc:
            if exc.retryable:
                raise
            fail(ctx, uid, exc, "plan")
            return None


def mark_dispatched(ctx: Context, uid: str) -> None:
    """The verify chord is sent: a redelivered ``restore.start`` has nothing left to do."""
    ctx.restores.update(uid, snapshot_dispatched=True)


def _plan(ctx: Context, job: RestoreJob) -> Dispatch:
    container = ctx.container(job.url, job.credential_files)
    rs = Catalog(container).restore_set(job.target_version, job.ranges, job.mode.value)
    trace.event(
        "RestoreSnapshotMethodSelected",
        RestoreUID=job.uid,
        Method=job.mode.value,
        BulkLoadAvailable=rs.snapshot.kind.value == "bulkdump" or _has_bulkdump(ctx, job),
    )
    driver = ctx.cluster(job.cluster_file)
    for r in job.dest_ranges:
        driver.lock_range(r, job.lock_owner)
    driver.commit([set_value(snapshot_fence_key(job.uid), b"")], lock_owner=job.lock_owner)
    fields: dict[str, object] = {"snapshot_begin": rs.begin_version, "snapshot_end": rs.end_version}
    checksums = dict(rs.snapshot.manifest.checksums)
    units: list[verify.Unit]
    if job.mode == RestoreMode.RANGEFILE:
        _check_empty(driver, job)
        files = list(rs.range_files)
        pieces = _range_file_pieces(files, job.ranges)
        unsummed = [f.path for f in files if checksums and f.path not in checksums]
        if unsummed:
            raise errors.RestoreCorruptedData(f"{rs.snapshot.path} records no SHA-256 for range file {unsummed[0]}")
        units = [["range", i, checksums.get(f.path, "")] for i, f in enumerate(files)]
        fields.update(
            files_json=json.dumps([_file_json(f) for f in files]),
            snapshot_tasks=len(files),
            files=len(files),
            blocks_total=sum(-(-f.size // f.block_size) for f in files),
        )
    else:
        assert rs.snapshot.manifest is not None
        job_id = rs.snapshot.manifest.job_id  # type: ignore[union-attr]
        if checksums:
            _check_recorded(container, ds.job_manifest_path(job_id), checksums, "job manifest")
        entries = ds.select_entries(ds.read_job_manifest(container, job_id), job.ranges)
        pieces = bulkload.version_pieces(entries, job.ranges)
        groups = bulkload.groups(entries)
        units = [["group", i, _manifest_sums(g, checksums)] for i, g in enumerate(groups)]
        fields.update(
            bulkdump_job_id=job_id,
            groups_json=json.dumps([[e.to_line() for e in g] for g in groups]),
            snapshot_tasks=len(groups),
            tasks_total=len(groups),
        )
    if not covers_exactly([p.range for p in pieces], job.ranges):
        raise errors.RestoreMissingData("the chosen snapshot does not cover every restore range")
    streams = _streams(rs)
    units += verify.log_units(streams)
    fields.update(
        version_map=pieces_to_json(pieces),
        streams_json=json.dumps([[_log_json(f) for f in s] for s in streams]),
        log_files=sum(len(s) for s in streams),
        log_file_bytes=sum(f.size for s in streams for f in s),
        verify_json=verify.to_json(units),
        log_checksums=int(rs.log_checksums),
        verify_tasks=len(units),
    )
    ctx.restores.update(job.uid, **fields)
    ctx.restores.compare_and_set(job.uid, "state", [RestoreState.STARTING], RestoreState.RUNNING)
    ctx.restores.update(job.uid, snapshot_phase=PhaseState.IN_PROGRESS, started_at=time.time())
    return Dispatch(job.mode, len(units))


def _check_recorded(container: BackupContainer, path: str, checksums: dict[str, str], what: str) -> None:
    """A BulkDump dataset file the snapshot manifest records is unchanged (else 2390)."""
    if path not in checksums:
        raise ds.incomplete(f"the snapshot manifest records no SHA-256 for {what} {path}")
    try:
        verify.check_sha256(container, path, checksums[path], what)
    except (errors.RestoreCorruptedData, errors.RestoreMissingData) as exc:
        raise ds.incomplete(exc.message) from None


def _manifest_sums(group: list[JobManifestEntry], checksums: dict[str, str]) -> dict[str, str]:
    paths = [ds.in_root(e.manifest_relative_path) for e in group]
    if checksums and any(p not in checksums for p in paths):
        raise ds.incomplete(f"the snapshot manifest records no SHA-256 for batch manifest {paths[0]}")
    return {p: checksums[p] for p in paths if p in checksums}


def _has_bulkdump(ctx: Context, job: RestoreJob) -> bool:
    container = ctx.container(job.url, job.credential_files)
    return any(s.kind.value == "bulkdump" for s in Catalog(container).snapshots())


def _check_empty(driver: ClusterDriver, job: RestoreJob) -> None:
    version = driver.get_read_version()
    for r in job.dest_ranges:
        found = driver.get_range(r.begin, r.end, version, limit=1)
        if found.kvs:
            raise errors.RestoreDestinationNotEmpty(
                f"the destination already has keys in {r} (first: {found.kvs[0][0]!r}); a range-file restore "
                "needs empty destination ranges"
            )


def _range_file_pieces(files: list[RangeFileRef], ranges: list[KeyRange]) -> list[VersionPiece]:
    out = []
    for f in files:
        if f.key_range is None:
            raise errors.RestoreCorruptedData(f"range file {f.path} has no key range in its snapshot manifest")
        for r in ranges:
            part = f.key_range.intersection(r)
            if part is not None:
                out.append(VersionPiece(part, f.version))
    return out


def _streams(rs: RestoreSet) -> list[list[LogFileRef]]:
    """Independent replay streams: one per key-range partition (ours), else one merged stream."""
    if rs.partitions is None:
        return [rs.log_files] if rs.log_files else []
    by_tag: dict[int, list[LogFileRef]] = {}
    for f in rs.log_files:
        by_tag.setdefault(f.tag or 0, []).append(f)
    return [files for _, files in sorted(by_tag.items())]


def _file_json(f: RangeFileRef) -> dict[str, object]:
    assert f.key_range is not None
    return {
        "path": f.path,
        "size": f.size,
        "version": f.version,
        "block_size": f.block_size,
        "begin": f.key_range.begin.hex(),
        "end": f.key_range.end.hex(),
    }


def _file_from_json(d: dict[str, object]) -> RangeFileRef:
    return RangeFileRef(
        str(d["path"]),
        int(str(d["size"])),
        int(str(d["version"])),
        int(str(d["block_size"])),
        KeyRange(bytes.fromhex(str(d["begin"])), bytes.fromhex(str(d["end"]))),
    )


def _log_json(f: LogFileRef) -> list[object]:
    return [f.path, f.size, f.begin, f.end, f.block_size, f.tag, f.total_tags, f.partitioned]


def _log_from_json(d: list[object]) -> LogFileRef:
    path, size, begin, end, bs, tag, total, partitioned = d
    return LogFileRef(
        str(path),
        int(str(size)),
        int(str(begin)),
        int(str(end)),
        int(str(bs)),
        None if tag is None else int(str(tag)),
        None if total is None else int(str(total)),
        bool(partitioned),
    )


# --- snapshot phase ----------------------------------------------------------------------------------


def rangefile_task(ctx: Context, uid: str, index: int) -> None:
    job = load(ctx, uid)
    if not job.active or str(index) in ctx.restores.results(uid, "rangefile"):
        return
    ref = _file_from_json(json.loads(job.raw["files_json"])[index])
    try:
        blocks, written = rangefile.restore_file(
            ctx.cluster(job.cluster_file),
            ctx.container(job.url, job.credential_files),
            ref,
            job.ranges,
            job.rewrite,
            job.lock_owner,
            snapshot_fence_key(uid),
        )
    except rangefile.SnapshotPhaseClosed:
        return  # another copy restored this file and the log replay has begun
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        if exc.retryable:
            raise
        fail(ctx, uid, exc, "rangefile")
        return
    ctx.restores.put_result(uid, "rangefile", str(index), {"blocks": blocks, "bytes": written})
    metrics.FILES_READ.labels("restore_rangefile").inc()
    metrics.BYTES_READ.labels("restore_rangefile").inc(ref.size)
    metrics.BYTES_WRITTEN.labels("restore_rangefile").inc(written)
    ctx.restores.incr(uid, "blocks_done", blocks)
    ctx.restores.incr(uid, "bytes_written", written)


def _group(job: RestoreJob, index: int) -> list[JobManifestEntry]:
    lines = json.loads(job.raw["groups_json"])[index]
    return [JobManifestEntry.parse(line) for line in lines]


def verify_task(ctx: Context, uid: str, index: int) -> None:
    """Verify one unit (see :mod:`workers.restore.verify`); a bad file aborts the restore before
    anything touches the destination."""
    job = load(ctx, uid)
    if not job.active or str(index) in ctx.restores.results(uid, "verify"):
        return
    unit = json.loads(job.raw["verify_json"])[index]
    try:
        counts = _verify_unit(ctx.container(job.url, job.credential_files), job, unit)
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        if exc.retryable:
            raise
        fail(ctx, uid, exc, "verify")
        return
    ctx.restores.put_result(uid, "verify", str(index), counts)


def _verify_unit(container: BackupContainer, job: RestoreJob, unit: list[Any]) -> dict[str, int]:
    """Returns each verified batch manifest's key count (BulkLoad groups; nothing for other units)."""
    kind = unit[0]
    if kind == "group":
        for path in unit[2]:
            _check_recorded(container, path, unit[2], "batch manifest")
        return bulkload.verify_group(container, _group(job, unit[1]))
    if kind == "range":
        verify.verify_range_file(container, _file_from_json(json.loads(job.raw["files_json"])[unit[1]]), unit[2])
        return {}
    stream, first, end = unit[1:]
    files = [_log_from_json(f) for f in json.loads(job.raw["streams_json"])[stream][first:end]]
    verify.verify_log_files(container, files, checksummed=job.raw.get("log_checksums") == "1")
    return {}


def prerequisites(ctx: Context, uid: str) -> Dispatch | None:
    """Everything verified and, for BulkLoad, the destination configured for it; returns the snapshot
    phase to dispatch (range files or BulkLoad groups)."""
    job = load(ctx, uid)
    if not job.active:
        return None
    if len(ctx.restores.results(uid, "verify")) != int(job.raw["verify_tasks"]):
        err = "not every file of the restore was verified"
        fail(ctx, uid, ds.incomplete(err) if job.mode == RestoreMode.BULKLOAD else errors.RestoreError(err), "verify")
        return None
    if job.mode == RestoreMode.BULKLOAD:
        knobs = ctx.cluster(job.cluster_file).knobs()
        for knob in ("shard_encode_location_metadata", "enable_read_lock_on_range"):
            if knobs.get(knob, "0") not in ("1", "true"):
                fail(
                    ctx,
                    uid,
                    errors.BulkloadInvalidConfiguration(
                        f"BulkLoad requires --knob_{knob}=1. Restart the destination cluster with this knob enabled."
                    ),
                    "prerequisites",
                )
                return None
    if not job.raw.get("verified_at"):
        ctx.restores.update(uid, verified_at=time.time())
    return Dispatch(job.mode, int(job.raw["snapshot_tasks"]))


def bulkload_task(ctx: Context, uid: str, index: int) -> None:
    """Load one group; raises to be retried while attempts remain, then fails the restore (2391).

    Retryable errors (connection loss, timeouts) are retried without limit like everything else;
    other failures get ``BULKLOAD_ATTEMPTS`` tries.
    """
    job = load(ctx, uid)
    if not job.active or str(index) in ctx.restores.results(uid, "bulkload"):
        return
    entries = _group(job, index)
    driver = ctx.cluster(job.cluster_file)
    if driver.get(snapshot_fence_key(uid), driver.get_read_version()) is None:
        return  # the snapshot phase is over: another copy loaded this group
    ctx.restores.put_result(uid, "bulkload_started", str(index), time.time())
    try:
        parts = bulkload.load_group(
            driver,
            job.url,
            job.raw["bulkdump_job_id"],
            entries,
            job.ranges,
            job.rewrite,
            job.lock_owner,
            timeout=None,
        )
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        if isinstance(exc, errors.RangeLockReject):
            # The restore holds the lock on every destination range from its plan on, so the only
            # load the cluster can be running there is another copy of this task (a redelivery):
            # wait for it, then find its result recorded.
            raise errors.Retry(f"BulkLoad group {index}: {exc.message}") from exc
        fatal = isinstance(exc, errors.BulkloadInvalidConfiguration)
        if exc.retryable and not fatal:
            raise
        if not fatal and ctx.restores.incr(uid, f"bulkload_attempts:{index}") < BULKLOAD_ATTEMPTS:
            ctx.restores.add_error(uid, ErrorRecord.from_error("bulkload", exc))
            raise errors.Retry(f"BulkLoad group {index} failed, retrying: {exc.message}") from exc
        span = f"{entries[0].range.begin!r}..{entries[-1].range.end!r}"
        fail(
            ctx,
            uid,
            exc if fatal else errors.RestoreBulkloadFailed(f"BulkLoad of shard {span} failed: {exc}"),
            "bulkload",
        )
        return
    ctx.restores.put_result(
        uid,
        "bulkload",
        str(index),
        [
            {
                "begin": p.range.begin.hex(),
                "end": p.range.end.hex(),
                "keys": p.keys,
                "bytes": p.bytes,
                "files": p.files,
                "whole": p.whole_batches,
                "manifests": p.manifests,
            }
            for p in parts
        ],
    )
    ctx.restores.incr(uid, "tasks_done")
    ctx.restores.incr(uid, "bytes_written", sum(p.bytes for p in parts))
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
        if ctx.restores.compare_and_set(uid, "snapshot_phase", [PhaseState.IN_PROGRESS], PhaseState.COMPLETE):
            ctx.restores.update(uid, log_phase=PhaseState.IN_PROGRESS, snapshot_done_at=time.time())
            if job.mode == RestoreMode.BULKLOAD:
                metrics.BULKLOAD_RESTORES.labels("complete").inc()
            started = float(job.raw.get("started_at", "0"))
            if started:
                metrics.observe_throughput("restore", job.mode.value, job.bytes_written, time.time() - started)
    return len(json.loads(job.raw["streams_json"]))


def snapshot_fence_key(uid: str) -> bytes:
    """A system key in the destination that exists while the restore's snapshot phase is open.

    The plan sets it, ``snapshot_done`` clears it before the log replay writes anything, and every
    range-file commit reads it with a conflict range: a copy of a snapshot task still running when
    the replay starts (a redelivery) fails to commit instead of overwriting replayed keys with older
    snapshot data. It lies under the replay markers' prefix, so ``finish`` clears it with them.
    """
    return replay.MARKER_PREFIX + uid.encode() + b"/snapshot_open"


def _check_snapshot_complete(ctx: Context, job: RestoreJob) -> None:
    tasks = int(job.raw["snapshot_tasks"])
    if job.mode == RestoreMode.RANGEFILE:
        done = ctx.restores.results(job.uid, "rangefile")
        if len(done) != tasks:
            raise errors.RestoreMissingData(f"only {len(done)} of {tasks} range files were restored")
        return
    loaded = [p for parts in ctx.restores.results(job.uid, "bulkload").values() for p in parts]
    ranges = [KeyRange(bytes.fromhex(p["begin"]), bytes.fromhex(p["end"])) for p in loaded]
    if not covers_exactly(ranges, job.ranges):
        missing = _subtract_all(normalize_ranges(job.ranges), normalize_ranges(ranges))
        raise errors.RestoreBulkloadFailed(
            f"BulkLoad did not load every restore range; missing {', '.join(map(str, missing)) or 'overlaps'}"
        )
    counts: dict[str, int] = {}
    for group in ctx.restores.results(job.uid, "verify").values():
        counts.update(group)
    for p in loaded:
        if p["whole"]:
            expected = sum(counts[m] for m in p["manifests"])
            if p["keys"] != expected:
                raise errors.RestoreBulkloadFailed(
                    f"BulkLoad of {p['begin']}..{p['end']} loaded {p['keys']} keys; the dataset holds {expected}"
                )


def _subtract_all(want: list[KeyRange], have: list[KeyRange]) -> list[KeyRange]:
    out = []
    for w in want:
        rest = [w]
        for h in have:
            nxt = []
            for r in rest:
                if not r.intersects(h):
                    nxt.append(r)
                    continue
                if r.begin < h.begin:
                    nxt.append(KeyRange(r.begin, h.begin))
                if h.end < r.end:
                    nxt.append(KeyRange(h.end, r.end))
            rest = nxt
        out += rest
    return out


# --- log phase -----------------------------------------------------------------------------------


def replay_task(ctx: Context, uid: str, stream: int) -> bool:
    """Replay one stream for a bounded time; True when it reached the target version."""
    job = load(ctx, uid)
    if not job.active or str(stream) in ctx.restores.results(uid, "replay"):
        return True
    files = [_log_from_json(f) for f in json.loads(job.raw["streams_json"])[stream]]
    container = ctx.container(job.url, job.credential_files)
    merged = not _key_partitioned(files)
    rep = replay.Replayer(
        ctx.cluster(job.cluster_file),
        uid,
        stream,
        replay.VersionMap(pieces_from_json(job.raw["version_map"])),
        job.rewrite,
        job.target_version,
        job.lock_owner,
    )
    deadline = time.monotonic() + REPLAY_BUDGET_SECONDS
    try:
        # Checked after the Replayer read the stored position, and after every lost race: another
        # copy may have finished this stream, and once all streams are done ``finish`` clears the
        # positions, so a copy going on from a cleared one would replay the stream a second time.
        while not _stream_done(ctx, uid, stream) and time.monotonic() < deadline:
            source = (replay.merged_stream if merged else replay.partition_stream)(container, files, rep.position)
            if rep.run(source, deadline - time.monotonic()):
                ctx.restores.put_result(uid, "replay", str(stream), {"position": list(rep.position)})
                _count_replay(ctx, uid, rep)
                return True
        if time.monotonic() < deadline:
            _count_replay(ctx, uid, rep)
            return True
    except Exception as raised:
        exc = errors.ensure_fdb_error(raised)
        if exc.retryable:
            raise
        fail(ctx, uid, exc, "replay")
        return True
    _count_replay(ctx, uid, rep)
    return False


def _stream_done(ctx: Context, uid: str, stream: int) -> bool:
    """The restore is over, or some copy recorded this stream as replayed."""
    return not load(ctx, uid).active or str(stream) in ctx.restores.results(uid, "replay")


def _count_replay(ctx: Context, uid: str, rep: replay.Replayer) -> None:
    ctx.restores.incr(uid, "bytes_written", rep.applied_bytes)
    ctx.restores.incr(uid, "replay_bytes", rep.applied_bytes)
    metrics.BYTES_WRITTEN.labels("replay").inc(rep.applied_bytes)


def chord_failed(ctx: Context, uid: str, phase: str) -> None:
    """A restore chord broke (a task was killed by its hard time limit): abort with a named error."""
    fail(ctx, uid, errors.RestoreError(f"a {phase} task failed without recording a result"), phase)


def _key_partitioned(files: list[LogFileRef]) -> bool:
    """Files of one tag (our key-range partitions) rather than every tag (FDB's) or V1 logs."""
    return all(f.partitioned for f in files) and len({f.tag for f in files}) == 1


def finish(ctx: Context, uid: str) -> None:
    job = load(ctx, uid)
    if not job.active:
        return
    streams = len(json.loads(job.raw["streams_json"]))
    done = ctx.restores.results(uid, "replay")
    if len(done) != streams:
        fail(ctx, uid, errors.RestoreMissingData(f"only {len(done)} of {streams} log streams finished"), "replay")
        return
    _unlock(ctx, job)
    if ctx.restores.compare_and_set(uid, "state", [RestoreState.RUNNING], RestoreState.COMPLETED):
        ctx.restores.update(uid, log_phase=PhaseState.COMPLETE, completed_at=time.time())
        if job.mode == RestoreMode.RANGEFILE and ctx.redis.srem(FAILED_BULKLOAD_URLS, job.url_display):
            metrics.FALLBACKS.labels("restore").inc()
        trace.event("RestoreComplete", RestoreUID=uid, Version=job.target_version, Method=job.mode.value)
