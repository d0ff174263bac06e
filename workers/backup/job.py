"""One backup's records in Redis (FDB's BackupConfig), as typed, immutable views.

``fdbbr:backup:<uid>`` holds the :class:`BackupJob`; each snapshot period ``<seq>`` has one record
per snapshot method it runs, ``fdbbr:backup:<uid>:rangefile:<seq>`` (:class:`RangeFileSnapshot`)
and ``fdbbr:backup:<uid>:bulkdump:<seq>`` (:class:`BulkDumpSnapshot`); per-task results live in the
result hashes ``rangefile:<seq>`` and ``bulkdump:<seq>`` (see :mod:`workers.state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fdbcore.keys import KeyRange
from fdbcore.modes import SnapshotMode
from workers.encryption import EncryptedJob
from workers.record import Record, keyed
from workers.state import JobStore, RecordHash

#: FDB's ``BACKUP_DEFAULT_SNAPSHOT_INTERVAL_SEC``.
DEFAULT_SNAPSHOT_INTERVAL = 864000
#: FDB's ``BULKDUMP_JOB_TIMEOUT``: seconds one snapshot's BulkDump may take.
DEFAULT_BULKDUMP_DEADLINE = 86400


class BackupState(StrEnum):
    """FDB's ``EBackupState`` (the names ``fdbbackup status --json`` prints)."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    RUNNING_DIFFERENTIAL = "running_differential"  # restorable, still capturing
    COMPLETED = "completed"
    ABORTED = "aborted"
    ERRORED = "errored"


ACTIVE_STATES = (BackupState.SUBMITTED, BackupState.RUNNING, BackupState.RUNNING_DIFFERENTIAL)


class Phase(StrEnum):
    """Progress of one snapshot method within one snapshot period."""

    NOT_STARTED = "not_started"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self in (Phase.COMPLETE, Phase.FAILED, Phase.TIMED_OUT)


@dataclass(frozen=True, kw_only=True)
class BackupJob(EncryptedJob):
    uid: str
    tag: str
    url: str  # without any secret the URL held (agents find credentials themselves); display url_display
    url_display: str
    cluster_file: str
    mode: SnapshotMode
    ranges: list[KeyRange]
    state: BackupState
    credential_files: list[str] = field(default_factory=list)
    stop_when_done: bool = True
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL
    bulkdump_deadline: int = DEFAULT_BULKDUMP_DEADLINE
    created_at: float = 0.0
    # --- mutation log
    begin_version: int | None = None
    partitions: list[KeyRange] = field(default_factory=list)
    #: Per partition tag: the exclusive end of the logs saved so far.
    log_saved: dict[int, int] = keyed("log_saved:")
    log_round: int = 0
    log_bytes: int = 0
    log_files: int = 0
    #: Set by ``discontinue``: the logs must reach this version before the backup completes.
    stop_version: int = 0
    # --- snapshots
    #: The newest snapshot period claimed (0: none yet).
    snapshot_seq: int = 0
    snapshot_started_at: float | None = None
    # --- outcome
    restorable_version: int | None = None
    restorable_at: float | None = None
    completed_version: int | None = None
    completed_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def log_end_version(self) -> int | None:
        """Exclusive end of the logs every partition has saved."""
        return min(self.log_saved.values()) if self.log_saved else None

    def capture_id(self, tag: int) -> str:
        return f"{self.uid}.{tag}"


@dataclass(frozen=True, kw_only=True)
class MethodSnapshot(Record):
    """What either snapshot method records for one snapshot period."""

    seq: int
    #: The key range of each task, by task index.
    tasks: list[KeyRange]
    phase: Phase = Phase.RUNNING
    started_at: float = 0.0
    dispatched: bool = False
    tasks_done: int = 0
    bytes: int = 0  # data written so far
    # --- once complete, from its snapshot manifest
    total_bytes: int = 0
    begin_version: int | None = None
    end_version: int | None = None
    manifest: str = ""
    finished_at: float | None = None

    @property
    def tasks_total(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True, kw_only=True)
class RangeFileSnapshot(MethodSnapshot):
    #: The read version when the snapshot was dispatched (it names the ``kvranges/`` folder).
    version: int


@dataclass(frozen=True, kw_only=True)
class BulkDumpSnapshot(MethodSnapshot):
    job_id: str
    deadline_at: float
    keys: int = 0
    #: Failed attempts per task index (a failing storage server may recover).
    attempts: dict[int, int] = keyed("attempts:")


@dataclass(frozen=True)
class BackupView:
    """A backup and its newest snapshot period's records, as status and progress read them."""

    job: BackupJob
    rangefile: RangeFileSnapshot | None
    bulkdump: BulkDumpSnapshot | None

    @property
    def bulkload_compatible(self) -> bool:
        """A complete BulkDump dataset exists and the logs run past it."""
        bd, end = self.bulkdump, self.job.log_end_version
        return (
            bd is not None
            and bd.phase == Phase.COMPLETE
            and bd.end_version is not None
            and end is not None
            and end > bd.end_version
        )

    @property
    def snapshot_finished(self) -> bool:
        """Every method of the newest snapshot period has finished (completed, failed or timed out)."""
        if self.job.snapshot_seq == 0:
            return False
        mode = self.job.mode
        rf_done = not mode.range_files or (self.rangefile is not None and self.rangefile.phase.finished)
        bd_done = not mode.bulkdump or (self.bulkdump is not None and self.bulkdump.phase.finished)
        return rf_done and bd_done

    @property
    def required_snapshot_end(self) -> int | None:
        """The snapshot end version the logs must pass for the backup to be restorable."""
        snap = self.rangefile if self.job.mode.range_files else self.bulkdump
        return snap.end_version if snap is not None and snap.phase == Phase.COMPLETE else None


def rangefile_record(store: JobStore[BackupJob], uid: str, seq: int) -> RecordHash[RangeFileSnapshot]:
    return store.part(uid, RangeFileSnapshot, "rangefile", seq)


def bulkdump_record(store: JobStore[BackupJob], uid: str, seq: int) -> RecordHash[BulkDumpSnapshot]:
    return store.part(uid, BulkDumpSnapshot, "bulkdump", seq)


def view(store: JobStore[BackupJob], job: BackupJob) -> BackupView:
    """The job with its newest snapshot period's records."""
    seq = job.snapshot_seq
    if seq == 0:
        return BackupView(job, None, None)
    return BackupView(job, rangefile_record(store, job.uid, seq).load(), bulkdump_record(store, job.uid, seq).load())
