"""What ``fdbrestore`` does without the fleet: plan a restore, record it, abort it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from fdbcore import errors, naming
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import BackupContainer
from fdbcore.keys import KeyRange, normalize_ranges, printable
from fdbcore.modes import RestoreMode
from workers.restore import plan as restore_plan
from workers.restore.job import ACTIVE_STATES, RestoreJob, RestoreState, Rewrite
from workers.restore.lifecycle import check_destination_empty, release
from workers.restore.plan import RestorePlan
from workers.state import JobStore, job_identity


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
    selection: restore_plan.Selection = field(default_factory=restore_plan.Selection)
    #: ``-f``: a range-file restore may write into non-empty destination ranges (each block clears
    #: its range before writing, so they end up equal to the backup).
    force: bool = False

    @property
    def overwrite(self) -> bool:
        """The destination may hold data: ``-f``, or a logs-only restore onto an earlier restore."""
        return self.force or self.selection.incremental


def check(container: BackupContainer, driver: ClusterDriver, req: RestoreRequest) -> RestorePlan:
    """Everything that can be checked before submitting, and the plan it yields: the restore set,
    prefixes, an empty destination (range-file mode)."""
    ranges = normalize_ranges(req.ranges)
    dest = req.rewrite.check(ranges)
    plan = restore_plan.build(container, req.target_version, ranges, req.mode, req.selection)
    if req.mode == RestoreMode.RANGEFILE and not req.overwrite:
        check_destination_empty(driver, dest)
    return plan


def submit(store: JobStore[RestoreJob], req: RestoreRequest, plan: RestorePlan) -> str:
    """Record the restore and its plan on ``req.tag``; the agents take it from there."""
    uid = naming.new_uid()
    blocking = store.claim_tag(req.tag, uid, RestoreState.QUEUED, ACTIVE_STATES)
    if blocking is not None:
        raise errors.RestoreDuplicateTag(f"A restore is already running on tag `{printable(req.tag.encode())}'")
    store.put_document(uid, "plan", plan.to_json())
    job = RestoreJob(
        **job_identity(uid, req.tag, req.url, req.cluster_file, req.credential_files),
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


def abort(store: JobStore[RestoreJob], driver: ClusterDriver, tag: str) -> RestoreJob:
    job = store.job_for_tag(tag)
    if job is None:
        raise errors.RestoreUnknownTag(f"No restore on tag `{printable(tag.encode())}'")
    if store.job(job.uid).compare_and_set("state", ACTIVE_STATES, RestoreState.ABORTED):
        release(driver, job)
    return store.get(job.uid)
