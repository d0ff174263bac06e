"""What ``fdbrestore`` does without the fleet: plan a restore, record it, abort it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from fdbcore import errors, naming
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import BackupContainer
from fdbcore.encryption import EncryptionSettings
from fdbcore.keys import USER_KEYS, KeyRange, key_after, normalize_ranges, printable
from fdbcore.modes import RestoreMode
from workers.encryption import encryption_fields
from workers.restore import lifecycle, replacement
from workers.restore import plan as restore_plan
from workers.restore.job import ACTIVE_STATES, RestoreJob, RestoreState, Rewrite
from workers.restore.lifecycle import check_destination_empty
from workers.restore.plan import RestorePlan
from workers.state import JobStore, job_identity

#: How often ``fdbrestore abort`` looks again while an agent's copy of the rollback runs.
ROLLBACK_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RestoreRequest:
    tag: str
    url: str
    cluster_file: str
    mode: RestoreMode
    target_version: int | None
    ranges: list[KeyRange]
    rewrite: Rewrite
    credential_files: Sequence[str] = ()
    #: The backup's file-level encryption (None: it is plain).
    encryption: EncryptionSettings | None = None
    selection: restore_plan.Selection = field(default_factory=restore_plan.Selection)
    #: ``-f``: a range-file restore of the whole database may write into a non-empty destination.
    force: bool = False

    @property
    def overwrite(self) -> bool:
        """The destination may hold data: ``-f``, or a logs-only restore onto an earlier restore."""
        return self.force or self.selection.incremental

    @property
    def dest_ranges(self) -> list[KeyRange]:
        """The destination ranges (checked against the prefixes)."""
        return self.rewrite.check(normalize_ranges(self.ranges))


@dataclass(frozen=True)
class Holding:
    """What a destination range holds now (what the restore would replace)."""

    range: KeyRange
    keys: int
    bytes: int


def check(container: BackupContainer, driver: ClusterDriver, req: RestoreRequest) -> RestorePlan:
    """Everything that can be checked before submitting, and the plan it yields: the restore set,
    prefixes, an empty destination (a range-file restore of the whole database, as FDB's)."""
    ranges = normalize_ranges(req.ranges)
    dest = req.dest_ranges
    plan = restore_plan.build(container, req.target_version, ranges, req.mode, req.selection)
    if req.mode == RestoreMode.RANGEFILE and ranges == [USER_KEYS] and not req.overwrite:
        check_destination_empty(driver, dest)
    return plan


def holdings(driver: ClusterDriver, req: RestoreRequest, chunk_bytes: int = 4 << 20) -> list[Holding]:
    """Keys and bytes each destination range holds now (``-n``): what the restore would replace.

    Read in chunks, each at the newest version (a count, not a snapshot: a range the size of a
    cluster outlives the MVCC window). A range locked against reads (another restore) is refused
    with ``transaction_rejected_range_locked``.
    """
    out = []
    for r in req.dest_ranges:
        keys = nbytes = 0
        cursor = r.begin
        while True:
            chunk = driver.get_range(cursor, r.end, driver.get_read_version(), limit_bytes=chunk_bytes)
            keys += len(chunk.kvs)
            nbytes += sum(len(k) + len(v) for k, v in chunk.kvs)
            if not chunk.more:
                break
            cursor = key_after(chunk.kvs[-1][0])
        out.append(Holding(r, keys, nbytes))
    return out


def submit(store: JobStore[RestoreJob], req: RestoreRequest, plan: RestorePlan) -> str:
    """Record the restore and its plan on ``req.tag``; the agents take it from there."""
    uid = naming.new_uid()
    blocking = store.claim_tag(req.tag, uid, RestoreState.QUEUED, ACTIVE_STATES)
    if blocking is not None:
        raise errors.RestoreDuplicateTag(f"A restore is already running on tag `{printable(req.tag.encode())}'")
    store.put_document(uid, "plan", plan.to_json())
    job = RestoreJob(
        **job_identity(uid, req.tag, req.url, req.cluster_file, req.credential_files),
        **encryption_fields(req.encryption),
        mode=req.mode,
        target_version=plan.target_version,
        ranges=normalize_ranges(req.ranges),
        remove_prefix=req.rewrite.remove,
        add_prefix=req.rewrite.add,
        overwrite=req.overwrite,
        state=RestoreState.QUEUED,
        created_at=time.time(),
        files=len(plan.range_files),
        blocks_total=plan.blocks_total,
        tasks_total=len(plan.groups),
        log_file_bytes=plan.log_file_bytes,
        streams=len(plan.streams),
    )
    store.create(uid, job)
    return uid


def abort(store: JobStore[RestoreJob], driver: ClusterDriver, tag: str, lease_ms: int) -> RestoreJob:
    """Abort the restore on ``tag`` and roll it back here: the ranges end as they were before it.

    Also finishes the rollback of a restore aborted earlier whose rollback did not complete (its
    agent or an earlier ``fdbrestore abort`` was killed), or waits for the agent running it.
    """
    job = store.job_for_tag(tag)
    if job is None:
        raise errors.RestoreUnknownTag(f"No restore on tag `{printable(tag.encode())}'")
    store.job(job.uid).compare_and_set("state", ACTIVE_STATES, RestoreState.ABORTED)
    while True:
        try:
            if lifecycle.rollback(store, driver, job.uid, lease_ms, replacement.BUDGET_SECONDS):
                return store.get(job.uid)
        except errors.Retry:  # an agent is rolling it back
            time.sleep(ROLLBACK_POLL_SECONDS)
        if store.get(job.uid).active:  # the abort above did not land: never loop on it
            raise errors.RestoreError(f"restore {job.uid} could not be aborted")
