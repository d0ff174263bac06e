"""The mutation-log capture: what FDB's backup workers do, as an event-driven task chain.

Logs are partitioned by key range (one cluster capture and one ``plogs/`` tag per partition), so
restore can replay partitions in parallel. A round, per partition: read the retained mutations from
the saved version, write ``log,<saved>,<end>,<uid>,<tag>-of-<n>,<bs>`` covering ``[saved, end)``,
record its SHA-256 (``logsums/``), compare-and-set the saved version, then pop the cluster's
retention. A file is written when the partition has mutations, when its pending span grows past the
maximum span, or when the backup is about to stop; idle partitions therefore cost no objects most
rounds.

Exactly one chain runs per backup, and each round first runs the backup's snapshot clock
(:mod:`workers.backup.schedule`); while ``fdbbackup pause`` is in force a round does nothing.
Round ``n`` runs only while holding the backup's lease and when the record says
``log_round == n``; a redelivered stale round either re-enqueues the current round (if that
message might have been lost) or exits. A message can also vanish outright: the Redis transport
pops it from the queue before it records it as unacknowledged, so a worker killed in between loses
it. So every round first sends a guard for the next round, due after :func:`guard_seconds`; a guard
runs its round only if the chain has not moved past it for half that long, and otherwise exits.
A round that loses the compare-and-set deletes the file it wrote; a file left behind by a crash is
a subset of a later one, which restore drops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fdbcore import errors, naming
from fdbcore.cluster.interface import ClusterDriver, LoggedMutation
from fdbcore.container.base import BackupContainer
from fdbcore.formats.framing import DEFAULT_BLOCK_SIZE
from fdbcore.formats.io import HashingSink
from fdbcore.formats.partitioned_log import PartitionedLogWriter
from workers import metrics
from workers.backup import control, lifecycle, schedule
from workers.backup.job import BackupJob, BackupState, view
from workers.context import Context
from workers.state import PREFIX, JobStore, lease

#: A round's guard for the next round comes due after this many flush intervals, at least
#: ``GUARD_MIN_SECONDS``.
GUARD_ROUNDS = 10
GUARD_MIN_SECONDS = 30.0
log = logging.getLogger(__name__)

READ_BYTES = 4 << 20
#: Bytes one partition reads in one round before it writes what it has.
ROUND_BYTES = 64 << 20
#: An idle partition still writes a (possibly empty) file once its pending span exceeds this.
MAX_LOG_SPAN_SECONDS = 10.0


@dataclass(frozen=True)
class Flush:
    tag: int
    begin: int
    end: int
    path: str
    size: int
    mutations: int


def flush_partition(
    driver: ClusterDriver,
    container: BackupContainer,
    store: JobStore[BackupJob],
    job: BackupJob,
    tag: int,
    *,
    force: bool,
    max_span_versions: int,
) -> Flush | None:
    """Move one partition's retained mutations into a log file; None if nothing was written."""
    saved = job.log_saved[tag]
    capture = job.capture_id(tag)
    mutations: list[LoggedMutation] = []
    end = saved
    read = 0
    while read < ROUND_BYTES:
        batch = driver.read_log(capture, end, limit_bytes=READ_BYTES)
        mutations.extend(batch.mutations)
        read += sum(m.mutation.byte_size() for m in batch.mutations)
        end = max(end, batch.end_version)
        if not batch.mutations:
            break
    if end <= saved or not (mutations or force or end - saved >= max_span_versions):
        return None
    path = naming.log_file_path(
        saved, end, naming.new_uid(), DEFAULT_BLOCK_SIZE, tag=tag, total_tags=len(job.partitions)
    )
    with container.open_write(path) as out:
        hashed = HashingSink(out)
        writer = PartitionedLogWriter(hashed, DEFAULT_BLOCK_SIZE)
        for m in mutations:
            if not saved <= m.version < end:
                raise AssertionError(f"capture {capture} returned version {m.version} outside [{saved}, {end})")
            writer.add(m.version, m.subsequence, m.mutation)
        writer.finish()
        size = out.bytes_written
    try:
        container.write(naming.log_checksum_path(path), f"{hashed.hexdigest()}\n".encode())
    except BaseException:
        with contextlib.suppress(Exception):  # the retried round writes both anew
            container.delete(path)
        raise
    record = store.job(job.uid)
    if not record.compare_and_set("log_saved", [saved], end, key=tag):
        container.delete(path)  # another copy of this round committed first
        container.delete(naming.log_checksum_path(path))
        return None
    driver.pop_log(capture, end)
    metrics.BYTES_WRITTEN.labels("mutationlog").inc(size)
    metrics.FILES_WRITTEN.labels("mutationlog").inc()
    record.incr("log_bytes", size)
    record.incr("log_files")
    return Flush(tag, saved, end, path, size, len(mutations))


# --- the single chain -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundOutcome:
    next_round: int | None


class RoundDecision:
    RUN = "run"
    REENQUEUE_CURRENT = "reenqueue"
    EXIT = "exit"


def decide(current_round: int, my_round: int, *, guard: bool, stalled_for: float, after: float) -> str:
    """What a message for round ``my_round`` does when the record says ``current_round`` and the
    chain has not moved for ``stalled_for`` seconds. Only a stall of ``after`` seconds lets a guard run
    its round, or a message one round behind send the current round again, so the chain never splits
    in two: the message a guard stood in for (a round waiting out its retries, say) then finds the
    chain moved on a moment ago, and exits."""
    stalled = stalled_for >= after
    if guard:
        return RoundDecision.RUN if my_round == current_round and stalled else RoundDecision.EXIT
    if my_round == current_round:
        return RoundDecision.RUN
    if my_round == current_round - 1 and stalled:
        return RoundDecision.REENQUEUE_CURRENT  # the next round's message may have been lost
    return RoundDecision.EXIT


def guard_seconds(flush_interval: float) -> float:
    """How long after a round starts its guard for the next round comes due: many rounds, so that a
    live chain has always moved on by then."""
    return max(GUARD_MIN_SECONDS, GUARD_ROUNDS * flush_interval)


def log_round(
    ctx: Context,
    uid: str,
    round_no: int,
    send: Callable[[schedule.Steps], None],
    send_guard: Callable[[int], None],
    *,
    guard: bool = False,
) -> RoundOutcome:
    """One round of the capture chain: send the next round's guard (``send_guard``), run the snapshot
    clock (``send`` sends what is due), flush every partition, then advance the backup. The clock goes
    first, so slow log writes do not hold back a snapshot's dispatch."""

    def decision(job: BackupJob) -> str:
        # A message one round behind comes back after the broker's visibility timeout: half of that
        # is stall enough for it (the round it follows would have run long before).
        after = guard_seconds(ctx.settings.log_flush_interval) / 2
        if not guard:
            after = min(after, ctx.settings.visibility_timeout / 2)
        return decide(job.log_round, round_no, guard=guard, stalled_for=time.time() - job.log_round_at, after=after)

    if guard and decision(lifecycle.load(ctx, uid)) == RoundDecision.EXIT:
        return RoundOutcome(None)  # the usual case, decided without the lease a live round may want
    lease_ms = int(ctx.settings.task_time_limit * 1000)
    with lease(ctx.redis, f"{PREFIX}:backup:{uid}:loglease", lease_ms) as held:
        if not held:
            # Another copy holds the lease: a live one that will enqueue the next round, or one that
            # was killed mid-round, whose lease expires after the task time limit. Dropping this
            # message would end the chain in the second case, so try again later.
            raise errors.Retry(f"another copy of log round {round_no} of backup {uid} holds the log lease")
        job = lifecycle.load(ctx, uid)
        decided = decision(job)
        if decided == RoundDecision.EXIT:
            return RoundOutcome(None)
        if decided == RoundDecision.REENQUEUE_CURRENT:
            return RoundOutcome(round_no + 1)
        if not job.active:
            if job.state == BackupState.ABORTED:
                lifecycle.stop_captures(ctx, job)
            return RoundOutcome(None)
        if guard:
            log.warning(
                "backup %s: log round %d was stalled for %.0f s (its message lost); its guard runs it",
                uid,
                round_no,
                time.time() - job.log_round_at,
            )
        send_guard(round_no + 1)
        if control.paused(ctx.redis):  # the cluster keeps the captured mutations meanwhile
            _advance(ctx.backups, uid, round_no)
            return RoundOutcome(round_no + 1)
        send(schedule.next_steps(ctx, uid))
        job = lifecycle.load(ctx, uid)
        finishing = job.stop_when_done and view(ctx.backups, job).snapshot_finished
        driver = ctx.cluster(job.cluster_file)
        container = ctx.container(job)
        span = int(MAX_LOG_SPAN_SECONDS * 1_000_000)
        for tag in range(len(job.partitions)):
            flush_partition(driver, container, ctx.backups, job, tag, force=finishing, max_span_versions=span)
        keep_going = lifecycle.advance(ctx, lifecycle.load(ctx, uid))
        _advance(ctx.backups, uid, round_no)
        return RoundOutcome(round_no + 1 if keep_going else None)


def _advance(backups: JobStore[BackupJob], uid: str, round_no: int) -> None:
    record = backups.job(uid)
    if record.compare_and_set("log_round", [round_no], round_no + 1):
        record.update(log_round_at=time.time())
