"""The embedded cluster: a FoundationDB stand-in on RocksDB, served over gRPC (see ``storage`` and ``server``).

A driver beside ``fdbcore.cluster``'s interface: :func:`fdbcore.cluster.connect` finds
:class:`~embedded_cluster.client.EmbeddedClusterDriver` through the ``embedded`` entry point that
pyproject.toml declares in the group ``fdbbr.cluster_drivers``; the core never imports this package.

Importing this package turns on gRPC's fork support (``GRPC_ENABLE_FORK_SUPPORT``, unless the
environment already says otherwise) before gRPC is loaded: Celery's prefork pool forks worker
processes from a parent that may already have talked to a cluster, and without fork support a child's
first calls can fail with "Wrong file descriptor generation". The client also opens a fresh channel in
every process (see ``client``).
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "true")

#: The cluster-file description ``serve`` writes; the entry point's name in pyproject.toml must match.
DESCRIPTION = "embedded"
