"""The snapshot clock of a backup, run by its log chain at the start of every round.

One chain runs per backup (:mod:`workers.backup.mutationlog`), so it is also where snapshot periods
open, where range-file tasks are sent paced over their period (:mod:`workers.backup.pacing`), and
where the backup's one BulkDump at a time is started: when the newest period's snapshot begins (its
first shard task is due), or as soon as the BulkDump before it finishes. The chain's task sends what :func:`next_steps`
returns and then marks it sent; a crash in between sends it again, which every snapshot task
tolerates, and a BulkDump whose sending was lost is sent again after :data:`REDISPATCH_SECONDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from workers.backup import pacing, snapshot
from workers.backup.job import BackupJob, BackupView, Phase, view
from workers.backup.lifecycle import load
from workers.context import Context

#: A claimed BulkDump not marked sent after this long is sent again (its sender died in between).
REDISPATCH_SECONDS = 60.0


@dataclass(frozen=True)
class Steps:
    """What the task layer sends after a round."""

    #: ``(period, first, end)``: range-file tasks ``[first, end)`` of that period are due.
    rangefile: tuple[int, int, int] | None = None
    #: ``(period, task indexes)``: that period's BulkDump is claimed and these tasks are to be sent, in
    #: this order.
    bulkdump: tuple[int, list[int]] | None = None


def next_steps(ctx: Context, uid: str, now: float | None = None) -> Steps:
    now = time.time() if now is None else now
    job = load(ctx, uid)
    if not job.active or job.incremental:
        return Steps()
    if job.snapshot_seq == 0 or _period_over(job, view(ctx.backups, job), now):
        snapshot.open_period(ctx, job, now)
        job = load(ctx, uid)
    window = ctx.settings.log_flush_interval
    current = view(ctx.backups, job)
    if _skip_unbegun(ctx, job, current):
        return Steps()
    return Steps(_rangefile_due(job, current, now, window), _bulkdump_due(ctx, job, current, now, window))


def _period_over(job: BackupJob, current: BackupView, now: float) -> bool:
    """A continuous backup's period ends once its range files are done and its interval has passed."""
    if job.stop_when_done or job.snapshot_started_at is None:
        return False
    rf_done = not job.mode.range_files or (current.rangefile is not None and current.rangefile.phase.finished)
    return rf_done and now >= job.snapshot_started_at + job.period_seconds


def _interval(job: BackupJob) -> float:
    """The current period's pacing: none once ``discontinue`` was asked (the rest goes at once; FDB
    waits for the snapshot at its pace instead)."""
    return 0.0 if job.discontinued else float(job.period_seconds)


def _skip_unbegun(ctx: Context, job: BackupJob, current: BackupView) -> bool:
    """After ``discontinue``, a later period whose snapshot has not begun (no range-file task sent, no
    BulkDump started) is not taken: the backup completes from the snapshots before it."""
    rf = current.rangefile
    if not job.discontinued or job.snapshot_seq < 2 or rf is None or rf.phase != Phase.RUNNING:
        return False
    if rf.tasks_dispatched > 0 or job.bulkdump_seq >= job.snapshot_seq:
        return False
    snapshot.skip_rangefile(ctx, job.uid, rf.seq)
    return True


def _rangefile_due(job: BackupJob, current: BackupView, now: float, window: float) -> tuple[int, int, int] | None:
    rf = current.rangefile
    if rf is None or rf.phase != Phase.RUNNING or rf.tasks_dispatched >= rf.tasks_total:
        return None
    due = pacing.tasks_due(rf.tasks_total, now - rf.started_at, _interval(job), window)
    return (rf.seq, rf.tasks_dispatched, due) if due > rf.tasks_dispatched else None


def _bulkdump_due(
    ctx: Context, job: BackupJob, current: BackupView, now: float, window: float
) -> tuple[int, list[int]] | None:
    """The newest period's BulkDump, once its snapshot has begun (its first shard is due) and no other
    BulkDump runs; a discontinued backup starts no new one."""
    if not job.mode.bulkdump:
        return None
    bd = current.bulkdump
    if bd is not None and bd.phase == Phase.RUNNING:
        lost = not bd.dispatched and now - bd.started_at > REDISPATCH_SECONDS
        return (bd.seq, bd.dispatch_order) if lost else None
    if job.bulkdump_seq >= job.snapshot_seq or (job.stop_when_done and job.bulkdump_seq > 0):
        return None
    shards = current.rangefile.tasks_total if current.rangefile is not None else max(1, len(job.partitions))
    elapsed = now - (job.snapshot_started_at or now)
    if pacing.tasks_due(shards, elapsed, _interval(job), window) == 0:
        return None
    order = snapshot.start_bulkdump(ctx, job, now)
    return (job.snapshot_seq, order) if order else None
