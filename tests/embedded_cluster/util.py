"""Helpers of the embedded cluster's own tests (the driver-generic ones are in tests/fdbcore/cluster/util.py)."""

from __future__ import annotations

import time

from fdbcore.cluster.interface import ClusterDriver, Shard


def wait_for_splits(db: ClusterDriver, target: int, timeout: float = 20.0) -> list[Shard]:
    """The shard map once the background splitter has no shard above ``target`` bytes left."""
    deadline = time.monotonic() + timeout
    while True:
        sizes = db.status().extra["shard_bytes"]
        assert isinstance(sizes, dict)
        if max(sizes.values()) <= target:
            return db.shard_map()
        if time.monotonic() > deadline:
            raise AssertionError(f"shards still above {target} bytes: {sizes}")
        time.sleep(0.2)
