"""The destination ranges' old contents set aside, cleared, put back and dropped, chunk by chunk, on a
real cluster: every call that runs out of time resumes from its cursor, and the data ends exact."""

from __future__ import annotations

import time

import pytest

from fdbcore import errors
from fdbcore.keys import KeyRange
from fdbcore.modes import RestoreMode
from fdbcore.mutations import set_value
from tests.fixtures.cluster import EmbeddedCluster
from tests.support.live import read_range
from workers.restore import replacement, replay
from workers.restore.job import RestoreJob, RestoreState

UID = "ef" * 16
RANGES = [KeyRange(b"a/", b"a0"), KeyRange(b"c/", b"c0")]


def _job() -> RestoreJob:
    return RestoreJob(
        uid=UID,
        tag="t",
        url="file:///x",
        url_display="file:///x",
        cluster_file="unused",
        mode=RestoreMode.RANGEFILE,
        target_version=1,
        ranges=RANGES,
        state=RestoreState.ABORTED,
    )


def _until_done(call: object) -> int:
    """Call with a deadline already past until it reports done; return how many calls it took."""
    assert callable(call)
    calls = 1
    while call(time.monotonic() - 1) in (None, False):
        calls += 1
    return calls


def test_set_aside_clear_put_back_and_release_in_chunks(
    embedded_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replacement, "CHUNK_BYTES", 200)  # a few keys per commit
    db = embedded_cluster.driver
    old = [set_value(r.begin + b"%03d" % i, b"v%d" % i) for r in RANGES for i in range(40)]
    db.commit([*old, set_value(b"b/keep", b"x")])
    before = [read_range(db, r) for r in RANGES]
    job = _job()
    for r in RANGES:
        db.lock_range(r, job.lock_owner)

    assert _until_done(lambda d: replacement.set_aside(db, UID, RANGES, job.lock_owner, d)) > 2
    assert replacement.set_aside(db, UID, RANGES, job.lock_owner, 0) == (
        80,
        sum(len(m.param1) + len(m.param2) for m in old),
    )
    assert read_range(db, RANGES[0]) == before[0]  # readers still see the old data while it is copied
    assert not replacement.touched(db, UID)
    assert _until_done(lambda d: replacement.clear(db, UID, RANGES, job.lock_owner, d)) > 2
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        read_range(db, RANGES[1])
    db.commit([set_value(b"a/new", b"restored"), set_value(b"c/005", b"restored")], lock_owner=job.lock_owner)

    replacement.take_over(db, job, block_reads=True)
    with pytest.raises(errors.TransactionRejectedRangeLocked):  # the restore's writers are shut out
        db.commit([set_value(b"a/late", b"x")], lock_owner=job.lock_owner)
    assert _until_done(lambda d: replacement.put_back(db, UID, RANGES, job.abort_owner, d)) > 2
    assert _until_done(lambda d: replacement.release(db, job, d)) > 2  # the copy dropped a chunk per call
    assert [read_range(db, r) for r in RANGES] == before
    assert db.get(b"b/keep", db.get_read_version()) == b"x"
    assert db.status().locks == []
    marks = replay.markers_range(UID)
    assert read_range(db, marks) == [], "the copy and the cursors must be dropped"


def test_put_back_before_any_clearing_changes_nothing(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    db.commit([set_value(b"a/1", b"old")])
    job = _job()
    db.lock_range(RANGES[0], job.lock_owner)  # the restore got the first range only
    assert replacement.set_aside(db, UID, RANGES[:1], job.lock_owner, time.monotonic() + 60) == (1, 6)
    replacement.take_over(db, job, block_reads=False)
    assert [(lk.range, lk.owner, lk.block_reads) for lk in db.status().locks] == [
        (r, job.abort_owner, False) for r in RANGES
    ]
    assert replacement.put_back(db, UID, RANGES, job.abort_owner, time.monotonic() + 60)
    assert replacement.release(db, job, time.monotonic() + 60)
    assert read_range(db, KeyRange(b"", b"\xff")) == [(b"a/1", b"old")]
    assert db.status().locks == []


def test_a_finished_restore_unlocks_first_and_drops_the_copy_after_in_chunks(
    embedded_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``finish`` does: the ranges are readable as soon as the restore is done, while the copy of
    their old contents stays whole until then (an abort before completion puts it back); the copy then
    goes a chunk per call, each call going on from where the copy still starts."""
    monkeypatch.setattr(replacement, "CHUNK_BYTES", 200)
    db = embedded_cluster.driver
    db.commit([set_value(RANGES[0].begin + b"%03d" % i, b"v%d" % i) for i in range(100)])
    job = _job()
    for r in RANGES:
        db.lock_range(r, job.lock_owner)
    assert _until_done(lambda d: replacement.set_aside(db, UID, RANGES, job.lock_owner, d)) > 2
    assert _until_done(lambda d: replacement.clear(db, UID, RANGES, job.lock_owner, d)) > 2
    db.commit([set_value(b"a/new", b"restored")], lock_owner=job.lock_owner)

    replacement.unlock(db, job)
    assert read_range(db, RANGES[0]) == [(b"a/new", b"restored")]
    assert db.status().locks == []
    assert len(read_range(db, replacement.aside_range(UID))) == 100
    assert _until_done(lambda d: replacement.drop_aside(db, UID, d)) > 2
    assert read_range(db, replay.markers_range(UID)) == []
