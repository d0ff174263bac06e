"""What ``fdbrestore`` does without the fleet: check a restore is possible, record it, abort it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fdbcore import errors, naming
from fdbcore.catalog import Catalog, RestoreSet
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.container import BackupContainer, redact_url
from fdbcore.keys import KeyRange, normalize_ranges, printable
from workers.backup.job import ranges_to_json
from workers.restore.job import ACTIVE_STATES, RestoreJob, RestoreMode, RestoreState, Rewrite
from workers.state import JobStore


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


def check(container: BackupContainer, driver: ClusterDriver, req: RestoreRequest) -> RestoreSet:
    """Everything that can be checked before submitting: the restore set, prefixes, an empty destination."""
    ranges = normalize_ranges(req.ranges)
    dest = req.rewrite.check(ranges)
    rs = Catalog(container).restore_set(req.target_version, ranges, req.mode.value)
    if req.mode == RestoreMode.RANGEFILE:
        version = driver.get_read_version()
        for r in dest:
            found = driver.get_range(r.begin, r.end, version, limit=1)
            if found.kvs:
                raise errors.RestoreDestinationNotEmpty(
                    f"the destination already has keys in {r} (first: '{printable(found.kvs[0][0])}'); "
                    "a range-file restore needs empty destination ranges"
                )
    return rs


def submit(store: JobStore, req: RestoreRequest, target_version: int) -> str:
    uid = naming.new_uid()
    blocking = store.claim_tag(req.tag, uid, RestoreState.QUEUED, ACTIVE_STATES)
    if blocking is not None:
        raise errors.RestoreDuplicateTag(f"A restore is already running on tag `{printable(req.tag.encode())}'")
    store.create(
        uid,
        {
            "uid": uid,
            "tag": req.tag,
            "url": req.url,
            "url_display": redact_url(req.url),
            "cluster_file": req.cluster_file,
            "credential_files": json.dumps(list(req.credential_files)),
            "mode": req.mode,
            "target_version": target_version,
            "ranges": ranges_to_json(normalize_ranges(req.ranges)),
            "remove_prefix": req.rewrite.remove.hex(),
            "add_prefix": req.rewrite.add.hex(),
            "state": RestoreState.QUEUED,
            "created_at": time.time(),
        },
    )
    return uid


def job_for_tag(store: JobStore, tag: str) -> RestoreJob | None:
    uid = store.uid_for_tag(tag)
    return RestoreJob.from_fields(store.get(uid)) if uid else None


def abort(store: JobStore, driver: ClusterDriver, tag: str) -> RestoreJob:
    job = job_for_tag(store, tag)
    if job is None:
        raise errors.RestoreUnknownTag(f"No restore on tag `{printable(tag.encode())}'")
    if store.compare_and_set(job.uid, "state", list(ACTIVE_STATES), RestoreState.ABORTED):
        for r in job.dest_ranges:
            try:
                driver.unlock_range(r, job.lock_owner)
            except errors.RangeUnlockReject:
                continue
    return RestoreJob.from_fields(store.get(job.uid))
