"""The log phase of a restore: one task per replay stream, each handing over to a fresh copy of itself.

A stream's task replays for a bounded time (:data:`REPLAY_BUDGET_SECONDS`) and then asks to be run
again from the position it stored in the destination (see :mod:`workers.restore.replay`).
"""

from __future__ import annotations

import time

from fdbcore import errors
from workers import metrics
from workers.context import Context
from workers.restore import replay
from workers.restore.lifecycle import fail, load, plan_of

#: A replay task hands over to a fresh copy of itself after this long (bounded task duration).
REPLAY_BUDGET_SECONDS = 120.0


def replay_task(ctx: Context, uid: str, stream: int) -> bool:
    """Replay one stream for a bounded time; True when it reached the target version."""
    job = load(ctx, uid)
    if not job.active or str(stream) in ctx.restores.results(uid, "replay"):
        return True
    plan = plan_of(ctx, uid)
    files = plan.streams[stream]
    container = ctx.container(job)
    read = replay.partition_stream if replay.key_partitioned(files) else replay.merged_stream
    rep = replay.Replayer(
        ctx.cluster(job.cluster_file),
        uid,
        stream,
        replay.VersionMap(plan.version_map),
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
            if rep.run(read(container, files, rep.position), deadline - time.monotonic()):
                ctx.restores.put_result(uid, "replay", str(stream), {"position": list(rep.position)})
                return True
        return time.monotonic() < deadline
    finally:
        _count_replay(ctx, uid, rep)


def replay_failed(ctx: Context, uid: str, exc: errors.FDBError) -> bool:
    """A stream cannot be replayed: the restore aborts (and the stream's task is done)."""
    fail(ctx, uid, exc, "replay")
    return True


def _stream_done(ctx: Context, uid: str, stream: int) -> bool:
    """The restore is over, or some copy recorded this stream as replayed."""
    return not load(ctx, uid).active or str(stream) in ctx.restores.results(uid, "replay")


def _count_replay(ctx: Context, uid: str, rep: replay.Replayer) -> None:
    record = ctx.restores.job(uid)
    record.incr("bytes_written", rep.applied_bytes)
    record.incr("replay_bytes", rep.applied_bytes)
    metrics.BYTES_WRITTEN.labels("replay").inc(rep.applied_bytes)
