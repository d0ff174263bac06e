"""What the producer CLI does to backups without the fleet: submit, abort, discontinue, modify,
pause and resume.

Like ``fdbbackup``, submitting only records the job and hands ``backup.start`` to the agents; the
container is created here first, so a bad URL or missing credentials fail at the prompt (FDB:
"Could not create backup container") rather than later in a worker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from fdbcore import errors, naming
from fdbcore.backup_encryption import check_destination
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import BackupContainer, redact_url, without_secret
from fdbcore.encryption import EncryptionSettings
from fdbcore.keys import USER_END, KeyRange, normalize_ranges, printable
from fdbcore.modes import SnapshotMode
from workers.backup.job import ACTIVE_STATES, BackupJob, BackupState
from workers.backup.lifecycle import write_metadata
from workers.encryption import encryption_fields
from workers.state import PREFIX, ErrorRecord, JobStore, job_identity

#: Set while ``fdbbackup pause`` is in force (FDB pauses its whole task bucket: every backup).
PAUSE_KEY = f"{PREFIX}:backup:paused"


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
    initial_snapshot_interval: int = 0
    incremental: bool = False


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
        initial_snapshot_interval=sub.initial_snapshot_interval,
        incremental=sub.incremental,
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


def paused(client: redis.Redis) -> bool:
    return bool(client.exists(PAUSE_KEY))


def set_paused(client: redis.Redis, pause: bool) -> None:
    """Stop (or let go on) every backup's log chain and snapshot tasks. Nothing is lost meanwhile: the
    cluster keeps each capture's mutations until the chain saves and pops them."""
    if pause:
        client.set(PAUSE_KEY, str(time.time()))
    else:
        client.delete(PAUSE_KEY)


@dataclass(frozen=True)
class Modification:
    """``fdbbackup modify``: what to change (None: leave it)."""

    url: str | None = None
    credential_files: Sequence[str] | None = None
    snapshot_interval: int | None = None
    active_snapshot_interval: int | None = None
    verify_uid: str | None = None
    #: ``--encryption-key-file``: where agents find the backup's key from now on (the same key).
    key_file: str | None = None

    @property
    def has_changes(self) -> bool:
        return any(
            v is not None for v in (self.url, self.snapshot_interval, self.active_snapshot_interval, self.key_file)
        )


def modify(store: JobStore[BackupJob], container: BackupContainer | None, tag: str, change: Modification) -> BackupJob:
    """Change a running backup, with FDB's refusals (all ``backup_error``). ``container`` is the new
    URL's, already opened and checked; later log files and snapshot periods go there."""
    if not change.has_changes:
        raise errors.BackupError("No changes were specified, nothing to do!")
    job = store.job_for_tag(tag)
    if job is None:
        raise errors.BackupError(f"No backup exists on tag '{tag}'")
    if job.state == BackupState.ABORTED:
        raise errors.BackupError(f"Cannot modify aborted backup on tag '{tag}'")
    if not job.active:
        raise errors.BackupError(f"Backup on tag '{tag}' is not runnable.")
    if change.verify_uid is not None and change.verify_uid != job.uid:
        raise errors.BackupError(
            f"UID verification failed, backup on tag '{tag}' is '{job.uid}' but '{change.verify_uid}' was specified."
        )
    record = store.job(job.uid)
    encryption = job.encryption
    if change.key_file is not None:
        encryption = _moved_key(job, change.key_file)
        record.update(**encryption_fields(encryption))
    if change.active_snapshot_interval is not None:
        if job.snapshot_seq == 0 or job.incremental:
            raise errors.BackupError(f"The backup on tag '{tag}' has no snapshot running")
        record.update(period_seconds=change.active_snapshot_interval)
    if change.snapshot_interval is not None:
        record.update(snapshot_interval=change.snapshot_interval)
    if change.url is not None and container is not None:
        check_destination(container, encryption)
        container.create()
        write_metadata(container, job.partitions, encryption)
        creds = list(change.credential_files if change.credential_files is not None else job.credential_files)
        record.update(url=without_secret(change.url), url_display=redact_url(change.url), credential_files=creds)
    return store.get(job.uid)


def _moved_key(job: BackupJob, key_file: str) -> EncryptionSettings:
    """The job's encryption with its key file at ``key_file``, which must hold the key it was started with."""
    if job.encryption is None:
        raise errors.BackupError(f"The backup on tag '{job.tag}' is not encrypted; remove --encryption-key-file")
    moved = EncryptionSettings.of(key_file, job.encryption.block_size)
    if moved.key_check != job.encryption.key_check:
        raise errors.InvalidEncryptionKeyFile(
            f"encryption key file {key_file} holds a different key than the one the backup on tag '{job.tag}' "
            "was started with; a running backup keeps its key"
        )
    return moved


#: FDB's ``MIN_CLEANUP_SECONDS`` knob: ``cleanup --delete-data`` removes only log retention this far behind.
MIN_CLEANUP_SECONDS = 3600.0


@dataclass(frozen=True)
class RetainedLog:
    """One backup's mutation-log retention in the cluster (its captures), and how far behind it is."""

    uid: str
    saved_version: int
    job: BackupJob | None

    def hours_behind(self, read_version: int) -> float:
        return (read_version - self.saved_version) / (3600.0 * 1_000_000)


def retained_logs(store: JobStore[BackupJob], driver: ClusterDriver) -> list[RetainedLog]:
    """The backups whose captures the cluster keeps (``<uid>.<tag>``), oldest saved version first."""
    saved: dict[str, int] = {}
    for capture in driver.status().captures:
        uid = str(capture["id"]).rsplit(".", 1)[0]
        version = max(int(str(capture["begin_version"])), int(str(capture["popped_version"])))
        saved[uid] = min(saved.get(uid, version), version)
    out = [RetainedLog(uid, v, store.get(uid) if store.exists(uid) else None) for uid, v in saved.items()]
    return sorted(out, key=lambda r: r.saved_version)


def remove_retained(store: JobStore[BackupJob], driver: ClusterDriver, log: RetainedLog, hours: float) -> None:
    """Stop the backup's captures; a backup still recorded as running is marked errored, naming why."""
    job = log.job
    captures = [str(c["id"]) for c in driver.status().captures if str(c["id"]).rsplit(".", 1)[0] == log.uid]
    if job is not None and store.job(job.uid).compare_and_set("state", ACTIVE_STATES, BackupState.ERRORED):
        err = errors.BackupError(f"fdbbackup cleanup removed its mutation logs, {hours:.4f} hours behind")
        store.add_error(job.uid, ErrorRecord.from_error("cleanup", err))
    for capture_id in captures:
        driver.stop_log_capture(capture_id)
