"""One backup's record in Redis (FDB's BackupConfig), read as a typed, immutable view.

Field names are the Redis hash fields. Per-partition log progress lives in ``log_saved:<tag>``
fields; per-snapshot task lists in ``rf_tasks:<seq>`` / ``bd_tasks:<seq>``; per-task results in
the job's result hashes ``rangefile:<seq>`` and ``bulkdump:<seq>`` (see :mod:`workers.state`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from fdbcore.keys import KeyRange


class BackupState(StrEnum):
    """FDB's ``EBackupState`` (the names ``fdbbackup status --json`` prints)."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    RUNNING_DIFFERENTIAL = "running_differential"  # restorable, still capturing
    COMPLETED = "completed"
    ABORTED = "aborted"
    ERRORED = "errored"


ACTIVE_STATES = (BackupState.SUBMITTED, BackupState.RUNNING, BackupState.RUNNING_DIFFERENTIAL)


class SnapshotMode(StrEnum):
    RANGEFILE = "rangefile"
    BULKDUMP = "bulkdump"
    BOTH = "both"

    @property
    def range_files(self) -> bool:
        return self in (SnapshotMode.RANGEFILE, SnapshotMode.BOTH)

    @property
    def bulkdump(self) -> bool:
        return self in (SnapshotMode.BULKDUMP, SnapshotMode.BOTH)


class Phase(StrEnum):
    """Progress of one snapshot method within the current snapshot."""

    NOT_STARTED = "not_started"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self in (Phase.COMPLETE, Phase.FAILED, Phase.TIMED_OUT)


def ranges_to_json(ranges: list[KeyRange]) -> list[list[str]]:
    return [[r.begin.hex(), r.end.hex()] for r in ranges]


def ranges_from_json(raw: str) -> list[KeyRange]:
    return [KeyRange(bytes.fromhex(b), bytes.fromhex(e)) for b, e in json.loads(raw)]


def _int(d: dict[str, str], key: str) -> int | None:
    v = d.get(key, "")
    return int(v) if v != "" else None


def _float(d: dict[str, str], key: str) -> float | None:
    v = d.get(key, "")
    return float(v) if v != "" else None


@dataclass(frozen=True)
class BackupJob:
    uid: str
    tag: str
    url: str  # as given; may hold a secret, never display it (use url_display)
    url_display: str
    cluster_file: str
    credential_files: list[str]
    mode: SnapshotMode
    ranges: list[KeyRange]
    stop_when_done: bool
    snapshot_interval: int
    bulkdump_deadline: int  # seconds allowed for one snapshot's BulkDump
    state: BackupState
    created_at: float
    # mutation log
    begin_version: int | None
    partitions: list[KeyRange]
    log_saved: dict[int, int]
    log_bytes: int
    log_files: int
    # current snapshot
    snapshot_seq: int
    snapshot_started_at: float | None
    snapshot_version: int | None  # read version when the snapshot was dispatched (kvranges folder)
    rf_phase: Phase
    rf_bytes: int
    rf_begin_version: int | None
    rf_end_version: int | None
    rf_tasks_total: int
    rf_tasks_done: int
    bd_phase: Phase
    bd_job_id: str
    bd_bytes: int
    bd_keys: int
    bd_tasks_total: int
    bd_tasks_done: int
    bd_started_at: float | None
    bd_finished_at: float | None
    bd_begin_version: int | None
    bd_end_version: int | None
    # outcome
    restorable_version: int | None
    completed_version: int | None
    raw: dict[str, str]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def log_end_version(self) -> int | None:
        """Exclusive end of the logs every partition has saved."""
        return min(self.log_saved.values()) if self.log_saved else None

    def capture_id(self, tag: int) -> str:
        return f"{self.uid}.{tag}"

    @property
    def bulkload_compatible(self) -> bool:
        """A complete BulkDump dataset exists and the logs run past it."""
        end = self.log_end_version
        return (
            self.bd_phase == Phase.COMPLETE
            and self.bd_end_version is not None
            and end is not None
            and end > self.bd_end_version
        )

    @staticmethod
    def from_fields(d: dict[str, str]) -> BackupJob:
        return BackupJob(
            uid=d["uid"],
            tag=d["tag"],
            url=d["url"],
            url_display=d["url_display"],
            cluster_file=d["cluster_file"],
            credential_files=json.loads(d.get("credential_files", "[]")),
            mode=SnapshotMode(d["mode"]),
            ranges=ranges_from_json(d["ranges"]),
            stop_when_done=d.get("stop_when_done") == "1",
            snapshot_interval=int(d.get("snapshot_interval", "864000")),
            bulkdump_deadline=int(d.get("bulkdump_deadline", "86400")),
            state=BackupState(d["state"]),
            created_at=float(d.get("created_at", "0")),
            begin_version=_int(d, "begin_version"),
            partitions=ranges_from_json(d.get("partitions", "[]")),
            log_saved={int(k.split(":", 1)[1]): int(v) for k, v in d.items() if k.startswith("log_saved:")},
            log_bytes=int(d.get("log_bytes", "0")),
            log_files=int(d.get("log_files", "0")),
            snapshot_seq=int(d.get("snapshot_seq", "0")),
            snapshot_started_at=_float(d, "snapshot_started_at"),
            snapshot_version=_int(d, "snapshot_version"),
            rf_phase=Phase(d.get("rf_phase", Phase.NOT_STARTED)),
            rf_bytes=int(d.get("rf_bytes", "0")),
            rf_begin_version=_int(d, "rf_begin_version"),
            rf_end_version=_int(d, "rf_end_version"),
            rf_tasks_total=int(d.get("rf_tasks_total", "0")),
            rf_tasks_done=int(d.get("rf_tasks_done", "0")),
            bd_phase=Phase(d.get("bd_phase", Phase.NOT_STARTED)),
            bd_job_id=d.get("bd_job_id", ""),
            bd_bytes=int(d.get("bd_bytes", "0")),
            bd_keys=int(d.get("bd_keys", "0")),
            bd_tasks_total=int(d.get("bd_tasks_total", "0")),
            bd_tasks_done=int(d.get("bd_tasks_done", "0")),
            bd_started_at=_float(d, "bd_started_at"),
            bd_finished_at=_float(d, "bd_finished_at"),
            bd_begin_version=_int(d, "bd_begin_version"),
            bd_end_version=_int(d, "bd_end_version"),
            restorable_version=_int(d, "restorable_version"),
            completed_version=_int(d, "completed_version"),
            raw=d,
        )
