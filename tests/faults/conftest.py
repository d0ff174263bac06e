"""The fault suite's options and module-wide fixtures.

``pytest tests/faults --long`` runs every seeded test with many seeds (S3 fault rates, kill timings)
and the ``long_only`` variants (every kind of kill in every phase); the default run keeps one seed
and one kill per phase, so the suite stays within a few minutes of CI time.

Module-wide fixtures make one backup per test module and let its tests restore it many times:
``module_cluster_factory`` (embedded clusters that live for the module) and ``module_fleet``
(workers on the session Redis, stopped before the module's tests run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import S3Rig
from tests.fixtures.cluster import EmbeddedCluster, cluster_factory
from tests.fixtures.fleet import Fleet
from tests.fixtures.redis import RedisServer
from tests.fixtures.s3 import S3Endpoint, S3FaultProxy

#: Seeds of the default run.
DEFAULT_SEEDS = (1,)
#: How many seeds ``--long`` runs for a test without a ``seeds`` marker.
LONG_SEEDS = 20
LONG_ONLY = pytest.mark.long_only


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``seed`` runs once per seed (one by default; ``--long``: many)."""
    if "seed" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("seeds")
        count = int(marker.kwargs.get("long", LONG_SEEDS)) if marker else LONG_SEEDS
        seeds = tuple(range(1, count + 1)) if metafunc.config.getoption("--long") else DEFAULT_SEEDS
        metafunc.parametrize("seed", seeds, ids=[f"seed{s}" for s in seeds])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skipped = [i for i in items if i.get_closest_marker("long_only")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [i for i in items if not i.get_closest_marker("long_only")]


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def module_cluster_factory(module_dir: Path) -> Iterator[Callable[..., EmbeddedCluster]]:
    """Like ``embedded_cluster_factory``, for clusters shared by a module's tests."""
    with cluster_factory(module_dir) as make:
        yield make


@pytest.fixture(scope="module")
def module_fleet(redis_server: RedisServer, module_dir: Path) -> Iterator[Fleet]:
    """A fleet on the session Redis (flushed first) for making a module's backup; stop it when done."""
    redis_server.client().flushall()
    fleet = Fleet(redis_server.url, module_dir / "fleet")
    fleet.workdir.mkdir(parents=True)
    yield fleet
    fleet.stop()


@pytest.fixture
def s3_rig(
    s3_fault_proxy: S3FaultProxy,
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
    embedded_cluster_factory: Callable[..., EmbeddedCluster],
    fleet: Fleet,
    tmp_path: Path,
) -> S3Rig:
    """S3 through the fault proxy for this test's fleet and clusters (see :class:`S3Rig`)."""
    creds = s3_endpoint.write_credentials_file(tmp_path / "creds.json")
    fleet.extra_env.update(s3_endpoint.env(creds))
    return S3Rig(s3_fault_proxy, s3_endpoint, s3_bucket, creds, embedded_cluster_factory, fleet)
