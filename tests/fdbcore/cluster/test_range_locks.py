"""Range locks through the driver: commits into another owner's lock (1242), overlapping locks (1247),
unlocking what another owner holds (1248), merging and partial unlocks."""

from __future__ import annotations

import pytest

from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange
from fdbcore.mutations import clear_range, set_value


def test_range_locks(driver: ClusterDriver) -> None:
    driver.lock_range(KeyRange(b"r/b", b"r/d"), "BulkLoad")
    with pytest.raises(errors.TransactionRejectedRangeLocked) as rejected:
        driver.commit([set_value(b"r/c", b"x")])
    assert rejected.value.code == 1242
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        driver.commit([clear_range(b"r/a", b"r/z")])
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        driver.commit([set_value(b"r/c", b"x")], lock_owner="someone-else")
    v = driver.commit([set_value(b"r/c", b"owner")], lock_owner="BulkLoad")
    assert driver.get(b"r/c", v) == b"owner"
    driver.commit([set_value(b"r/a", b"free"), set_value(b"r/d", b"free")])  # outside the lock

    with pytest.raises(errors.RangeLockReject) as overlap:
        driver.lock_range(KeyRange(b"r/c", b"r/e"), "other")
    assert overlap.value.code == 1247
    driver.lock_range(KeyRange(b"r/c", b"r/e"), "BulkLoad")  # the same owner extends its lock
    assert [(lk.range, lk.owner) for lk in driver.status().locks] == [(KeyRange(b"r/b", b"r/e"), "BulkLoad")]

    with pytest.raises(errors.RangeUnlockReject) as unlock:
        driver.unlock_range(KeyRange(b"r/b", b"r/e"), "other")
    assert unlock.value.code == 1248
    driver.unlock_range(KeyRange(b"r/c", b"r/d"), "BulkLoad")  # a partial unlock keeps the rest
    assert [lk.range for lk in driver.status().locks] == [KeyRange(b"r/b", b"r/c"), KeyRange(b"r/d", b"r/e")]
    driver.commit([set_value(b"r/c", b"unlocked")])
    driver.unlock_range(KeyRange(b"", b"\xff"), "BulkLoad")
    assert driver.status().locks == []
    driver.commit([clear_range(b"r/", b"r0")])


def test_locks_that_block_reads(driver: ClusterDriver) -> None:
    """A lock with ``block_reads`` refuses every reader (1242) until its owner unlocks; reads older than
    the unlock fail then, a handed-over lock shuts the old owner's writers out, and an owner without
    any lock cannot write as one (1241)."""
    before = driver.commit([set_value(b"w/a", b"old"), set_value(b"x/a", b"free")])
    w = KeyRange(b"w/", b"w0")
    driver.lock_range(w, "restore:1")
    assert driver.get(b"w/a", driver.get_read_version()) == b"old"  # a plain lock lets readers in
    driver.lock_range(w, "restore:1", block_reads=True)
    assert [(lk.range, lk.block_reads) for lk in driver.status().locks] == [(w, True)]
    now = driver.get_read_version()
    for read in (lambda: driver.get(b"w/a", now), lambda: driver.get_range(b"a", b"z", now)):
        with pytest.raises(errors.TransactionRejectedRangeLocked) as refused:
            read()
        assert refused.value.code == 1242 and refused.value.retryable
    assert driver.get_range(b"x/", b"x0", now).kvs == [(b"x/a", b"free")]  # outside: untouched
    half = driver.commit([clear_range(b"w/", b"w0"), set_value(b"w/b", b"new")], lock_owner="restore:1")

    driver.transfer_range_lock(w, "restore:1", "restore:1:abort")
    assert [(lk.owner, lk.block_reads) for lk in driver.status().locks] == [("restore:1:abort", True)]
    with pytest.raises(errors.TransactionRejectedRangeLocked):
        driver.commit([set_value(b"w/c", b"late")], lock_owner="restore:1")
    with pytest.raises(errors.RangeLockFailed) as stale:  # nor anywhere else, as an owner without a lock
        driver.commit([set_value(b"x/c", b"late")], lock_owner="restore:1")
    assert stale.value.code == 1241
    with pytest.raises(errors.RangeLockFailed):
        driver.transfer_range_lock(w, "restore:1", "someone")  # it holds nothing any more
    driver.commit([clear_range(b"w/", b"w0"), set_value(b"w/a", b"old")], lock_owner="restore:1:abort")
    driver.unlock_range(w, "restore:1:abort")
    latest = driver.get_read_version()
    assert driver.get_range(b"w/", b"w0", latest).kvs == [(b"w/a", b"old")]
    for older in (before, half):  # what was there while the lock blocked reads stays unreadable
        with pytest.raises(errors.TransactionTooOld):
            driver.get_range(b"w/", b"w0", older)
    assert driver.get(b"x/a", half) == b"free"
