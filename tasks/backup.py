"""Backup tasks: the canvas that plays FDB's TaskBucket for ``fdbbackup start``.

``backup.start`` registers log capture, then launches the mutation-log chain, whose rounds first run
the snapshot clock (:mod:`workers.backup.schedule`): they open snapshot periods and send what is
due. Range-file tasks go in paced batches, a chord each whose callback writes the snapshot manifest
once every task of the period has a result; a BulkDump is one chord of per-shard
``backup.bulkdump`` tasks whose callback writes the job manifest and the BulkDump snapshot manifest.
Arguments are ids only; the record in Redis holds everything else (and no secret ever reaches a task
argument, a log line or Flower).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import Task, chord

from config import get_settings
from tasks import retry
from tasks.app import app
from workers.backup import lifecycle, mutationlog, schedule, snapshot
from workers.context import context


@app.task(name="backup.start", queue="backup", bind=True)
def start(self: Task[Any, Any], uid: str) -> None:
    ctx = context()
    if retry.run(self, lifecycle.start, ctx, uid, on_failure=partial(lifecycle.fail, ctx, uid)):
        capture_logs.apply_async((uid, 1))


def _send(uid: str, steps: schedule.Steps) -> None:
    """Send what the snapshot clock found due, then mark it sent."""
    ctx = context()
    if steps.rangefile is not None:
        seq, first, end = steps.rangefile
        header = [rangefile_task.si(uid, seq, i) for i in range(first, end)]
        chord(header)(finish_rangefile.si(uid, seq).on_error(snapshot_failed.si(uid, seq, "rangefile")))
        snapshot.mark_rangefile_dispatched(ctx, uid, seq, first, end)
    if steps.bulkdump is not None:
        seq, order = steps.bulkdump
        header = [bulkdump_task.si(uid, seq, i) for i in order]
        chord(header)(finish_bulkdump.si(uid, seq).on_error(snapshot_failed.si(uid, seq, "bulkdump")))
        snapshot.mark_bulkdump_dispatched(ctx, uid, seq)


def _send_guard(uid: str, round_no: int) -> None:
    countdown = mutationlog.guard_seconds(get_settings().log_flush_interval)
    capture_logs.apply_async((uid, round_no, True), countdown=countdown)


@app.task(name="backup.rangefile", queue="rangefile", bind=True)
def rangefile_task(self: Task[Any, Any], uid: str, seq: int, index: int) -> None:
    ctx = context()
    failed = partial(snapshot.rangefile_task_failed, ctx, uid, seq, index)
    retry.run(self, snapshot.rangefile_task, ctx, uid, seq, index, on_failure=failed)


@app.task(name="backup.finish_rangefile", queue="backup", bind=True)
def finish_rangefile(self: Task[Any, Any], uid: str, seq: int) -> None:
    ctx = context()
    failed = partial(snapshot.rangefile_snapshot_failed, ctx, uid, seq)
    retry.run(self, snapshot.finish_rangefile, ctx, uid, seq, on_failure=failed)


@app.task(name="backup.bulkdump", queue="bulkdump", bind=True)
def bulkdump_task(self: Task[Any, Any], uid: str, seq: int, index: int) -> None:
    retry.run(self, snapshot.bulkdump_task, context(), uid, seq, index)


@app.task(name="backup.finish_bulkdump", queue="backup", bind=True)
def finish_bulkdump(self: Task[Any, Any], uid: str, seq: int) -> None:
    ctx = context()
    failed = partial(snapshot.bulkdump_snapshot_failed, ctx, uid, seq)
    retry.run(self, snapshot.finish_bulkdump, ctx, uid, seq, on_failure=failed)


@app.task(name="backup.snapshot_failed", queue="backup", bind=True)
def snapshot_failed(self: Task[Any, Any], uid: str, seq: int, phase: str) -> None:
    """Errback of a snapshot chord: a header task died for good, so record the failure."""
    retry.run(self, snapshot.chord_failed, context(), uid, seq, phase)


@app.task(name="backup.capture_logs", queue="mutationlog", bind=True)
def capture_logs(self: Task[Any, Any], uid: str, round_no: int, guard: bool = False) -> None:
    """One round of the backup's mutation-log chain; ``guard``: the round's stand-in, in case its
    message was lost (:mod:`workers.backup.mutationlog`)."""
    ctx = context()
    outcome = retry.run(
        self,
        partial(mutationlog.log_round, guard=guard),
        ctx,
        uid,
        round_no,
        partial(_send, uid),
        partial(_send_guard, uid),
        on_failure=partial(lifecycle.fail, ctx, uid),
    )
    if outcome is None:  # the backup failed (an agent without the backup's key, say)
        return
    if outcome.next_round is not None:
        capture_logs.apply_async((uid, outcome.next_round), countdown=get_settings().log_flush_interval)
