"""Snapshot reads at older versions, the MVCC window, and optimistic conflicts."""

from __future__ import annotations

import random
import threading
import time

import pytest

from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange
from fdbcore.mutations import Mutation, MutationType, clear, clear_range, set_value
from tests.fdbcore.cluster.conftest import ClusterFactory
from tests.fdbcore.cluster.util import read_all


def test_reads_at_older_versions_while_writes_continue(driver: ClusterDriver) -> None:
    rng = random.Random(7)
    model: dict[bytes, bytes] = {}
    snapshots: list[tuple[int, dict[bytes, bytes]]] = []
    for round_ in range(40):
        muts = []
        for _ in range(30):
            k = b"m/%03d" % rng.randrange(200)
            roll = rng.random()
            if roll < 0.6:
                v = b"%d:%d" % (round_, rng.randrange(10**6))
                muts.append(set_value(k, v))
                model[k] = v
            elif roll < 0.8:
                muts.append(clear(k))
                model.pop(k, None)
            else:
                end = b"m/%03d" % (int(k[2:]) + rng.randrange(1, 6))
                muts.append(clear_range(k, end))
                for key in [key for key in model if k <= key < end]:
                    del model[key]
        v = driver.commit(muts)
        snapshots.append((v, dict(model)))

    # Every earlier version reads back exactly as it was, forward, reverse, point reads and in chunks.
    for v, state in snapshots[::3]:
        expected = sorted(state.items())
        assert read_all(driver, b"m/", b"m0", v) == expected
        assert read_all(driver, b"m/", b"m0", v, chunk=7) == expected
        rev = driver.get_range(b"m/", b"m0", v, reverse=True)
        assert rev.kvs == expected[::-1] and not rev.more
        for k in (b"m/000", b"m/050", b"m/199"):
            assert driver.get(k, v) == state.get(k)
        sub = driver.get_range(b"m/050", b"m/100", v, limit=5)
        inside = [kv for kv in expected if b"m/050" <= kv[0] < b"m/100"]
        assert sub.kvs == inside[:5] and sub.more == (len(inside) > 5)


def test_a_reader_keeps_its_version_under_concurrent_writes(driver: ClusterDriver) -> None:
    driver.commit([set_value(b"c/%04d" % i, b"base") for i in range(2000)])
    v = driver.get_read_version()
    expected = read_all(driver, b"c/", b"c0", v)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            driver.commit([set_value(b"c/%04d" % ((i * 37 + j) % 2500), b"new%d" % i) for j in range(50)])
            driver.commit([clear_range(b"c/%04d" % (i % 2000), b"c/%04d" % (i % 2000 + 20))])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(5):
            assert read_all(driver, b"c/", b"c0", v, chunk=300) == expected
    finally:
        stop.set()
        t.join()
    assert read_all(driver, b"c/", b"c0", driver.get_read_version()) != expected


def test_transaction_too_old_and_future_version(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(max_read_transaction_life_versions=500_000)
    driver = cluster.driver
    v = driver.commit([set_value(b"k", b"1")])
    driver.commit([set_value(b"k", b"2")])
    assert driver.get(b"k", v) == b"1"
    latest = driver.get_read_version()
    with pytest.raises(errors.FutureVersion):
        driver.get_range(b"", b"\xff", latest + 10_000_000)
    with pytest.raises(errors.FutureVersion):
        driver.get(b"k", latest + 10_000_000)
    time.sleep(0.8)
    with pytest.raises(errors.TransactionTooOld) as info:
        driver.get_range(b"", b"\xff", v)
    assert info.value.code == 1007
    with pytest.raises(errors.TransactionTooOld):
        driver.get(b"k", v)
    with pytest.raises(errors.TransactionTooOld):
        driver.commit([set_value(b"x", b"1")], read_version=v, read_conflict_ranges=[KeyRange(b"a", b"b")])

    # A restart keeps no history: versions before the recovery are too old, whatever the window.
    v2 = driver.get_read_version()
    cluster.restart()
    with pytest.raises(errors.TransactionTooOld):
        driver.get(b"k", v2)
    assert driver.get(b"k", driver.get_read_version()) == b"2"


def test_conflicts(driver: ClusterDriver) -> None:
    v0 = driver.commit([set_value(b"acct/a", b"1"), set_value(b"acct/b", b"1")])
    # Someone writes acct/a after v0.
    driver.commit([set_value(b"acct/a", b"2")])
    with pytest.raises(errors.NotCommitted) as info:
        driver.commit(
            [set_value(b"out", b"x")],
            read_version=v0,
            read_conflict_ranges=[KeyRange(b"acct/a", b"acct/a\x00")],
        )
    assert info.value.code == 1020
    with pytest.raises(errors.NotCommitted):
        driver.commit([set_value(b"out", b"x")], read_version=v0, read_conflict_ranges=[KeyRange(b"acct/", b"acct0")])
    # A read range nobody wrote into commits.
    v1 = driver.commit(
        [set_value(b"out", b"y")], read_version=v0, read_conflict_ranges=[KeyRange(b"acct/b", b"acct/c")]
    )
    assert driver.get(b"out", v1) == b"y"
    # Clears and atomic ops are writes too.
    v2 = driver.get_read_version()
    driver.commit([clear_range(b"z/1", b"z/5")])
    with pytest.raises(errors.NotCommitted):
        driver.commit([], read_version=v2, read_conflict_ranges=[KeyRange(b"z/3", b"z/4")])
    v3 = driver.get_read_version()
    driver.commit([Mutation(MutationType.ADD_VALUE, b"ctr", b"\x01")])
    with pytest.raises(errors.NotCommitted):
        driver.commit([], read_version=v3, read_conflict_ranges=[KeyRange(b"ctr", b"ctr\x00")])
