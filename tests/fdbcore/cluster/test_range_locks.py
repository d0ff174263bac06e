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
