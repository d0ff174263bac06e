"""The embedded cluster's storage engine: one RocksDB and one commit lock, shared by a part per concern.

:class:`Storage` opens the data directory (:mod:`.store`: the database, the commit lock, one write
batch per commit, versions), builds the parts on it, and runs the recovery commit:

- :attr:`~Storage.reads` (:mod:`.reads`): point and range reads at a version;
- :attr:`~Storage.commits` (:mod:`.commits`): the commit path;
- :attr:`~Storage.ingest` (:mod:`.ingest`): replacing a range with SST files;
- :attr:`~Storage.distributor` (:mod:`.distribution`): shard byte counts and splits;
- :attr:`~Storage.captures` (:mod:`.captures`): mutation-log captures;
- :attr:`~Storage.locks` (:mod:`.locks`): range locks.

Each part loads its own state from ``meta`` when built. The parts meet only on the commit path, where
commits and ingests move shard counts, feed captures and respect locks inside the one batch.
"""

from __future__ import annotations

from pathlib import Path

from embedded_cluster.captures import LogCaptures
from embedded_cluster.commits import Commits
from embedded_cluster.distribution import DataDistributor
from embedded_cluster.ingest import Ingest
from embedded_cluster.knobs import Knobs
from embedded_cluster.locks import RangeLockTable
from embedded_cluster.reads import Reads
from embedded_cluster.store import Store


class Storage:
    """The data directory of one embedded cluster, opened by exactly one server process."""

    def __init__(self, data_dir: Path, knobs: Knobs) -> None:
        self.data_dir = data_dir
        self.knobs = knobs
        self.store = store = Store(data_dir, knobs)
        self.cluster_id = store.cluster_id
        self.locks = RangeLockTable(store)
        self.reads = Reads(store, self.locks)
        self.distributor = DataDistributor(store)
        self.captures = LogCaptures(store)
        self.commits = Commits(store, self.distributor, self.captures, self.locks)
        self.ingest = Ingest(store, self.distributor, self.locks)
        recovery = store.batch()
        self.ingest.recover(recovery)
        self.distributor.recover(recovery)
        store.recover(recovery)

    def close(self) -> None:
        self.store.close()
