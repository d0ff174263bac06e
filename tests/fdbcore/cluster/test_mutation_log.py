"""Mutation-log captures: content as a backup worker sees it, pop, several captures, end_version."""

from __future__ import annotations

import struct
import time

import pytest

from fdbcore import errors
from fdbcore.atomic import versionstamp
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange
from fdbcore.mutations import Mutation, MutationType, clear, clear_range, set_value
from tests.fdbcore.cluster.util import drain

T = MutationType


def test_log_content_clipping_atomics_and_versionstamps(driver: ClusterDriver) -> None:
    driver.commit([set_value(b"b/before", b"not captured")])
    v0 = driver.start_log_capture("bk", [KeyRange(b"b/", b"c/"), KeyRange(b"x/", b"y/")])
    assert driver.start_log_capture("bk", [KeyRange(b"", b"\xff")]) == v0  # idempotent

    v1 = driver.commit([set_value(b"b/1", b"one"), set_value(b"a/outside", b"no"), set_value(b"x/1", b"ex")])
    v2 = driver.commit([clear_range(b"a/", b"z/"), clear(b"b/1")])
    add = Mutation(T.ADD_VALUE, b"b/ctr", struct.pack("<q", 5))
    v3 = driver.commit(
        [
            add,
            Mutation(T.SET_VERSIONSTAMPED_KEY, b"b/vs/" + b"\x00" * 10 + struct.pack("<i", 5), b"vk"),
            Mutation(T.SET_VERSIONSTAMPED_VALUE, b"x/vsv", b"\x00" * 10 + struct.pack("<i", 0)),
        ]
    )
    driver.commit([set_value(b"q/not captured", b"")])  # touches no capture range: no entry at all

    logged, end = drain(driver, "bk", v0)
    got = [(m.version, m.subsequence, tuple(m.mutation)) for m in logged]
    assert got == [
        (v1, 0, (T.SET_VALUE, b"b/1", b"one")),
        (v1, 1, (T.SET_VALUE, b"x/1", b"ex")),
        (v2, 0, (T.CLEAR_RANGE, b"b/", b"c/")),  # one clear, clipped to both capture ranges
        (v2, 1, (T.CLEAR_RANGE, b"x/", b"y/")),
        (v2, 2, (T.CLEAR_RANGE, b"b/1", b"b/1\x00")),
        (v3, 0, tuple(add)),  # atomic ops stay atomic
        (v3, 1, (T.SET_VALUE, b"b/vs/" + versionstamp(v3), b"vk")),  # versionstamps resolved
        (v3, 2, (T.SET_VALUE, b"x/vsv", versionstamp(v3))),
    ]
    assert end > v3

    # end_version keeps advancing while nothing is written.
    time.sleep(0.3)
    idle = driver.read_log("bk", end)
    assert idle.mutations == [] and idle.end_version > end

    status = driver.status()
    assert [c["id"] for c in status.captures] == ["bk"]


def test_pop_limits_and_two_captures(driver: ClusterDriver) -> None:
    va = driver.start_log_capture("a", [KeyRange(b"", b"\xff")])
    versions = [driver.commit([set_value(b"k%02d" % i, b"v" * 1000)]) for i in range(20)]
    vb = driver.start_log_capture("b", [KeyRange(b"k10", b"k15")])
    driver.commit([clear_range(b"k", b"l")])

    all_a, _ = drain(driver, "a", va)
    assert [m.version for m in all_a] == [*versions, all_a[-1].version]
    assert all_a[-1].mutation == Mutation(T.CLEAR_RANGE, b"k", b"l")
    all_b, _ = drain(driver, "b", vb)
    assert [tuple(m.mutation) for m in all_b] == [(T.CLEAR_RANGE, b"k10", b"k15")]

    # A byte limit cuts batches at commit boundaries; end_version says where to continue.
    small = driver.read_log("a", va, limit_bytes=2500)
    assert 1 <= len(small.mutations) <= 3
    assert small.end_version == small.mutations[-1].version + 1
    assert drain(driver, "a", va, limit_bytes=2500)[0] == all_a

    driver.pop_log("a", versions[10])
    assert [m.version for m in drain(driver, "a", versions[10])[0]][:1] == [versions[10]]
    with pytest.raises(errors.TransactionTooOld):
        driver.read_log("a", versions[5])
    assert len(drain(driver, "b", vb)[0]) == 1  # popping one capture leaves the other alone

    driver.stop_log_capture("a")
    with pytest.raises(errors.KeyNotFound):
        driver.read_log("a", 0)
    assert [c["id"] for c in driver.status().captures] == ["b"]
