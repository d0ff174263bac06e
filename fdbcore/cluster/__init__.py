"""Cluster access for backup and restore: :func:`connect` a cluster file, get a :class:`ClusterDriver`.

The core names no driver. Drivers are packages beside it that register an entry point in the group
:data:`DRIVER_GROUP`, named by the cluster-file description they serve and pointing at a class taking
the cluster file: ``embedded_cluster`` registers ``embedded`` (what ``embedded-cluster serve``
writes); a driver for real FoundationDB, on the ``foundationdb`` bindings, only adds its own.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from fdbcore import errors
from fdbcore.cluster import clusterfile
from fdbcore.cluster.interface import ClusterDriver

#: The entry-point group drivers register in (``[project.entry-points."fdbbr.cluster_drivers"]``).
DRIVER_GROUP = "fdbbr.cluster_drivers"


def connect(cluster_file: str | os.PathLike[str]) -> ClusterDriver:
    """A driver for the cluster named by ``cluster_file``. Connects lazily, on first use."""
    description = clusterfile.read(cluster_file).description
    for entry in entry_points(group=DRIVER_GROUP, name=description):
        driver: ClusterDriver = entry.load()(cluster_file)
        return driver
    known = sorted({entry.name for entry in entry_points(group=DRIVER_GROUP)})
    if not known:  # entry points come from the installed metadata: an old install has none
        raise errors.ClientInvalidOperation(
            f"no cluster driver is installed (entry-point group {DRIVER_GROUP!r}); reinstall the project"
        )
    raise errors.ClientInvalidOperation(
        f"cluster file {os.fspath(cluster_file)} names cluster {description!r}; only {' or '.join(known)} clusters "
        f"(description {' or '.join(map(repr, known))}) are supported in this build"
    )


__all__ = ["DRIVER_GROUP", "ClusterDriver", "connect"]
