"""The Transaction helper (``fdbcore.cluster.transaction``) over a driver: versionstamps, restore's
exactly-once batches, conflicts and retries."""

from __future__ import annotations

import threading

import pytest

from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.cluster.transaction import Transaction, run
from fdbcore.mutations import MutationType, set_value


def test_transaction_helper(driver: ClusterDriver) -> None:
    tr = Transaction(driver)
    tr.set(b"t/a", b"1")
    tr.atomic_op(MutationType.ADD_VALUE, b"t/n", b"\x01")
    tr.atomic_op(MutationType.SET_VERSIONSTAMPED_VALUE, b"t/vs", b"\x00" * 10 + b"\x00\x00\x00\x00")
    v = tr.commit()
    assert tr.versionstamp == v.to_bytes(8, "big") + b"\x00\x00"
    assert driver.get(b"t/vs", v) == tr.versionstamp

    # Restore's pattern: a batch of decoded mutations plus its applied-through marker, exactly once.
    marker = b"\xff\x02/restore/applied"
    batch = [set_value(b"t/r/%d" % i, b"x" * 10) for i in range(5)]

    def apply_batch(t: Transaction) -> bool:
        if t.get(marker) == b"5":
            return False
        t.add_mutations(batch)
        t.set(marker, b"5")
        return True

    assert run(driver, apply_batch) is True
    assert run(driver, apply_batch) is False
    sized = Transaction(driver)
    sized.add_mutations(batch)
    assert sized.size == sum(m.byte_size() for m in batch)
    stale = Transaction(driver)
    stale.set_read_version(v)  # older than the marker's commit
    assert stale.get(marker) is None
    stale.set(marker, b"again")
    with pytest.raises(errors.NotCommitted):
        stale.commit()

    # Read-modify-write with a conflict: the loser retries on a fresh read version.
    def increment(t: Transaction) -> int:
        value = int(t.get(b"t/counter") or b"0")
        t.set(b"t/counter", b"%d" % (value + 1))
        return value

    threads = [threading.Thread(target=lambda: [run(driver, increment) for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert driver.get(b"t/counter", driver.get_read_version()) == b"40"

    # A limited range read conflicts only on what it read.
    driver.commit([])
    t1 = Transaction(driver)
    t1.set(b"t/x/0", b"")
    for i in range(1, 6):
        t1.set(b"t/x/%d" % i, b"")
    t1.commit()
    t2 = Transaction(driver)
    assert [k for k, _ in t2.get_range(b"t/x/", b"t/x0", limit=2)] == [b"t/x/0", b"t/x/1"]
    driver.commit([set_value(b"t/x/4", b"changed")])
    t2.set(b"t/out", b"")
    t2.commit()
    t3 = Transaction(driver)
    t3.get_range(b"t/x/", b"t/x0")
    driver.commit([set_value(b"t/x/4", b"again")])
    t3.set(b"t/out", b"")
    with pytest.raises(errors.NotCommitted):
        t3.commit()
