"""The embedded cluster's :class:`~fdbcore.cluster.interface.ClusterDriver`, over gRPC.

Safe to create per process and to use from several threads. The gRPC channel is opened on first use
and re-opened in a child process after ``fork`` (Celery's prefork pool), since gRPC channels must not
cross a fork; create drivers lazily in workers rather than in the parent.

Connection handling follows FDB's client: when the server cannot be reached the driver re-reads the
cluster file (a restarted server may listen elsewhere) and retries for ``connect_timeout`` seconds,
then raises ``connection_failed`` (1026) naming the file and address. A commit whose connection breaks
after it was sent raises ``commit_unknown_result`` (1021), as it may or may not have been applied.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from embedded_cluster import wire
from embedded_cluster.mutation_log import decode_entry
from fdbcore import errors
from fdbcore.cluster import clusterfile
from fdbcore.cluster.interface import (
    BulkDumpBatch,
    BulkLoadResult,
    ClusterStatus,
    LogBatch,
    LoggedMutation,
    RangeResult,
    Shard,
)
from fdbcore.encoded_mutations import EncodedMutations
from fdbcore.encryption import EncryptionSettings
from fdbcore.keys import KeyRange
from fdbcore.mutations import Mutation

_CLIENT_OPTIONS = [
    *wire.CHANNEL_OPTIONS,
    # Reconnect quickly after a server restart instead of gRPC's default backoff of up to 2 minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class EmbeddedClusterDriver:
    """A client of one embedded cluster, named by its cluster file."""

    def __init__(self, cluster_file: str | os.PathLike[str], *, connect_timeout: float = 5.0) -> None:
        self.cluster_file = Path(cluster_file)
        self.connect_timeout = connect_timeout
        self._address = clusterfile.read(self.cluster_file).first_address
        self._lock = threading.Lock()
        self._pid = -1
        self._channel: grpc.Channel | None = None
        self._stubs: dict[str, grpc.UnaryUnaryMultiCallable] = {}

    @property
    def address(self) -> str:
        return self._address

    # --- transport --------------------------------------------------------------------------------

    def _stub(self, method: str) -> grpc.UnaryUnaryMultiCallable:
        if self._pid != os.getpid() or self._channel is None:
            with self._lock:
                if self._pid != os.getpid() or self._channel is None:
                    # After a fork the parent's channel is unusable here; leave it alone and start afresh.
                    self._channel = grpc.insecure_channel(self._address, options=_CLIENT_OPTIONS)
                    self._stubs = {}
                    self._pid = os.getpid()
        stub = self._stubs.get(method)
        if stub is None:
            assert self._channel is not None
            stub = self._channel.unary_unary(
                f"/{wire.SERVICE}/{method}", request_serializer=wire.pack, response_deserializer=wire.unpack
            )
            self._stubs[method] = stub
        return stub

    def _reconnect(self, deadline: float) -> bool:
        """Wait until the server answers (following a changed cluster file); False at the deadline."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                address = clusterfile.read(self.cluster_file).first_address
            except errors.FDBError:
                address = self._address  # being rewritten by a restarting server
            with self._lock:
                if address != self._address or self._channel is None or self._pid != os.getpid():
                    if self._channel is not None and self._pid == os.getpid():
                        self._channel.close()
                    self._address = address
                    self._channel = grpc.insecure_channel(address, options=_CLIENT_OPTIONS)
                    self._stubs = {}
                    self._pid = os.getpid()
                channel = self._channel
            try:
                grpc.channel_ready_future(channel).result(timeout=min(remaining, 0.5))
                return True
            except grpc.FutureTimeoutError:
                continue

    def _call(
        self, method: str, request: dict[str, Any], *, idempotent: bool = True, timeout: float | None = None
    ) -> Any:
        """Call ``method``; ``timeout`` (seconds) bounds the whole call, reconnecting included, and
        becomes the gRPC deadline, so the server learns when the caller has given up."""
        started = time.monotonic()
        deadline = started + self.connect_timeout
        call_deadline = None if timeout is None else started + timeout
        while True:
            remaining = None if call_deadline is None else max(0.0, call_deadline - time.monotonic())
            try:
                response = self._stub(method)(request, timeout=remaining)
                break
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise errors.TimedOut(f"{method} on {self._address} did not finish within {timeout} s") from exc
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise errors.InternalError(f"{method} RPC to {self._address} failed: {code} {details}") from exc
                if not idempotent and "failed to connect" not in details.lower():
                    raise errors.CommitUnknownResult(
                        f"connection to the cluster at {self._address} broke during {method}: {details}"
                    ) from exc
                if not self._reconnect(deadline if call_deadline is None else min(deadline, call_deadline)):
                    raise errors.ConnectionFailed(
                        f"cannot reach the embedded cluster at {self._address} "
                        f"(cluster file {self.cluster_file}) within {self.connect_timeout:g} s: {details}"
                    ) from exc
        if "err" in response:
            code, message = response["err"]
            raise errors.error_for_code(code, message)
        return response["ok"]

    # --- versions, reads, commits -----------------------------------------------------------------

    def get_read_version(self) -> int:
        version: int = self._call("GetReadVersion", {})
        return version

    def get(self, key: bytes, version: int) -> bytes | None:
        value: bytes | None = self._call("Get", {"key": key, "version": version})
        return value

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
        request = {
            "begin": begin,
            "end": end,
            "version": version,
            "limit": limit,
            "limit_bytes": limit_bytes,
            "reverse": reverse,
        }
        result = self._call("GetRange", request)
        it = iter(result["kv"])
        return RangeResult(list(zip(it, it, strict=True)), result["more"], version)

    def commit(
        self,
        mutations: Sequence[Mutation],
        *,
        read_version: int | None = None,
        read_conflict_ranges: Sequence[KeyRange] = (),
        lock_owner: str | None = None,
    ) -> int:
        request: dict[str, Any] = {"mutations": wire.mutations_out(mutations)}
        return self._commit(request, read_version, read_conflict_ranges, lock_owner)

    def commit_encoded(
        self,
        mutations: EncodedMutations,
        *,
        read_version: int | None = None,
        read_conflict_ranges: Sequence[KeyRange] = (),
        lock_owner: str | None = None,
    ) -> int:
        # The server decodes the document in one step: no Python object per mutation on this side.
        request: dict[str, Any] = {"encoded": mutations.document()}
        return self._commit(request, read_version, read_conflict_ranges, lock_owner)

    def _commit(
        self,
        request: dict[str, Any],
        read_version: int | None,
        read_conflict_ranges: Sequence[KeyRange],
        lock_owner: str | None,
    ) -> int:
        if read_version is not None:
            request["read_version"] = read_version
            request["read_conflicts"] = wire.ranges_out(read_conflict_ranges)
        if lock_owner is not None:
            request["lock_owner"] = lock_owner
        version: int = self._call("Commit", request, idempotent=False)
        return version

    # --- topology and configuration ---------------------------------------------------------------

    def shard_map(self) -> list[Shard]:
        return wire.shards_in(self._call("ShardMap", {}))

    def knobs(self) -> dict[str, str]:
        knobs: dict[str, str] = self._call("Knobs", {})
        return knobs

    def status(self) -> ClusterStatus:
        raw = self._call("Status", {})
        return ClusterStatus(
            version=raw["version"],
            shards=wire.shards_in(raw["shards"]),
            knobs=raw["knobs"],
            captures=raw["captures"],
            locks=wire.locks_in(raw["locks"]),
            extra=raw["extra"],
        )

    def version_at_time(self, unix_time: float) -> int:
        version: int = self._call("VersionAtTime", {"time": unix_time})
        return version

    def time_at_version(self, version: int) -> int | None:
        seconds: int | None = self._call("TimeAtVersion", {"version": version})
        return seconds

    # --- mutation log -----------------------------------------------------------------------------

    def start_log_capture(self, capture_id: str, ranges: Sequence[KeyRange]) -> int:
        version: int = self._call(
            "StartLogCapture", {"id": capture_id, "ranges": wire.ranges_out(ranges)}, idempotent=False
        )
        return version

    def read_log(self, capture_id: str, begin_version: int, *, limit_bytes: int = 0) -> LogBatch:
        raw = self._call("ReadLog", {"id": capture_id, "begin_version": begin_version, "limit_bytes": limit_bytes})
        out: list[LoggedMutation] = []
        for version, blob in raw["entries"]:
            types, p1s, p2s = decode_entry(blob)
            out.extend(
                LoggedMutation(version, i, Mutation(t, a, b))
                for i, (t, a, b) in enumerate(zip(types, p1s, p2s, strict=True))
            )
        return LogBatch(out, raw["end"])

    def pop_log(self, capture_id: str, version: int) -> None:
        self._call("PopLog", {"id": capture_id, "version": version})

    def stop_log_capture(self, capture_id: str) -> None:
        self._call("StopLogCapture", {"id": capture_id})

    # --- range locks ------------------------------------------------------------------------------

    def lock_range(self, range: KeyRange, owner: str, *, block_reads: bool = False) -> None:
        request = {"begin": range.begin, "end": range.end, "owner": owner, "block_reads": block_reads}
        self._call("LockRange", request, idempotent=False)

    def unlock_range(self, range: KeyRange, owner: str) -> None:
        self._call("UnlockRange", {"begin": range.begin, "end": range.end, "owner": owner}, idempotent=False)

    def transfer_range_lock(self, range: KeyRange, owner: str, new_owner: str) -> None:
        request = {"begin": range.begin, "end": range.end, "owner": owner, "new_owner": new_owner}
        self._call("TransferRangeLock", request, idempotent=False)

    # --- BulkDump / BulkLoad ----------------------------------------------------------------------

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
        request = {
            "job_id": job_id,
            "task_id": task_id,
            "begin": range.begin,
            "end": range.end,
            "url": container_url,
            "root": root,
            "batch_bytes": batch_bytes,
            "encryption": None if encryption is None else encryption.to_wire(),
        }
        return wire.batches_in(self._call("BulkDump", request, timeout=timeout))

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
        request = {
            "job_id": job_id,
            "begin": range.begin,
            "end": range.end,
            "url": container_url,
            "manifests": list(manifest_paths),
            "root": root,
            "add_prefix": add_prefix,
            "remove_prefix": remove_prefix,
            "lock_owner": lock_owner,
            "encryption": None if encryption is None else encryption.to_wire(),
        }
        return wire.load_result_in(self._call("BulkLoad", request, timeout=timeout))

    # --- embedded-only: tests and diagnostics -----------------------------------------------------

    def inject_fault(
        self, operation: str, range: KeyRange, action: str, *, times: int = 1, stall_seconds: float = 0.0
    ) -> None:
        """Make the next ``times`` calls of ``operation`` (``bulk_dump``/``bulk_load``) whose range
        intersects ``range`` (for ``bulk_load``, the destination range) misbehave, then behave again.
        Needs ``--knob_enable_fault_injection=1``.

        - ``fail``: the call fails with ``bulkdump_task_failed`` (1243) / ``bulkload_task_failed`` (1238)
          before touching any data; a BulkLoad fails while holding its range lock.
        - ``stall``: the call sleeps ``stall_seconds`` (0: until the caller's deadline passes or it goes
          away), then does its work; a BulkLoad stalls while holding its range lock, so commits into
          the range fail with ``transaction_rejected_range_locked`` meanwhile.
        """
        request = {
            "operation": operation,
            "begin": range.begin,
            "end": range.end,
            "action": action,
            "times": times,
            "stall_seconds": stall_seconds,
        }
        self._call("InjectFault", request)

    def clear_faults(self) -> None:
        self._call("ClearFaults", {})

    def checksum(self, begin: bytes, end: bytes) -> dict[str, Any]:
        """``{"version", "keys", "bytes", "sha256"}`` of ``[begin, end)`` at the latest committed version,
        computed by the server in one scan (any size; no MVCC window applies)."""
        result: dict[str, Any] = self._call("Checksum", {"begin": begin, "end": end})
        return result

    def shard_digests(self) -> list[dict[str, Any]]:
        """Per shard: the digest of its content at a committed version, computed in parallel by worker
        processes reading RocksDB secondary instances (``id, begin, end, version, keys, bytes, sha256``)."""
        digests: list[dict[str, Any]] = self._call("ShardDigests", {})
        return digests

    def close(self) -> None:
        with self._lock:
            if self._channel is not None and self._pid == os.getpid():
                self._channel.close()
            self._channel = None
            self._stubs = {}
