"""``fdbbackup status`` text in FDB 8.0's shape (``FileBackupAgentImpl::getStatus``), plus ``--json``.

Where FDB prints nothing useful we say more, in the same style: a failed BulkDump shows its error
name in the BulkDump block instead of FDB's perpetual "Status: pending".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cli.fdbtext import (
    format_bytes_human,
    format_bytes_progress,
    format_duration_human,
    format_time,
    seconds_to_time_format,
    version_to_string,
)
from fdbcore.modes import SnapshotMode
from workers.backup import pacing
from workers.backup.job import (
    BackupJob,
    BackupState,
    BackupView,
    BulkDumpSnapshot,
    MethodSnapshot,
    Phase,
    RangeFileSnapshot,
)
from workers.state import ErrorRecord

_STATE_TEXT = {
    BackupState.ERRORED: "has errored",
    BackupState.SUBMITTED: "has been submitted",
    BackupState.RUNNING: "has been started",
    BackupState.RUNNING_DIFFERENTIAL: "is differential",
    BackupState.COMPLETED: "has been completed",
    BackupState.ABORTED: "has been aborted",
}


def state_text(state: BackupState) -> str:
    """``BackupAgentBase::getStateText``."""
    return _STATE_TEXT[state]


def status_text(
    current: BackupView | None,
    tag: str,
    errors: list[ErrorRecord],
    error_limit: int = 10,
    version_time: Callable[[int], float | None] = lambda v: None,
    paused: bool = False,
) -> str:
    """The text; ``version_time`` maps a version to unix time (the cluster's timekeeper)."""
    tail = "\nAll backup agents have been paused.\n" if paused else ""
    if current is None:
        return f"No previous backups found on tag '{tag}'.\nUse 'fdbbackup tags' to list all backup tags.\n" + tail
    job = current.job
    url = job.url_display
    lines = [_first_line(job, tag, url), f"BackupUID: {job.uid}", f"BackupURL: {url}"]
    lines.append(f"Snapshot Mode: {job.mode}")
    if job.mode != SnapshotMode.RANGEFILE:
        lines.append(f"BulkLoad Compatible: {'yes' if current.bulkload_compatible else 'no'}")
    if job.state in (BackupState.RUNNING, BackupState.RUNNING_DIFFERENTIAL):
        if job.mode.bulkdump:
            lines += ["", "BulkDump Snapshot:", *_bulkdump_block(current.bulkdump)]
        if job.mode.range_files:
            lines += ["", "Rangefile Snapshot:", *_rangefile_block(job, current.rangefile)]
        end = job.log_end_version
        last = None if end is None else end - 1
        lines += [
            "",
            "Mutation Logs:",
            f" Bytes written: {format_bytes_human(job.log_bytes)}",
            f" Last complete version: {version_to_string(last)}"
            f" ({format_time(None if last is None else version_time(last))})",
            "",
            f"Snapshot interval is {job.snapshot_interval} seconds.",
        ]
    text = "\n".join(lines) + "\n"
    return text + _errors_block(job, errors[-error_limit:] if error_limit > 0 else []) + tail


def _first_line(job: BackupJob, tag: str, url: str) -> str:
    if job.state == BackupState.SUBMITTED:
        return f"The backup on tag `{tag}' is in progress (just started) to {url}."
    if job.state == BackupState.RUNNING:
        return f"The backup on tag `{tag}' is in progress to {url}."
    if job.state == BackupState.RUNNING_DIFFERENTIAL:
        return f"The backup on tag `{tag}' is restorable but continuing to {url}."
    if job.state == BackupState.COMPLETED:
        v = job.completed_version if job.completed_version is not None else -1
        return f"The previous backup on tag `{tag}' at {url} completed at version {v}."
    return f"The previous backup on tag `{tag}' at {url} {state_text(job.state)}."


def _bulkdump_block(bd: BulkDumpSnapshot | None) -> list[str]:
    if bd is None or bd.tasks_total == 0:
        return [" Status: pending"]
    done, total = bd.tasks_done, bd.tasks_total
    out = [f" Tasks: {done}/{total} complete ({100.0 * done / total:.1f}%)"]
    out.append(f" Bytes: {format_bytes_progress(bd.bytes, None)}")
    elapsed = (bd.finished_at or time.time()) - bd.started_at
    if elapsed > 0 and bd.bytes:
        out.append(f" Throughput: {bd.bytes / elapsed / 1048576.0:.1f} MB/s")
    if elapsed >= 1:
        out.append(f" Elapsed: {format_duration_human(int(elapsed))}")
    if bd.phase == Phase.RUNNING and 0 < done < total:
        out.append(f" ETA: {format_duration_human(int(elapsed * (total - done) / done))}")
    if bd.phase in (Phase.FAILED, Phase.TIMED_OUT):
        name = "backup_bulkdump_timeout" if bd.phase == Phase.TIMED_OUT else "backup_bulkdump_failed"
        out.append(f" Status: {bd.phase} ({name}); the range-file snapshot is the fallback")
    elif bd.phase == Phase.COMPLETE:
        out.append(f" Status: complete at versions {bd.begin_version}..{bd.end_version}")
    return out


def _rangefile_block(job: BackupJob, rf: RangeFileSnapshot | None) -> list[str]:
    out = [f" Bytes written: {format_bytes_human(rf.bytes if rf else 0)}"]
    if rf is not None and rf.phase == Phase.COMPLETE:
        out.append(" Progress: 100.00%")
    elif rf is not None and rf.phase == Phase.SKIPPED:
        out.append(" Status: not taken (discontinued before this period's snapshot began)")
    elif rf is not None and job.state == BackupState.RUNNING_DIFFERENTIAL and job.period_seconds > 0:
        out.append(f" Progress: {pacing.progress_pct(time.time() - rf.started_at, job.period_seconds):.2f}%")
    elif rf is not None and job.state == BackupState.RUNNING_DIFFERENTIAL and rf.tasks_total:
        out.append(f" Progress: {100.0 * rf.tasks_done / rf.tasks_total:.2f}%")
    else:
        out.append(" Status: Initial snapshot still running")
    out.append(f" Started: {format_time(rf.started_at if rf else None)}")
    return out


def _errors_block(job: BackupJob, errors: list[ErrorRecord]) -> str:
    if not errors:
        return ""
    now = time.time()
    restorable_at = job.restorable_at
    recent: list[str] = []
    older: list[str] = []
    for e in errors:
        ago = seconds_to_time_format(int(now - e.time))
        line = f"{ago} ago : {e.phase}: {e.message} ({e.name}, {e.code})\n"
        (recent if restorable_at is None or e.time >= restorable_at else older).append(line)
    text = ""
    if recent:
        if restorable_at is not None:
            since = seconds_to_time_format(int(now - restorable_at))
            text += f"Recent Errors (since latest restorable point {since} ago)\n"
        else:
            text += "Recent Errors (since initialization)\n"
        text += "".join(recent)
    if older:
        text += "Older Errors\n" + "".join(older)
    return text


def status_json(
    current: BackupView | None, tag: str, errors: list[ErrorRecord], paused: bool = False
) -> dict[str, Any]:
    if current is None:
        return {"Tag": tag, "Found": False, "BackupAgentsPaused": paused}
    job, rf, bd = current.job, current.rangefile, current.bulkdump
    end = job.log_end_version
    return {
        "Tag": tag,
        "Found": True,
        "UID": job.uid,
        "URL": job.url_display,
        "State": job.state.value,
        "StateText": state_text(job.state),
        "SnapshotMode": job.mode.value,
        "BulkLoadCompatible": current.bulkload_compatible,
        # FDB's status JSON names the key file (a path, not a secret) beside the flag.
        "FileLevelEncryption": job.encryption is not None,
        "EncryptionKeyFile": job.encryption_key_file or None,
        "EncryptionBlockSize": job.encryption_block_size,
        "Ranges": [[r.begin.hex(), r.end.hex()] for r in job.ranges],
        "StopWhenDone": job.stop_when_done,
        "SnapshotIntervalSeconds": job.snapshot_interval,
        "InitialSnapshotIntervalSeconds": job.initial_snapshot_interval,
        "Incremental": job.incremental,
        "SnapshotPeriod": job.snapshot_seq,
        "PeriodSeconds": job.period_seconds,
        "BulkDumpPeriod": job.bulkdump_seq,
        "BeginVersion": job.begin_version,
        "RestorableVersion": job.restorable_version,
        "CompletedVersion": job.completed_version,
        "Times": {
            "created_at": job.created_at,
            "snapshot_started_at": job.snapshot_started_at,
            "rf_finished_at": rf.finished_at if rf else None,
            "bd_started_at": bd.started_at if bd else None,
            "bd_finished_at": bd.finished_at if bd else None,
            "completed_at": job.completed_at,
        },
        "RangeFileSnapshot": _snapshot_json(rf, BytesWritten=rf.bytes if rf else 0),
        "BulkDumpSnapshot": _snapshot_json(
            bd, JobId=bd.job_id if bd else None, Bytes=bd.bytes if bd else 0, Keys=bd.keys if bd else 0
        ),
        "MutationLogs": {
            "BytesWritten": job.log_bytes,
            "Files": job.log_files,
            "Partitions": len(job.partitions),
            "LastCompleteVersion": None if end is None else end - 1,
        },
        "Errors": [e.__dict__ for e in errors],
        "BackupAgentsPaused": paused,
    }


def _snapshot_json(snap: MethodSnapshot | None, **extra: object) -> dict[str, object]:
    return {
        "Phase": (snap.phase if snap else Phase.NOT_STARTED).value,
        "TotalBytes": snap.total_bytes if snap else 0,
        **extra,
        "TasksDone": snap.tasks_done if snap else 0,
        "TasksTotal": snap.tasks_total if snap else 0,
        "BeginVersion": snap.begin_version if snap else None,
        "EndVersion": snap.end_version if snap else None,
    }
