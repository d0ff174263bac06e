"""The cluster driver: the one interface through which backup and restore touch a database.

Backup and restore never import a concrete driver; they get a :class:`ClusterDriver` from
:func:`fdbcore.cluster.connect` with a cluster file. Two drivers are meant to sit behind it: the
embedded RocksDB stand-in (``embedded_cluster``) and, later, real FoundationDB through the
``foundationdb`` bindings. The contract test suite in ``tests/fdbcore/cluster`` runs against every driver.

Semantics follow FoundationDB:

- Versions are int64 commit versions advancing about 1,000,000 per second.
- Reads are consistent snapshots at a read version within the MVCC window; older versions raise
  ``transaction_too_old`` (1007).
- ``commit`` is optimistic: with a ``read_version`` and read-conflict ranges it fails with
  ``not_committed`` (1020) if any commit after ``read_version`` wrote into those ranges.
- Commits touching a range locked by another owner fail with
  ``transaction_rejected_range_locked`` (1242); so do reads of a range locked with ``block_reads``
  (FDB's write lock: a restore's ranges are unreadable until its data is whole).
- BulkDump and BulkLoad are black boxes that move SST files between the cluster and a backup
  container in FDB's BulkDump layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fdbcore.encoded_mutations import EncodedMutations
from fdbcore.encryption import EncryptionSettings
from fdbcore.keys import KeyRange
from fdbcore.mutations import Mutation


@dataclass(frozen=True, slots=True)
class Shard:
    """One shard of the key space, as the data distributor knows it."""

    id: str  # 32 lowercase hex characters
    range: KeyRange
    #: Keys and values the data distributor counts in it (an estimate; 0 where the cluster has none).
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[tuple[bytes, bytes]]
    #: More keys exist in the requested range after the last one returned.
    more: bool
    #: The version the read was served at.
    version: int


@dataclass(frozen=True, slots=True)
class LoggedMutation:
    version: int
    subsequence: int
    mutation: Mutation


@dataclass(frozen=True, slots=True)
class LogBatch:
    """Mutations retained for a capture, in ``(version, subsequence)`` order."""

    mutations: list[LoggedMutation]
    #: Exclusive bound: every captured mutation with version < ``end_version`` that follows the
    #: requested begin version is in this batch or an earlier one. Advances even when idle.
    end_version: int


@dataclass(frozen=True, slots=True)
class RangeLock:
    range: KeyRange
    owner: str
    #: Reads by anyone are refused too, not only other owners' writes (FDB's "write lock").
    block_reads: bool = False


@dataclass(frozen=True, slots=True)
class BulkDumpBatch:
    """One batch written by BulkDump, mirroring one ``<version>-manifest.txt``."""

    range: KeyRange
    version: int
    #: Path of the batch manifest relative to the job root (``<jobId>/<taskId>/<batch>/<v>-manifest.txt``).
    manifest_path: str
    #: Path of the data SST relative to the job root, or ``""`` for a batch without keys.
    data_path: str
    bytes: int
    key_count: int
    data_file_size: int
    checksum: str  # "" when the dataset came without one


@dataclass(frozen=True, slots=True)
class BulkLoadResult:
    #: The destination range that was replaced (the requested range after ``remove_prefix``/``add_prefix``).
    range: KeyRange
    keys_loaded: int
    bytes_loaded: int
    files_ingested: int


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    version: int
    shards: list[Shard]
    knobs: dict[str, str]
    captures: list[dict[str, object]] = field(default_factory=list)
    locks: list[RangeLock] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class ClusterDriver(Protocol):
    """What backup and restore may ask of a cluster."""

    # --- versions, reads, commits --------------------------------------------------------------
    def get_read_version(self) -> int: ...

    def get(self, key: bytes, version: int) -> bytes | None: ...

    def get_range(
        self,
        begin: bytes,
        end: bytes,
        version: int,
        *,
        limit: int = 0,
        limit_bytes: int = 0,
        reverse: bool = False,
    ) -> RangeResult:
        """Keys in ``[begin, end)`` at ``version``; ``limit``/``limit_bytes`` of 0 mean the default cap."""
        ...

    def commit(
        self,
        mutations: Sequence[Mutation],
        *,
        read_version: int | None = None,
        read_conflict_ranges: Sequence[KeyRange] = (),
        lock_owner: str | None = None,
    ) -> int:
        """Apply mutations atomically and return the commit version."""
        ...

    def commit_encoded(
        self,
        mutations: EncodedMutations,
        *,
        read_version: int | None = None,
        read_conflict_ranges: Sequence[KeyRange] = (),
        lock_owner: str | None = None,
    ) -> int:
        """:meth:`commit` for mutations encoded in bulk: the same checks and semantics, for writers
        that apply millions of mutations (log replay) without a Python object per mutation."""
        ...

    # --- topology and configuration ------------------------------------------------------------
    def shard_map(self) -> list[Shard]: ...

    def knobs(self) -> dict[str, str]: ...

    def status(self) -> ClusterStatus: ...

    # --- timekeeper (FDB's ``\xff\x02/timeKeeper/map/``) -----------------------------------------
    def version_at_time(self, unix_time: float) -> int:
        """FDB's ``timeKeeperVersionFromDatetime``: the version the cluster had at ``unix_time``."""
        ...

    def time_at_version(self, version: int) -> int | None:
        """FDB's ``timeKeeperEpochsFromVersion``: unix seconds at ``version``; ``None`` if unknown."""
        ...

    # --- mutation log (what TLogs / backup workers provide) ------------------------------------
    def start_log_capture(self, capture_id: str, ranges: Sequence[KeyRange]) -> int:
        """Retain every mutation committed in ``ranges`` after the returned version, until popped.

        Idempotent per ``capture_id``: calling again returns the original begin version.
        """
        ...

    def read_log(self, capture_id: str, begin_version: int, *, limit_bytes: int = 0) -> LogBatch: ...

    def pop_log(self, capture_id: str, version: int) -> None:
        """Discard retained mutations with version < ``version``."""
        ...

    def stop_log_capture(self, capture_id: str) -> None: ...

    # --- range locks ---------------------------------------------------------------------------
    def lock_range(self, range: KeyRange, owner: str, *, block_reads: bool = False) -> None:
        """Lock ``range`` for ``owner``: other owners' commits into it fail (1242), and with
        ``block_reads`` every read of it too, until the owner unlocks it. Locking again with
        ``block_reads`` turns the owner's lock into one that blocks reads. A commit with ``lock_owner``
        fails with ``range_lock_failed`` (1241) once that owner holds no lock at all, so a writer left
        over from a finished or aborted job cannot land.

        Unlocking a lock that blocked reads makes reads of its range at older versions fail with
        ``transaction_too_old``: they would see the range as its owner left it half-way.
        """
        ...

    def unlock_range(self, range: KeyRange, owner: str) -> None: ...

    def transfer_range_lock(self, range: KeyRange, owner: str, new_owner: str) -> None:
        """Hand ``owner``'s lock on all of ``range`` to ``new_owner`` in one step: the range is never
        unlocked, and ``owner``'s writers are shut out from then on (``range_lock_failed`` when
        ``owner`` does not hold all of ``range``)."""
        ...

    # --- BulkDump / BulkLoad (black boxes) -----------------------------------------------------
    def bulk_dump(
        self,
        job_id: str,
        task_id: str,
        range: KeyRange,
        container_url: str,
        *,
        root: str = "bulkdump_data",
        batch_bytes: int = 0,
        timeout: float | None = None,
        encryption: EncryptionSettings | None = None,
    ) -> list[BulkDumpBatch]:
        """Dump ``range`` as one task into ``<root>/<job_id>/<task_id>/`` of the container.

        Batches are cut by size (``batch_bytes``, 0 = the cluster's knob) and each is read at one
        version recorded in its manifest. Running it again for the same task replaces that task's
        folder. Does not write ``job-manifest.txt``: whoever assembles the job does, after checking.
        The cluster reaches the container with its own credentials, like FDB's storage servers.
        ``timeout`` bounds the call (``timed_out`` when it passes); the dump is then abandoned.
        With ``encryption`` every file is written with file-level encryption, the key read by the
        cluster from its own copy of ``encryption.key_file`` (``invalid_encryption_key_file`` if that
        holds another key); no plaintext leaves the cluster's local scratch space.
        """
        ...

    def bulk_load(
        self,
        job_id: str,
        range: KeyRange,
        container_url: str,
        manifest_paths: Sequence[str],
        *,
        root: str = "bulkdump_data",
        add_prefix: bytes = b"",
        remove_prefix: bytes = b"",
        lock_owner: str | None = None,
        timeout: float | None = None,
        encryption: EncryptionSettings | None = None,
    ) -> BulkLoadResult:
        """Replace ``range`` with the data of the given batch manifests, bypassing the commit path.

        ``manifest_paths`` are relative to ``<root>`` (``<jobId>/<taskId>/<batch>/<v>-manifest.txt``)
        and must together cover ``range``. ``range`` is in the dataset's key space; keys are rewritten
        with ``remove_prefix``/``add_prefix`` on the way in. Requires the BulkLoad knobs
        (``bulkload_invalid_configuration`` otherwise). Takes an exclusive range lock for the duration
        (owner ``BulkLoad``; or runs under ``lock_owner``'s existing lock of the destination range),
        verifies every file before anything becomes visible, and ingests SST files directly. With
        ``encryption`` the dataset is decrypted with the cluster's copy of the key file, every block
        authenticated before anything is ingested.
        """
        ...

    def close(self) -> None: ...
