"""The embedded cluster's server process: gRPC in front of :class:`~.storage.Storage`.

RPCs are gRPC unary calls with msgpack bodies through generic method handlers (no protobuf code
generation). Every response is an envelope, ``{"ok": result}`` or ``{"err": [fdb_code, message]}``,
so FDB errors cross the wire with their codes and the client raises the same
:class:`~fdbcore.errors.FDBError` subclass the server did.

The process writes its cluster file (``embedded:<cluster id>@host:port``) atomically once it accepts
connections, runs until SIGTERM or SIGINT, then stops accepting calls, lets running ones finish and
closes RocksDB. A maintenance thread commits empty batches when idle (so read versions advance like
FDB's) and splits oversized shards.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import grpc

from embedded_cluster import DESCRIPTION, bulk, wire
from embedded_cluster.bulk import clear_scratch
from embedded_cluster.bulkdump import BulkDumpService
from embedded_cluster.bulkload import BulkLoadService
from embedded_cluster.cancel import Cancellation
from embedded_cluster.distribution import Measured
from embedded_cluster.faults import Fault, FaultRegistry
from embedded_cluster.knobs import Knobs
from embedded_cluster.secondary import WorkerPool, clear_secondaries, digest_range, measure_shard
from embedded_cluster.shards import ShardState
from embedded_cluster.storage import Storage
from fdbcore import errors
from fdbcore.cluster import clusterfile
from fdbcore.encoded_mutations import decode_document
from fdbcore.keys import KeyRange

log = logging.getLogger(__name__)

#: What the worker processes run (their entry points' modules), imported when they start.
WORKER_MODULES = ("embedded_cluster.bulkdump", "embedded_cluster.bulkload")

SHARD_SPLIT_INTERVAL = 1.0
#: Handler threads. A BulkDump or BulkLoad call holds one for its whole duration while worker
#: processes do the work, so there are enough for a fleet's bulk calls plus ordinary traffic.
RPC_THREADS = 128

Request = dict[str, Any]


class ClusterService:
    """The RPC methods, each taking the decoded request and returning a msgpack-able result.

    BulkDump and BulkLoad also get the call's :class:`Cancellation`, so that they stop when the
    caller's deadline passes. The server reaches backup containers with its own credentials
    (``credential_files``, then ``FDB_BLOB_CREDENTIALS`` and boto3's chain), as FDB's storage servers do.
    """

    def __init__(
        self, storage: Storage, faults: FaultRegistry, pool: WorkerPool, credential_files: Sequence[str] = ()
    ) -> None:
        self.storage = storage
        self.faults = faults
        self.pool = pool
        self.bulkdump = BulkDumpService(
            storage.data_dir, pool, faults, storage.knobs.bulkdump_batch_bytes, credential_files
        )
        self.bulkload = BulkLoadService(storage, pool, faults, credential_files)

    def cancellable_methods(self) -> dict[str, Callable[[Request, Cancellation], object]]:
        return {
            "BulkDump": lambda r, c: wire.batches_out(self.bulkdump.dump(self._readable(r), c)),
            "BulkLoad": lambda r, c: wire.load_result_out(self.bulkload.load(r, c)),
        }

    def methods(self) -> dict[str, Callable[[Request], object]]:
        s = self.storage
        return {
            "GetReadVersion": lambda r: s.reads.latest_version,
            "Get": lambda r: s.reads.get(r["key"], r["version"]),
            "GetRange": self.get_range,
            "Commit": self.commit,
            "ShardMap": lambda r: wire.shards_out(s.distributor.public()),
            "Knobs": lambda r: s.knobs.as_strings(),
            "Status": self.status,
            "StartLogCapture": lambda r: s.captures.start(r["id"], wire.ranges_in(r["ranges"])),
            "ReadLog": self.read_log,
            "PopLog": lambda r: s.captures.pop(r["id"], r["version"]),
            "StopLogCapture": lambda r: s.captures.stop(r["id"]),
            "LockRange": self.lock_range,
            "UnlockRange": lambda r: s.locks.unlock(KeyRange(r["begin"], r["end"]), r["owner"]),
            "TransferRangeLock": lambda r: s.locks.transfer(KeyRange(r["begin"], r["end"]), r["owner"], r["new_owner"]),
            "VersionAtTime": lambda r: s.store.timekeeper.version_at_time(r["time"]),
            "TimeAtVersion": lambda r: s.store.timekeeper.time_at_version(r["version"]),
            "InjectFault": self.inject_fault,
            "ClearFaults": lambda r: self.faults.clear(),
            "ShardDigests": self.shard_digests,
            "Checksum": self.checksum,
        }

    def _readable(self, r: Request) -> Request:
        """Refuse a scan outside the MVCC path (BulkDump, digests) of a range whose lock blocks reads."""
        with self.storage.store.commit_lock:
            self.storage.locks.held.check_reads(r.get("begin", b""), r.get("end", b"\xff\xff"))
        return r

    def get_range(self, r: Request) -> dict[str, object]:
        result = self.storage.reads.get_range(
            r["begin"],
            r["end"],
            r["version"],
            limit=r["limit"],
            limit_bytes=r["limit_bytes"],
            reverse=r["reverse"],
        )
        return {"kv": result.flat, "more": result.more}

    def commit(self, r: Request) -> int:
        """Mutations come as columns, or as an encoded document (``commit_encoded``) of the same."""
        encoded = r.get("encoded")
        types, p1s, p2s = r["mutations"] if encoded is None else decode_document(encoded)
        return self.storage.commits.commit(
            (types, p1s, p2s),
            read_version=r.get("read_version"),
            read_conflicts=wire.ranges_in(r.get("read_conflicts", [])),
            lock_owner=r.get("lock_owner"),
        )

    def read_log(self, r: Request) -> dict[str, object]:
        result = self.storage.captures.read(r["id"], r["begin_version"], r["limit_bytes"])
        return {"entries": [[v, blob] for v, blob in result.entries], "end": result.end_version}

    def lock_range(self, r: Request) -> object:
        range = KeyRange(r["begin"], r["end"])
        bulk.act_on_fault(self.faults, "lock_range", range, Cancellation(), f"lock of {range} by {r['owner']}")
        return self.storage.locks.lock(range, r["owner"], r.get("block_reads", False))

    def inject_fault(self, r: Request) -> None:
        fault = Fault(r["operation"], KeyRange(r["begin"], r["end"]), r["action"], r["times"], r["stall_seconds"])
        self.faults.inject(fault)

    def checksum(self, r: Request) -> dict[str, object]:
        """The digest of a range at the latest committed version, scanned in one pass by a worker
        process on a secondary instance: no MVCC window limits how long it may take."""
        self._readable(r)
        d = self.pool.submit(digest_range, str(self.storage.data_dir), r["begin"], r["end"]).result()
        return {"version": d.version, "keys": d.keys, "bytes": d.bytes, "sha256": d.sha256}

    def shard_digests(self, r: Request) -> list[dict[str, object]]:
        self._readable(r)
        shards = self.storage.distributor.public()
        data_dir = str(self.storage.data_dir)
        digests = self.pool.map(digest_range, [(data_dir, s.range.begin, s.range.end) for s in shards])
        return [
            {
                "id": shard.id,
                "begin": d.begin,
                "end": d.end,
                "version": d.version,
                "keys": d.keys,
                "bytes": d.bytes,
                "sha256": d.sha256,
            }
            for shard, d in zip(shards, digests, strict=True)
        ]

    def status(self, r: Request) -> dict[str, object]:
        s = self.storage
        captures = s.captures.public()
        latest = s.reads.latest_version
        history = s.store.history
        return {
            "version": latest,
            "shards": wire.shards_out(s.distributor.public()),
            "knobs": s.knobs.as_strings(),
            "captures": captures,
            "locks": wire.locks_out(s.locks.all()),
            "extra": {
                "cluster_id": s.cluster_id,
                "data_dir": str(s.data_dir),
                "recovery_version": history.start_version,
                "oldest_readable_version": history.oldest_readable(latest),
                "mvcc_records": len(history),
                "shard_bytes": {st.id: st.nbytes for st in s.distributor.map.states()},
                "timekeeper": s.store.timekeeper.summary(),
                "faults": self.faults.public(),
            },
        }


def _rpc_handler(fn: Callable[[Request, grpc.ServicerContext], object]) -> grpc.RpcMethodHandler:
    def handle(request: Request, context: grpc.ServicerContext) -> dict[str, object]:
        try:
            return {"ok": fn(request, context)}
        except errors.FDBError as exc:
            return {"err": [exc.code, exc.message]}
        except BrokenProcessPool as exc:  # the pool is replaced on its next use (WorkerPool.submit)
            log.warning("a worker process died during an RPC: %s", exc)
            return {"err": [errors.BrokenPromise.code, f"a worker process of the cluster server died: {exc}"]}
        except Exception as exc:
            log.exception("RPC failed")
            return {"err": [errors.InternalError.code, f"{type(exc).__name__}: {exc}"]}

    return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=wire.unpack, response_serializer=wire.pack)


def _plain(fn: Callable[[Request], object]) -> Callable[[Request, grpc.ServicerContext], object]:
    return lambda request, context: fn(request)


def _cancellable(
    fn: Callable[[Request, Cancellation], object],
) -> Callable[[Request, grpc.ServicerContext], object]:
    return lambda request, context: fn(request, Cancellation.of_call(context))


class EmbeddedClusterServer:
    def __init__(
        self,
        data_dir: Path,
        cluster_file: Path,
        knobs: Knobs,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credential_files: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.cluster_file = cluster_file
        self.knobs = knobs
        self.host = host
        self.port = port
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        self._grpc: grpc.Server | None = None
        self.storage: Storage | None = None
        self.pool = WorkerPool(knobs.worker_processes)
        self.credential_files = tuple(credential_files)

    def start(self) -> str:
        """Open the data directory, start serving and write the cluster file; return ``host:port``."""
        self.storage = storage = Storage(self.data_dir, self.knobs)
        clear_scratch(self.data_dir)
        clear_secondaries(self.data_dir)
        faults = FaultRegistry(bool(self.knobs.enable_fault_injection))
        service = ClusterService(storage, faults, self.pool, self.credential_files)
        handlers = {name: _rpc_handler(_plain(fn)) for name, fn in service.methods().items()}
        for name, long_fn in service.cancellable_methods().items():
            handlers[name] = _rpc_handler(_cancellable(long_fn))
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=RPC_THREADS, thread_name_prefix="rpc"),
            options=[*wire.CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)],
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(wire.SERVICE, handlers),))
        try:
            port = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError as exc:
            port = 0
            reason = str(exc)
        else:
            reason = "address in use?"
        if not port:
            storage.close()
            raise errors.IoError(f"cannot listen on {self.host}:{self.port} ({reason})")
        server.start()
        self._grpc = server
        self.port = port
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        self._maintenance.start()
        warm = (self.data_dir, WORKER_MODULES)
        threading.Thread(target=self.pool.warm, args=warm, name="warm-workers", daemon=True).start()
        address = f"{self.host}:{port}"
        clusterfile.write_atomic(
            self.cluster_file,
            clusterfile.ClusterFile(DESCRIPTION, storage.cluster_id, ((self.host, port),)),
        )
        log.info("embedded cluster %s serving %s at %s", storage.cluster_id, self.data_dir, address)
        return address

    def _maintain(self) -> None:
        storage = self.storage
        assert storage is not None
        idle = self.knobs.idle_commit_interval_ms / 1000
        interval = idle / 2 if idle else SHARD_SPLIT_INTERVAL
        next_split = time.monotonic() + SHARD_SPLIT_INTERVAL
        while not self._stop.wait(interval):
            try:
                if idle:
                    storage.store.tick(idle)
                if time.monotonic() >= next_split:
                    storage.distributor.split_oversized(self._measure_shard)
                    next_split = time.monotonic() + SHARD_SPLIT_INTERVAL
            except Exception:
                log.exception("maintenance failed")

    def _measure_shard(self, shard: ShardState) -> Measured:
        """Count a shard in a worker process: scanning it here would hold up commits."""
        return self.pool.submit(measure_shard, str(self.data_dir), shard.begin, shard.end, shard.nbytes).result()

    def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        if self._maintenance is not None:
            self._maintenance.join()
        self.pool.close()
        if self.storage is not None:
            self.storage.close()
            self.storage = None
        log.info("embedded cluster stopped")


def serve(server: EmbeddedClusterServer) -> None:
    """Run ``server`` in the foreground until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
