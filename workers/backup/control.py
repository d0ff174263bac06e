"""What the producer CLI does to backups without the fleet: submit, abort, discontinue.

Like ``fdbbackup``, submitting only records the job and hands ``backup.start`` to the agents; the
container is created here first, so a bad URL or missing credentials fail at the prompt (FDB:
"Could not create backup container") rather than later in a worker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from fdbcore import errors, naming
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import BackupContainer
from fdbcore.encryption import EncryptionSettings
from fdbcore.keys import USER_END, KeyRange, normalize_ranges, printable
from fdbcore.modes import SnapshotMode
from workers.backup.job import ACTIVE_STATES, BackupJob, BackupState
from workers.encryption import encryption_fields
from workers.state import JobStore, job_identity


@dataclass(frozen=True)
class Submission:
    tag: str
    url: str  # after file:// timestamping; may hold a secret
    cluster_file: str
    mode: SnapshotMode
    ranges: list[KeyRange]
    stop_when_done: bool
    snapshot_interval: int
    bulkdump_deadline: int
    credential_files: Sequence[str] = ()
    #: File-level encryption (None: the backup is plain).
    encryption: EncryptionSettings | None = None


def validate_ranges(ranges: Sequence[KeyRange]) -> list[KeyRange]:
    """Backup ranges: non-empty, inside the user key space (FDB backs up normal keys)."""
    for r in ranges:
        if r.empty:
            raise errors.InvertedRange(f"key range {r} is empty")
        if r.end > USER_END:
            raise errors.KeyOutsideLegalRange(
                f"key range {r} reaches into the system key space; backup ranges must end by '\\xff'"
            )
    return normalize_ranges(ranges)


def submit(store: JobStore[BackupJob], container: BackupContainer, sub: Submission, *, dry_run: bool = False) -> str:
    """Record a new backup on ``sub.tag``; raises ``backup_duplicate`` if one is running there."""
    ranges = validate_ranges(sub.ranges)
    current = store.job_for_tag(sub.tag)
    if current is not None and current.active:
        raise errors.BackupDuplicate(f"A backup is already running on tag `{printable(sub.tag.encode())}'")
    if dry_run:
        return ""
    container.create()
    uid = naming.new_uid()
    blocking = store.claim_tag(sub.tag, uid, BackupState.SUBMITTED, ACTIVE_STATES)
    if blocking is not None:
        raise errors.BackupDuplicate(f"A backup is already running on tag `{printable(sub.tag.encode())}'")
    job = BackupJob(
        **job_identity(uid, sub.tag, sub.url, sub.cluster_file, sub.credential_files),
        **encryption_fields(sub.encryption),
        mode=sub.mode,
        ranges=ranges,
        stop_when_done=sub.stop_when_done,
        snapshot_interval=sub.snapshot_interval,
        bulkdump_deadline=sub.bulkdump_deadline,
        state=BackupState.SUBMITTED,
        created_at=time.time(),
    )
    store.create(uid, job)
    return uid


def abort(store: JobStore[BackupJob], driver: ClusterDriver, tag: str) -> BackupJob:
    """Stop the tag's backup now; FDB's ``backup_unneeded`` if none is running."""
    job = store.job_for_tag(tag)
    if job is None or not store.job(job.uid).compare_and_set("state", ACTIVE_STATES, BackupState.ABORTED):
        raise errors.BackupUnneeded(f"A backup was not running on tag `{printable(tag.encode())}'")
    for t in range(len(job.partitions)):
        driver.stop_log_capture(job.capture_id(t))
    return job


def discontinue(store: JobStore[BackupJob], driver: ClusterDriver, tag: str) -> BackupJob:
    """Let a continuous backup stop once its snapshot is restorable and its logs reach the cluster's
    version at this moment, so everything committed before the command is in the backup."""
    job = store.job_for_tag(tag)
    if job is None or not job.active:
        raise errors.BackupUnneeded(f"A backup in not running on tag `{printable(tag.encode())}'")
    record = store.job(job.uid)
    record.update(stop_version=driver.get_read_version())
    if not record.compare_and_set("stop_when_done", [False, None], True):
        raise errors.BackupDuplicate(f"The backup on tag `{printable(tag.encode())}' is already discontinued")
    return job
