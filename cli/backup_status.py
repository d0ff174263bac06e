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
from workers.backup.job import BackupJob, BackupState, Phase, SnapshotMode
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
    job: BackupJob | None,
    tag: str,
    errors: list[ErrorRecord],
    error_limit: int = 10,
    version_time: Callable[[int], float | None] = lambda v: None,
) -> str:
    """The text; ``version_time`` maps a version to unix time (the cluster's timekeeper)."""
    if job is None:
        return f"No previous backups found on tag '{tag}'.\nUse 'fdbbackup tags' to list all backup tags.\n"
    url = job.url_display
    lines = [_first_line(job, tag, url), f"BackupUID: {job.uid}", f"BackupURL: {url}"]
    lines.append(f"Snapshot Mode: {job.mode}")
    if job.mode != SnapshotMode.RANGEFILE:
        lines.append(f"BulkLoad Compatible: {'yes' if job.bulkload_compatible else 'no'}")
    if job.state in (BackupState.RUNNING, BackupState.RUNNING_DIFFERENTIAL):
        if job.mode.bulkdump:
            lines += ["", "BulkDump Snapshot:", *_bulkdump_block(job)]
        if job.mode.range_files:
            lines += ["", "Rangefile Snapshot:", *_rangefile_block(job)]
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
    return text + _errors_block(job, errors[-error_limit:] if error_limit > 0 else [])


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


def _bulkdump_block(job: BackupJob) -> list[str]:
    if job.bd_phase == Phase.NOT_STARTED or job.bd_tasks_total == 0:
        return [" Status: pending"]
    done, total = job.bd_tasks_done, job.bd_tasks_total
    out = [f" Tasks: {done}/{total} complete ({100.0 * done / total:.1f}%)"]
    out.append(f" Bytes: {format_bytes_progress(job.bd_bytes, None)}")
    started = job.bd_started_at or time.time()
    elapsed = (job.bd_finished_at or time.time()) - started
    if elapsed > 0 and job.bd_bytes:
        out.append(f" Throughput: {job.bd_bytes / elapsed / 1048576.0:.1f} MB/s")
    if elapsed >= 1:
        out.append(f" Elapsed: {format_duration_human(int(elapsed))}")
    if job.bd_phase == Phase.RUNNING and 0 < done < total:
        out.append(f" ETA: {format_duration_human(int(elapsed * (total - done) / done))}")
    if job.bd_phase in (Phase.FAILED, Phase.TIMED_OUT):
        name = "backup_bulkdump_timeout" if job.bd_phase == Phase.TIMED_OUT else "backup_bulkdump_failed"
        out.append(f" Status: {job.bd_phase} ({name}); the range-file snapshot is the fallback")
    elif job.bd_phase == Phase.COMPLETE:
        out.append(f" Status: complete at versions {job.bd_begin_version}..{job.bd_end_version}")
    return out


def _rangefile_block(job: BackupJob) -> list[str]:
    out = [f" Bytes written: {format_bytes_human(job.rf_bytes)}"]
    if job.rf_phase == Phase.COMPLETE:
        out.append(" Progress: 100.00%")
    elif job.state == BackupState.RUNNING_DIFFERENTIAL and job.rf_tasks_total:
        out.append(f" Progress: {100.0 * job.rf_tasks_done / job.rf_tasks_total:.2f}%")
    else:
        out.append(" Status: Initial snapshot still running")
    out.append(f" Started: {format_time(job.snapshot_started_at)}")
    return out


def _errors_block(job: BackupJob, errors: list[ErrorRecord]) -> str:
    if not errors:
        return ""
    now = time.time()
    restorable_at = _float(job.raw.get("restorable_at"))
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


def _float(raw: str | None) -> float | None:
    return float(raw) if raw else None


def status_json(job: BackupJob | None, tag: str, errors: list[ErrorRecord]) -> dict[str, Any]:
    if job is None:
        return {"Tag": tag, "Found": False}
    end = job.log_end_version
    return {
        "Tag": tag,
        "Found": True,
        "UID": job.uid,
        "URL": job.url_display,
        "State": job.state.value,
        "StateText": state_text(job.state),
        "SnapshotMode": job.mode.value,
        "BulkLoadCompatible": job.bulkload_compatible,
        "Ranges": [[r.begin.hex(), r.end.hex()] for r in job.ranges],
        "StopWhenDone": job.stop_when_done,
        "SnapshotIntervalSeconds": job.snapshot_interval,
        "BeginVersion": job.begin_version,
        "RestorableVersion": job.restorable_version,
        "CompletedVersion": job.completed_version,
        "Times": {
            k: _float(job.raw.get(k))
            for k in (
                "created_at",
                "snapshot_started_at",
                "rf_finished_at",
                "bd_started_at",
                "bd_finished_at",
                "completed_at",
            )
        },
        "RangeFileSnapshot": {
            "Phase": job.rf_phase.value,
            "TotalBytes": int(job.raw.get("rf_total_bytes", "0")),
            "BytesWritten": job.rf_bytes,
            "TasksDone": job.rf_tasks_done,
            "TasksTotal": job.rf_tasks_total,
            "BeginVersion": job.rf_begin_version,
            "EndVersion": job.rf_end_version,
        },
        "BulkDumpSnapshot": {
            "Phase": job.bd_phase.value,
            "TotalBytes": int(job.raw.get("bd_total_bytes", "0")),
            "JobId": job.bd_job_id or None,
            "Bytes": job.bd_bytes,
            "Keys": job.bd_keys,
            "TasksDone": job.bd_tasks_done,
            "TasksTotal": job.bd_tasks_total,
            "BeginVersion": job.bd_begin_version,
            "EndVersion": job.bd_end_version,
        },
        "MutationLogs": {
            "BytesWritten": job.log_bytes,
            "Files": job.log_files,
            "Partitions": len(job.partitions),
            "LastCompleteVersion": None if end is None else end - 1,
        },
        "Errors": [e.__dict__ for e in errors],
    }
