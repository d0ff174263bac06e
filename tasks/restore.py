"""Restore tasks: ``plan -> snapshot phase -> snapshot_done -> replay partitions -> finish``.

Both modes start with a chord of verify tasks (every file the restore will read proven intact,
:mod:`workers.restore.verify`) whose callback checks the destination (BulkLoad: its knobs) and runs
the snapshot phase: a chord of per-file range-file tasks, or of BulkLoad groups. Both end in
``restore.snapshot_done``, which proves every range arrived before the log replay chord starts.
Replay tasks hand over to a fresh copy of themselves (``Task.replace``) to keep each run bounded.
"""

from __future__ import annotations

from typing import Any

from celery import Task, chord

from tasks import retry
from tasks.app import app
from workers.context import context
from workers.restore import service
from workers.restore.job import RestoreMode


@app.task(name="restore.start", queue="restore", bind=True)
def start(self: Task[Any, Any], uid: str) -> None:
    dispatch = retry.run(self, service.plan, context(), uid)
    if dispatch is None:
        return
    header = [verify.si(uid, i) for i in range(dispatch.tasks)]
    chord(header)(load.si(uid).on_error(chord_failed.si(uid, "verify")))
    service.mark_dispatched(context(), uid)


@app.task(name="restore.rangefile", queue="replay", bind=True)
def rangefile(self: Task[Any, Any], uid: str, index: int) -> None:
    retry.run(self, service.rangefile_task, context(), uid, index)


@app.task(name="restore.verify", queue="restore", bind=True)
def verify(self: Task[Any, Any], uid: str, index: int) -> None:
    retry.run(self, service.verify_task, context(), uid, index)


@app.task(name="restore.load", queue="restore", bind=True)
def load(self: Task[Any, Any], uid: str) -> None:
    """Callback of the verify chord: the snapshot phase of the restore's mode."""
    dispatch = retry.run(self, service.prerequisites, context(), uid)
    if dispatch is None:
        return
    if dispatch.mode == RestoreMode.RANGEFILE:
        header = [rangefile.si(uid, i) for i in range(dispatch.tasks)]
        chord(header)(snapshot_done.si(uid).on_error(chord_failed.si(uid, "rangefile")))
    else:
        header = [bulkload.si(uid, i) for i in range(dispatch.tasks)]
        chord(header)(snapshot_done.si(uid).on_error(chord_failed.si(uid, "bulkload")))


@app.task(name="restore.bulkload", queue="bulkload", bind=True)
def bulkload(self: Task[Any, Any], uid: str, index: int) -> None:
    retry.run(self, service.bulkload_task, context(), uid, index)


@app.task(name="restore.snapshot_done", queue="restore", bind=True)
def snapshot_done(self: Task[Any, Any], uid: str) -> None:
    streams = retry.run(self, service.snapshot_done, context(), uid)
    if streams:
        header = [replay.si(uid, s) for s in range(streams)]
        chord(header)(finish.si(uid).on_error(chord_failed.si(uid, "replay")))
    elif streams == 0:
        finish.apply_async((uid,))


@app.task(name="restore.replay", queue="replay", bind=True)
def replay(self: Task[Any, Any], uid: str, stream: int) -> None:
    if not retry.run(self, service.replay_task, context(), uid, stream):
        raise self.replace(replay.si(uid, stream))


@app.task(name="restore.chord_failed", queue="restore", bind=True)
def chord_failed(self: Task[Any, Any], uid: str, phase: str) -> None:
    """Errback of a restore chord: a task died for good, so the restore aborts with a named error."""
    retry.run(self, service.chord_failed, context(), uid, phase)


@app.task(name="restore.finish", queue="restore", bind=True)
def finish(self: Task[Any, Any], uid: str) -> None:
    retry.run(self, service.finish, context(), uid)
