"""A backup's life: start, restorability after each log round, completion, failure.

Every step is idempotent: it re-reads the record, skips work already recorded, and makes its
changes with compare-and-set or keyed results, so a redelivered or concurrent copy leaves one
correct outcome.
"""

from __future__ import annotations

import time

from fdbcore import errors, naming
from fdbcore.backup_encryption import metadata_for
from fdbcore.catalog import LOG_CHECKSUM_ALGORITHM, MUTATION_LOG_PARTITIONED, encode_partition_map
from fdbcore.container.base import BackupContainer
from fdbcore.encryption import EncryptionSettings
from fdbcore.formats.properties import format_version_property
from fdbcore.keys import KeyRange
from workers import trace
from workers.backup import planning
from workers.backup.job import ACTIVE_STATES, BackupJob, BackupState, Phase, view
from workers.context import Context
from workers.state import ErrorRecord


def load(ctx: Context, uid: str) -> BackupJob:
    return ctx.backups.get(uid)


def record_error(ctx: Context, uid: str, phase: str, err: BaseException) -> None:
    ctx.backups.add_error(uid, ErrorRecord.from_error(phase, err))
    trace.event(
        "BackupError",
        trace.SEV_WARN_ALWAYS,
        BackupUID=uid,
        Phase=phase,
        Error=getattr(err, "name", repr(err)),
    )


def start(ctx: Context, uid: str) -> bool:
    """Register log capture and write the container metadata; True if the backup is now running."""
    job = load(ctx, uid)
    if job.state != BackupState.SUBMITTED:
        return job.state in ACTIVE_STATES
    driver = ctx.cluster(job.cluster_file)
    container = ctx.container(job)
    parts = planning.choose_partitions(job.ranges, driver.shard_map())
    saved = {tag: driver.start_log_capture(job.capture_id(tag), p.ranges) for tag, p in enumerate(parts)}
    container.create()
    write_metadata(container, [p.span for p in parts], job.encryption)
    record = ctx.backups.job(uid)
    begin = max(saved.values())
    record.update(
        partitions=[p.span for p in parts], begin_version=begin, log_round=1, log_round_at=time.time(), log_saved=saved
    )
    if job.incremental and job.stop_when_done:
        record.set_max("stop_version", begin)  # logs only, from now until the logs pass this moment
    trace.event("BackupBulkDumpIntegrationStart", BackupUID=uid, BackupURL=job.url_display, SnapshotMode=job.mode)
    return record.compare_and_set("state", [BackupState.SUBMITTED], BackupState.RUNNING)


def write_metadata(
    container: BackupContainer, partitions: list[KeyRange], encryption: EncryptionSettings | None
) -> None:
    """The container's ``properties/``: log format, encryption, log checksums, the partition map."""
    container.write(naming.property_path(naming.MUTATION_LOG_TYPE), format_version_property(MUTATION_LOG_PARTITIONED))
    container.write(naming.property_path(naming.ENCRYPTION_METADATA), metadata_for(encryption).to_json())
    container.write(naming.property_path(naming.LOG_CHECKSUMS), LOG_CHECKSUM_ALGORITHM)
    container.write(naming.property_path(naming.LOG_PARTITION_MAP), encode_partition_map(dict(enumerate(partitions))))


def fail(ctx: Context, uid: str, err: errors.FDBError) -> None:
    """The backup cannot continue: record why, stop capturing, and mark it errored."""
    record_error(ctx, uid, "backup", err)
    if ctx.backups.job(uid).compare_and_set("state", ACTIVE_STATES, BackupState.ERRORED):
        stop_captures(ctx, load(ctx, uid))


def stop_captures(ctx: Context, job: BackupJob) -> None:
    driver = ctx.cluster(job.cluster_file)
    for tag in range(len(job.partitions)):
        driver.stop_log_capture(job.capture_id(tag))


def advance(ctx: Context, job: BackupJob) -> bool:
    """Update restorability and end states after a log round; False when the chain should stop."""
    record = ctx.backups.job(job.uid)
    end, restorable_from = job.log_end_version, job.restorable_from
    if end is not None and restorable_from is not None and end > restorable_from:
        if job.restorable_version is None or end - 1 > job.restorable_version:
            record.set_max("restorable_version", end - 1)
            record.update(restorable_at=time.time())
        record.compare_and_set("state", [BackupState.RUNNING], BackupState.RUNNING_DIFFERENTIAL)
    job = load(ctx, job.uid)
    if not job.active:
        return False
    current = view(ctx.backups, job)
    if (
        job.stop_when_done
        and current.snapshot_finished
        and job.restorable_version is not None
        and job.restorable_version >= job.stop_version
    ):
        bd_done = current.bulkdump is None or current.bulkdump.phase != Phase.COMPLETE or current.bulkload_compatible
        if bd_done and record.compare_and_set("state", [BackupState.RUNNING_DIFFERENTIAL], BackupState.COMPLETED):
            record.update(completed_version=job.restorable_version, completed_at=time.time())
            stop_captures(ctx, job)
            trace.event("BackupComplete", BackupUID=job.uid, Version=job.restorable_version)
            return False
    return True
