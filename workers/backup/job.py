"""One backup's records in Redis (FDB's BackupConfig), as typed, immutable views.

``fdbbr:backup:<uid>`` holds the :class:`BackupJob`; each snapshot period ``<seq>`` has one record
per snapshot method it runs, ``fdbbr:backup:<uid>:rangefile:<seq>`` (:class:`RangeFileSnapshot`)
and ``fdbbr:backup:<uid>:bulkdump:<seq>`` (:class:`BulkDumpSnapshot`); per-task results live in the
result hashes ``rangefile:<seq>`` and ``bulkdump:<seq>`` (see :mod:`workers.state`).

A continuous backup (``-z``) opens a new period when the current one is over: its range-file
snapshot has finished and its interval has passed (the first period's interval is
``--initial-snapshot-interval``, the others' ``-s``), so range-file snapshots run back to back, each
spread over its interval, as in FDB. BulkDump runs one at a time per backup: a period whose
BulkDump cannot start because an older one is still running gets it when that one finishes (if it
is still the newest period); a period left without one has a range-file snapshot only.
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
    #: ``discontinue`` came before the period's snapshot began (no task sent yet): it is not taken.
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (Phase.COMPLETE, Phase.FAILED, Phase.TIMED_OUT, Phase.SKIPPED)


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
    #: Seconds the first snapshot is spread over (FDB's ``--initial-snapshot-interval``, default 0).
    initial_snapshot_interval: int = 0
    #: ``--incremental``: mutation logs only, no snapshot.
    incremental: bool = False
    bulkdump_deadline: int = DEFAULT_BULKDUMP_DEADLINE
    created_at: float = 0.0
    # --- mutation log
    begin_version: int | None = None
    partitions: list[KeyRange] = field(default_factory=list)
    #: Per partition tag: the exclusive end of the logs saved so far.
    log_saved: dict[int, int] = keyed("log_saved:")
    log_round: int = 0
    #: When ``log_round`` last moved (wall time): a chain guard runs a round only after a long stall.
    log_round_at: float = 0.0
    log_bytes: int = 0
    log_files: int = 0
    #: Set by ``discontinue``: the logs must reach this version before the backup completes.
    stop_version: int = 0
    # --- snapshots
    #: The newest snapshot period claimed (0: none yet).
    snapshot_seq: int = 0
    snapshot_started_at: float | None = None
    #: Seconds the newest period's range files are spread over; the period lasts at least this long.
    period_seconds: int = 0
    #: The period of the newest BulkDump started (0: none yet); one runs at a time.
    bulkdump_seq: int = 0
    #: End version of the first complete snapshot of the kind restorability needs (range files,
    #: or BulkDump in ``bulkdump`` mode): the backup is restorable once the logs pass it.
    first_snapshot_end: int | None = None
    #: End version of the newest complete BulkDump snapshot.
    bulkdump_end: int | None = None
    # --- outcome
    restorable_version: int | None = None
    restorable_at: float | None = None
    completed_version: int | None = None
    completed_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def restorable_from(self) -> int | None:
        """The version the logs must pass for the backup to be restorable (an incremental backup
        restores logs onto an earlier restore, from its begin version)."""
        return self.begin_version if self.incremental else self.first_snapshot_end

    @property
    def discontinued(self) -> bool:
        """``discontinue`` was asked for: the backup stops once restorable up to ``stop_version``."""
        return self.stop_when_done and self.stop_version > 0 and not self.incremental

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
    #: The container this snapshot writes to (``modify -d`` changes the job's URL for later ones).
    url: str = ""
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
    #: Tasks sent so far; the log chain sends them paced over the period (:mod:`workers.backup.pacing`).
    tasks_dispatched: int = 0


@dataclass(frozen=True, kw_only=True)
class BulkDumpSnapshot(MethodSnapshot):
    job_id: str
    deadline_at: float
    keys: int = 0
    #: Failed attempts per task index (a failing storage server may recover).
    attempts: dict[int, int] = keyed("attempts:")
    #: The cluster's estimate of each task's bytes when the dump was planned.
    estimated_bytes: list[int] = field(default_factory=list)

    @property
    def dispatch_order(self) -> list[int]:
        """Task indexes, largest estimate first: the fleet then ends on small tasks rather than with
        one large task running while the other workers idle."""
        sizes = self.estimated_bytes or [0] * self.tasks_total
        return sorted(range(self.tasks_total), key=lambda i: -sizes[i])


@dataclass(frozen=True)
class BackupView:
    """A backup with its newest period's range-file record and its newest BulkDump's record (which
    may belong to an older period: a BulkDump continues into the next period)."""

    job: BackupJob
    rangefile: RangeFileSnapshot | None
    bulkdump: BulkDumpSnapshot | None

    @property
    def bulkload_compatible(self) -> bool:
        """A complete BulkDump dataset exists and the logs run past it."""
        end, bd_end = self.job.log_end_version, self.job.bulkdump_end
        return bd_end is not None and end is not None and end > bd_end

    @property
    def snapshot_finished(self) -> bool:
        """Every snapshot started last has finished (completed, failed or timed out)."""
        job = self.job
        if job.incremental:
            return True
        if job.snapshot_seq == 0:
            return False
        rf_done = not job.mode.range_files or (self.rangefile is not None and self.rangefile.phase.finished)
        bd_done = not job.mode.bulkdump or (self.bulkdump is not None and self.bulkdump.phase.finished)
        return rf_done and bd_done


def snapshot_url(job: BackupJob, snap: MethodSnapshot) -> str:
    """The container a snapshot writes to (records made before ``url`` existed use the job's)."""
    return snap.url or job.url


def rangefile_record(store: JobStore[BackupJob], uid: str, seq: int) -> RecordHash[RangeFileSnapshot]:
    return store.part(uid, RangeFileSnapshot, "rangefile", seq)


def bulkdump_record(store: JobStore[BackupJob], uid: str, seq: int) -> RecordHash[BulkDumpSnapshot]:
    return store.part(uid, BulkDumpSnapshot, "bulkdump", seq)


def view(store: JobStore[BackupJob], job: BackupJob) -> BackupView:
    """The job with its newest period's range-file record and its newest BulkDump's record."""
    rf = rangefile_record(store, job.uid, job.snapshot_seq).load() if job.snapshot_seq else None
    bd = bulkdump_record(store, job.uid, job.bulkdump_seq).load() if job.bulkdump_seq else None
    return BackupView(job, rf, bd)
