"""The driver contract suite: every test here that asks for a driver runs once per cluster driver.

A test asks for ``driver`` (a connected :class:`~fdbcore.cluster.interface.ClusterDriver` of a fresh
cluster) or, when it needs knobs, a second cluster or a restart, for ``cluster_factory``:
``make(name="cluster", **knobs)`` starting a :class:`ClusterUnderTest`. Knobs carry FDB's names where
FDB has the knob (the stand-in's own, such as ``shard_count``, are for a harness to map or ignore).

:data:`HARNESSES` names, per driver, how its clusters are started: only the embedded stand-in exists
today (the fixtures of ``tests/fixtures/cluster.py``); a driver for real FoundationDB adds its entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pytest

from fdbcore.cluster.interface import ClusterDriver
from tests.fixtures.cluster import cluster_factory as embedded_clusters


class ClusterUnderTest(Protocol):
    """What the contract suite needs of a started cluster, whatever its driver."""

    @property
    def driver(self) -> ClusterDriver: ...

    def restart(self) -> None:
        """Stop the cluster and start it again on the same data; the driver follows."""

    def scratch_files(self) -> list[str]:
        """Files the cluster keeps for BulkDump/BulkLoad calls in progress (none once they ended)."""


ClusterFactory = Callable[..., ClusterUnderTest]

#: Per driver: ``harness(root)`` is a context manager yielding a :data:`ClusterFactory` that starts
#: clusters under ``root`` and stops every one of them when it exits.
HARNESSES: dict[str, Callable[[Path], AbstractContextManager[ClusterFactory]]] = {
    "embedded": embedded_clusters,
}


@pytest.fixture(scope="module", params=sorted(HARNESSES))
def driver_kind(request: pytest.FixtureRequest) -> str:
    """The driver under test (module-scoped, so that a module's shared fixtures can be of its kind)."""
    kind: str = request.param
    return kind


@pytest.fixture
def cluster_factory(driver_kind: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    """A :data:`ClusterFactory` whose clusters are stopped when the test ends."""
    with HARNESSES[driver_kind](tmp_path) as make:
        yield make


@pytest.fixture
def driver(cluster_factory: ClusterFactory) -> ClusterDriver:
    """A connected driver of a fresh cluster with default knobs."""
    return cluster_factory().driver
