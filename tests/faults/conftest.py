"""The fault suite's options and module-wide fixtures.

``pytest tests/faults --long`` runs every seeded test with many seeds (S3 fault rates, kill timings)
and the ``long_only`` variants (every kind of kill in every phase); the default run keeps one seed
and one kill per phase, so the suite stays within a few minutes of CI time.

Module-wide fixtures (``module_cluster_factory``, ``module_fleet``, in ``tests/fixtures``) make one
backup per test module and let its tests restore it many times.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.helpers import S3Rig
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
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
