"""The embedded cluster: a FoundationDB stand-in on RocksDB, served over gRPC (see ``storage`` and ``server``).

Importing this package turns on gRPC's fork support (``GRPC_ENABLE_FORK_SUPPORT``, unless the
environment already says otherwise) before gRPC is loaded: Celery's prefork pool forks worker
processes from a parent that may already have talked to a cluster, and without fork support a child's
first calls can fail with "Wrong file descriptor generation". The client also opens a fresh channel in
every process (see ``client``).
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "true")
