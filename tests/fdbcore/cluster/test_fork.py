"""A driver used before a fork keeps working in the children (Celery's prefork pool forks workers)."""

from __future__ import annotations

import multiprocessing
import os

from fdbcore.cluster.interface import ClusterDriver
from fdbcore.mutations import set_value


def _commit_in_child(driver: ClusterDriver, results) -> None:
    try:
        results.put([driver.commit([set_value(b"fork/%d/%d" % (os.getpid(), i), b"")]) for i in range(3)])
    except Exception as exc:
        results.put(repr(exc))


def test_driver_survives_fork(driver: ClusterDriver) -> None:
    """Celery prefork: children forked after the parent used the driver commit through it."""
    assert driver.get_read_version() > 0
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    children = [ctx.Process(target=_commit_in_child, args=(driver, results)) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join()
    assert all(isinstance(o, list) and len(o) == 3 for o in outcomes), outcomes
    assert len(driver.get_range(b"fork/", b"fork0", driver.get_read_version()).kvs) == 12
