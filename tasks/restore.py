"""Restore tasks: ``start -> verify -> prepare -> snapshot phase -> snapshot_done -> replay streams -> finish``.

Both modes start with a chord of verify tasks (every file the restore will read proven intact,
:mod:`workers.restore.verify`) whose callback checks the destination (BulkLoad: its knobs) and sends
``restore.prepare``: the destination ranges' old contents set aside and the ranges cleared
(:mod:`workers.restore.replacement`). Then the snapshot phase: a chord of per-file range-file tasks,
or of BulkLoad groups. Both end in ``restore.snapshot_done``, which proves every range arrived before
the log replay chord starts. An abort sends ``restore.rollback`` (the old contents back, the ranges
released). Long tasks (prepare, replay, rollback) hand over to a fresh copy of themselves
(``Task.replace``) to keep each run bounded.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import Task, chord

from fdbcore.modes import RestoreMode
from tasks import retry
from tasks.app import app
from workers.context import context
from workers.restore import lifecycle, log_phase, replacement, snapshot_phase


@app.task(name="restore.start", queue="restore", bind=True)
def start(self: Task[Any, Any], uid: str) -> None:
    ctx = context()
    dispatch = retry.run(self, lifecycle.start, ctx, uid, on_failure=partial(lifecycle.fail, ctx, uid, phase="start"))
    if dispatch is None:
        return
    header = [verify.si(uid, i) for i in range(dispatch.tasks)]
    chord(header)(load.si(uid).on_error(chord_failed.si(uid, "verify")))
    lifecycle.mark_dispatched(ctx, uid)


@app.task(name="restore.verify", queue="restore", bind=True)
def verify(self: Task[Any, Any], uid: str, index: int) -> None:
    ctx = context()
    failed = partial(lifecycle.fail, ctx, uid, phase="verify")
    retry.run(self, snapshot_phase.verify_task, ctx, uid, index, on_failure=failed)


@app.task(name="restore.load", queue="restore", bind=True)
def load(self: Task[Any, Any], uid: str) -> None:
    """Callback of the verify chord: check the prerequisites, then prepare the destination."""
    if retry.run(self, snapshot_phase.prerequisites, context(), uid) is not None:
        prepare.apply_async((uid,))


@app.task(name="restore.prepare", queue="restore", bind=True)
def prepare(self: Task[Any, Any], uid: str) -> None:
    """Set the destination ranges' old contents aside and clear them; then the snapshot phase."""
    ctx = context()
    failed = partial(lifecycle.fail, ctx, uid, phase="prepare")
    dispatch = retry.run(self, lifecycle.prepare, ctx, uid, on_failure=failed)
    if dispatch == "again":
        raise self.replace(prepare.si(uid))
    if dispatch is None:
        return
    if dispatch.mode == RestoreMode.RANGEFILE:
        header = [rangefile.si(uid, i) for i in range(dispatch.tasks)]
        chord(header)(snapshot_done.si(uid).on_error(chord_failed.si(uid, "rangefile")))
    else:
        header = [bulkload.si(uid, i) for i in range(dispatch.tasks)]
        chord(header)(snapshot_done.si(uid).on_error(chord_failed.si(uid, "bulkload")))


@app.task(name="restore.rangefile", queue="replay", bind=True)
def rangefile(self: Task[Any, Any], uid: str, index: int) -> None:
    ctx = context()
    failed = partial(lifecycle.fail, ctx, uid, phase="rangefile")
    retry.run(self, snapshot_phase.rangefile_task, ctx, uid, index, on_failure=failed)


@app.task(name="restore.bulkload", queue="bulkload", bind=True)
def bulkload(self: Task[Any, Any], uid: str, index: int) -> None:
    retry.run(self, snapshot_phase.bulkload_task, context(), uid, index)


@app.task(name="restore.snapshot_done", queue="restore", bind=True)
def snapshot_done(self: Task[Any, Any], uid: str) -> None:
    streams = retry.run(self, snapshot_phase.snapshot_done, context(), uid)
    if streams:
        header = [replay.si(uid, s) for s in range(streams)]
        chord(header)(finish.si(uid).on_error(chord_failed.si(uid, "replay")))
    elif streams == 0:
        finish.apply_async((uid,))


@app.task(name="restore.replay", queue="replay", bind=True)
def replay(self: Task[Any, Any], uid: str, stream: int) -> None:
    ctx = context()
    failed = partial(log_phase.replay_failed, ctx, uid)
    if not retry.run(self, log_phase.replay_task, ctx, uid, stream, on_failure=failed):
        raise self.replace(replay.si(uid, stream))


@app.task(name="restore.chord_failed", queue="restore", bind=True)
def chord_failed(self: Task[Any, Any], uid: str, phase: str) -> None:
    """Errback of a restore chord: a task died for good, so the restore aborts with a named error."""
    retry.run(self, lifecycle.chord_failed, context(), uid, phase)


@app.task(name="restore.finish", queue="restore", bind=True)
def finish(self: Task[Any, Any], uid: str) -> None:
    if not retry.run(self, lifecycle.finish, context(), uid):
        raise self.replace(finish.si(uid))


#: Retries of a rollback that finds its restore still active before it concludes no abort is coming.
ROLLBACK_EARLY_RETRIES = 5


@app.task(name="restore.rollback", queue="restore", bind=True)
def rollback(self: Task[Any, Any], uid: str) -> None:
    """After an abort: put the destination ranges' old contents back and release them."""
    ctx = context()
    lease_ms = int(ctx.settings.task_time_limit * 1000)
    budget = replacement.budget_seconds(ctx.settings)
    driver = ctx.cluster(ctx.restores.get(uid).cluster_file)
    done = retry.run(self, lifecycle.rollback, ctx.restores, driver, uid, lease_ms, budget)
    if done is None:  # not aborted yet
        if self.request.retries >= ROLLBACK_EARLY_RETRIES:
            return  # the failure that sent it was not the end of the restore (its task ran again)
        raise self.retry(countdown=retry.backoff(self.request.retries, ctx.settings.retry_backoff_max))
    if not done:
        raise self.replace(rollback.si(uid))


def _send_rollback(uid: str) -> None:
    rollback.apply_async((uid,))


lifecycle.send_rollback = _send_rollback
