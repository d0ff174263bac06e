"""Cluster access for backup and restore: :func:`connect` a cluster file, get a :class:`ClusterDriver`.

The driver is chosen from the cluster file's description: ``embedded`` (what ``embedded-cluster
serve`` writes) selects the embedded RocksDB cluster. A driver for real FoundationDB, through the
``foundationdb`` bindings, will be chosen here for every other description.
"""

from __future__ import annotations

import os

from fdbcore import errors
from fdbcore.cluster import clusterfile
from fdbcore.cluster.interface import ClusterDriver

EMBEDDED_DESCRIPTION = "embedded"


def connect(cluster_file: str | os.PathLike[str]) -> ClusterDriver:
    """A driver for the cluster named by ``cluster_file``. Connects lazily, on first use."""
    description = clusterfile.read(cluster_file).description
    if description == EMBEDDED_DESCRIPTION:
        from embedded_cluster.client import EmbeddedClusterDriver

        return EmbeddedClusterDriver(cluster_file)
    raise errors.ClientInvalidOperation(
        f"cluster file {os.fspath(cluster_file)} names cluster {description!r}; only embedded clusters "
        f"(description {EMBEDDED_DESCRIPTION!r}) are supported in this build"
    )


__all__ = ["ClusterDriver", "connect"]
