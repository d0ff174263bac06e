"""``fdbrestore status`` text in FDB 8.0's shape (``RestoreConfig::getProgress``/``getFullStatus``)."""

from __future__ import annotations

import time
from typing import Any

from cli.fdbtext import format_bytes_human
from fdbcore.keys import printable
from fdbcore.modes import RestoreMode
from workers.restore.job import PhaseState, RestoreJob, RestoreState
from workers.state import ErrorRecord

NO_RESTORES = "No restores found.\n\nTo start a restore:\n  fdbrestore start -r <BACKUP_URL> [-t <TAG>]\n"


def progress_text(job: RestoreJob, started_tasks: int) -> str:
    head = f"Tag: {job.tag}  UID: {job.uid}  State: {job.state.value}\n"
    if job.mode == RestoreMode.RANGEFILE:
        return head + (
            f" Blocks: {job.blocks_done}/{job.blocks_total} complete\n"
            f" Files: {job.files}\n"
            f" Bytes written: {format_bytes_human(job.bytes_written)}\n"
            " Apply version lag: N/A\n"
        )
    running = max(0, started_tasks - job.tasks_done)
    text = head + (
        f" Tasks submitted: {job.tasks_total}  triggered: {started_tasks}  running: {running}\n"
        f" Tasks triggered: {started_tasks} / {job.tasks_total} total\n"
        f" Bytes written: {format_bytes_human(job.bytes_written)}\n"
    )
    if started_tasks and job.bytes_written:
        text += f" Avg bytes/task: {format_bytes_human(job.bytes_written // started_tasks)}\n"
    return text


def rollback_text(job: RestoreJob) -> str:
    """What an aborted restore left in its destination ranges."""
    if job.rollback != PhaseState.COMPLETE:
        return (
            "Ranges: being put back as they were before the restore (locked until then; "
            "`fdbrestore abort' finishes it if no agent does)"
        )
    if job.ranges_cleared:
        return f"Ranges: as before the restore (its old contents put back: {job.aside_keys} keys)"
    return "Ranges: as before the restore (it had not changed them)"


def full_status_text(job: RestoreJob, started_tasks: int, errors: list[ErrorRecord]) -> str:
    text = progress_text(job, started_tasks) + f"  URL: {job.url_display}"
    for r in job.ranges:
        text += f"  Range: '{printable(r.begin)}'-'{printable(r.end)}'"
    text += (
        f"  AddPrefix: '{printable(job.rewrite.add)}'  RemovePrefix: '{printable(job.rewrite.remove)}'"
        f"  Version: {job.target_version}  Snapshot Method: {job.mode.value}"
        f"  Snapshot Phase: {job.snapshot_phase.value}  Mutation Log Phase: {job.log_phase.value}"
    )
    if job.ranges_cleared:
        text += f"  Old Contents: {job.aside_keys} keys, {format_bytes_human(job.aside_bytes)} set aside"
    if job.state == RestoreState.ABORTED:
        text += "  " + rollback_text(job)
    if errors:
        e = errors[-1]
        text += f"  LastError: '{e.message} ({e.name}, {e.code})' {int(time.time() - e.time)}s ago."
    return text


def status_json(job: RestoreJob, started_tasks: int, errors: list[ErrorRecord]) -> dict[str, Any]:
    return {
        "Tag": job.tag,
        "UID": job.uid,
        "State": job.state.value,
        "URL": job.url_display,
        "TargetVersion": job.target_version,
        "Ranges": [[r.begin.hex(), r.end.hex()] for r in job.ranges],
        "AddPrefix": job.rewrite.add.hex(),
        "RemovePrefix": job.rewrite.remove.hex(),
        "SnapshotMethod": job.mode.value,
        "SnapshotPhase": job.snapshot_phase.value,
        "MutationLogPhase": job.log_phase.value,
        "RangesCleared": job.ranges_cleared,
        "OldContentsKeys": job.aside_keys,
        "OldContentsBytes": job.aside_bytes,
        "Rollback": job.rollback.value,
        "BlocksDone": job.blocks_done,
        "BlocksTotal": job.blocks_total,
        "Files": job.files,
        "TasksTotal": job.tasks_total,
        "TasksDone": job.tasks_done,
        "TasksStarted": started_tasks,
        "BytesWritten": job.bytes_written,
        "LogFileBytes": job.log_file_bytes,
        "ReplayedMutationBytes": job.replay_bytes,
        "Times": {
            "created_at": job.created_at,
            "started_at": job.started_at,
            "verified_at": job.verified_at,
            "prepared_at": job.prepared_at,
            "snapshot_done_at": job.snapshot_done_at,
            "completed_at": job.completed_at,
        },
        "Errors": [e.__dict__ for e in errors],
    }
