"""BulkDump: one task dumps one key range into a backup container in FDB's BulkDump layout.

The server runs each task in a worker process (in parallel across cores, like FDB's storage servers
dumping their shards). The worker opens a RocksDB secondary instance and, batch after batch:

1. catches up with the primary and takes the committed version ``V`` it now sees (so different
   batches may have different versions, as in FDB), then scans from where the last batch ended;
2. writes the pairs into a local SST until their keys and values reach the batch size, reading and
   writing without a Python step per pair; the batch's range is ``[batchBegin, keyAfter(lastKey))``,
   or ends at the task's end when no key follows, so the batches cover the task exactly;
3. uploads ``<V>-data.sst`` (multipart on S3), then writes ``<V>-manifest.txt`` with the SST's
   SHA-256; a batch without keys has a manifest and no data file (an SST cannot be empty). With
   file-level encryption both are encrypted on their way into the container (the SHA-256 is the
   plaintext's); the plaintext SST never leaves the scratch folder.

The manifest is written only after its data file, so a batch never looks complete before it is.
Before the first batch the task's folder is emptied (a redelivered task replaces its earlier output),
and a task that fails or is cancelled removes what it wrote. A second call for a task already running
joins it and gets its result; a call with different arguments waits and then runs.

Memory stays bounded by one chunk of pairs; disk by one batch's SST.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from bisect import bisect_left
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from itertools import accumulate, chain
from pathlib import Path
from typing import Any

from embedded_cluster import bulk
from embedded_cluster.cancel import Cancellation, check_flag
from embedded_cluster.faults import FaultRegistry
from embedded_cluster.rocks import ChunkedScan
from embedded_cluster.secondary import SecondaryView, WorkerPool, process_view
from fdbcore import errors, naming
from fdbcore.cluster.interface import BulkDumpBatch
from fdbcore.container import BackupContainer, open_container
from fdbcore.encryption import EncryptionSettings
from fdbcore.formats.bulkdump_manifest import CHECKSUM_SHA256, BatchManifest
from fdbcore.formats.sst import SstWriter
from fdbcore.keys import KeyRange, key_after

log = logging.getLogger(__name__)

#: Pairs read per step: large enough to keep Python out of the per-pair path, small for quick cancels.
CHUNK_PAIRS = 4096


@dataclass(frozen=True, slots=True)
class DumpTask:
    """Everything a worker process needs to dump one task (picklable)."""

    data_dir: str
    job_id: str
    task_id: str
    range: KeyRange
    url: str
    root: str
    batch_bytes: int
    credential_files: tuple[str, ...]
    #: Set by the server per call: the scratch folder and its cancellation flag.
    scratch: str = ""
    cancel_flag: str = ""
    #: File-level encryption: the SST is encrypted as it moves from the scratch folder into the container.
    encryption: EncryptionSettings | None = None

    @property
    def what(self) -> str:
        return f"BulkDump of {self.range} (job {self.job_id}, task {self.task_id})"


def dump_task(task: DumpTask) -> list[BulkDumpBatch]:
    """Worker-process entry point: replace the task's folder with a fresh dump of its range."""
    cipher = None if task.encryption is None else task.encryption.cipher()
    container = open_container(task.url, credential_files=task.credential_files, cipher=cipher)
    folder = naming.within_root(task.root, naming.bulkdump_task_dir(task.job_id, task.task_id)) + "/"
    try:
        container.delete_prefix(folder)
        return _dump(task, process_view(Path(task.data_dir)), container)
    except BaseException:
        try:
            container.delete_prefix(folder)
        except errors.FDBError as exc:
            log.warning("%s failed and its partial output in %s could not be removed: %s", task.what, folder, exc)
        raise


def _dump(task: DumpTask, view: SecondaryView, container: BackupContainer) -> list[BulkDumpBatch]:
    root_path = bulk.manifest_root(task.url, task.root)
    transport = bulk.transport_method(task.url)
    batches: list[BulkDumpBatch] = []
    begin = task.range.begin
    while True:
        check_flag(task.cancel_flag, task.what)
        version = view.catch_up() if batches else view.version  # process_view() has just caught up
        batch_dir = naming.bulkdump_batch_dir(task.job_id, task.task_id, len(batches))
        writer = SstWriter(os.path.join(task.scratch, f"{len(batches)}.sst"))
        try:
            cut = _fill(view.chunked_scan(begin, task.range.end), writer, task.batch_bytes, task)
            info = writer.finish()
        except BaseException:
            writer.abort()
            raise
        end = task.range.end if cut is None else key_after(cut)
        data_name = ""
        if info is not None:
            data_name = naming.bulkdump_data_name(version)
            try:
                container.move_file(naming.within_root(task.root, f"{batch_dir}/{data_name}"), info.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(info.path)
        manifest = BatchManifest(
            root_path=root_path,
            relative_path=batch_dir,
            manifest_file_name=naming.bulkdump_manifest_name(version),
            data_file_name=data_name,
            byte_sample_file_name="",
            checksum_value=info.sha256 if info else "",
            checksum_method=CHECKSUM_SHA256 if info else "",
            begin_key=begin,
            end_key=end,
            version=version,
            total_bytes=info.total_bytes if info else 0,
            key_count=info.key_count if info else 0,
            transport_method=transport,
        )
        container.write(naming.within_root(task.root, manifest.manifest_relative_path), manifest.to_text().encode())
        batches.append(
            BulkDumpBatch(
                range=manifest.range,
                version=version,
                manifest_path=manifest.manifest_relative_path,
                data_path=f"{batch_dir}/{data_name}" if data_name else "",
                bytes=manifest.total_bytes,
                key_count=manifest.key_count,
                data_file_size=info.size if info else 0,
                checksum=manifest.checksum_value,
            )
        )
        if cut is None:
            return batches
        begin = end


def _fill(scan: ChunkedScan, writer: SstWriter, batch_bytes: int, task: DumpTask) -> bytes | None:
    """Write pairs until they reach ``batch_bytes``; the last key written if more keys follow it in
    the scan (the batch is cut there), ``None`` if the scan ended (the batch runs to the range's end)."""
    what = task.what
    while True:
        check_flag(task.cancel_flag, what)
        chunk = scan.next_chunk(CHUNK_PAIRS)
        if not chunk:
            return None
        size = sum(map(len, chain.from_iterable(chunk)))
        if size < batch_bytes - writer.total_bytes:
            writer.add_many(chunk, size)
            continue
        # The batch fills up inside this chunk: cut after the pair that reaches the size.
        room = batch_bytes - writer.total_bytes
        taken = bisect_left(list(accumulate(len(k) + len(v) for k, v in chunk)), room) + 1
        writer.add_many(chunk[:taken])
        if taken < len(chunk) or scan.next_chunk(1):
            return chunk[taken - 1][0]
        return None


# --- the server side ---------------------------------------------------------------------------------


@dataclass
class _Running:
    task: DumpTask
    result: Future[list[BulkDumpBatch]]


class BulkDumpService:
    """Runs BulkDump calls: checks them, applies injected faults, joins duplicates, and waits for the
    worker process (stopping it when the caller gives up)."""

    def __init__(
        self,
        data_dir: Path,
        pool: WorkerPool,
        faults: FaultRegistry,
        default_batch_bytes: int,
        credential_files: Sequence[str],
    ) -> None:
        self.data_dir = data_dir
        self.pool = pool
        self.faults = faults
        self.default_batch_bytes = default_batch_bytes
        self.credential_files = tuple(credential_files)
        self._running: dict[tuple[str, str], _Running] = {}
        self._lock = threading.Lock()

    def task_of(self, r: dict[str, Any]) -> DumpTask:
        """The checked task a request asks for."""
        batch_bytes = r["batch_bytes"] or self.default_batch_bytes
        if batch_bytes < 0:
            raise errors.InvalidOptionValue(f"batch_bytes must not be negative, not {batch_bytes}")
        task = DumpTask(
            data_dir=str(self.data_dir),
            job_id=bulk.check_uid("job_id", r["job_id"]),
            task_id=bulk.check_uid("task_id", r["task_id"]),
            range=bulk.user_range(r["begin"], r["end"], "BulkDump"),
            url=r["url"],
            root=bulk.dataset_root(r["root"]),
            batch_bytes=batch_bytes,
            credential_files=self.credential_files,
            encryption=EncryptionSettings.from_wire(r.get("encryption")),
        )
        if task.encryption is not None:
            task.encryption.cipher()  # this server's key file holds the job's key, or the call fails now
        bulk.manifest_root(task.url, task.root)  # refuses roots a manifest cannot hold
        open_container(task.url)  # parses the URL: backup_invalid_url now, not in the worker
        return task

    def dump(self, r: dict[str, Any], cancellation: Cancellation) -> list[BulkDumpBatch]:
        task = self.task_of(r)
        key = (task.job_id, task.task_id)
        while True:
            with self._lock:
                running = self._running.get(key)
                if running is None:
                    mine = self._running[key] = _Running(task, Future())
                    break
            cancellation.wait_done(running.result, None, task.what)
            if running.task != task:
                continue  # a different request for the same folder: it runs after the one before it
            if isinstance(running.result.exception(), errors.TimedOut):
                continue  # its caller gave up on it, we have not: run it for us
            return running.result.result()  # joined: the same task, the same output
        try:
            batches = self._run(task, cancellation)
        except BaseException as exc:
            mine.result.set_exception(exc)
            raise
        else:
            mine.result.set_result(batches)
            return batches
        finally:
            with self._lock:
                del self._running[key]

    def _run(self, task: DumpTask, cancellation: Cancellation) -> list[BulkDumpBatch]:
        bulk.act_on_fault(self.faults, "bulk_dump", task.range, cancellation, task.what)
        with bulk.scratch(self.data_dir, "dump-") as work:
            call = replace(task, scratch=str(work.path), cancel_flag=str(work.flag))
            batches = cancellation.wait_for(self.pool.submit(dump_task, call), work.flag, task.what)
        log.info(
            "%s: %d batches, %d keys, %d bytes",
            task.what,
            len(batches),
            sum(b.key_count for b in batches),
            sum(b.bytes for b in batches),
        )
        return batches
