"""BulkLoad: replace a key range with the SST files of a BulkDump dataset, bypassing the commit path.

One call loads one range from a group of batch manifests (the restore fleet sends one call per
destination shard, FDB's ``MANIFEST_COUNT_MAX_PER_BULKLOAD_TASK`` manifests at most). In order:

1. refuse (``bulkload_invalid_configuration``, naming the knob) unless the server runs with FDB's two
   BulkLoad knobs; nothing has been touched yet;
2. lock the destination range exclusively for the owner ``BulkLoad`` (``range_lock_reject`` if any lock
   touches it), or check that the caller's ``lock_owner`` already holds it;
3. read the batch manifests and check that they cover the range exactly;
4. in the server's worker processes (so that no byte of it passes through the interpreter that serves
   reads and commits): download every data file into a scratch folder on the database's file system
   and prove it intact:
   its SHA-256 against the manifest's, or for datasets without one (FDB's), a verified read-through
   with the manifest's key count and bytes and every key inside the batch's range. Anything missing or
   wrong is ``bulkload_task_failed`` naming the file, before anything is visible. An encrypted dataset
   is decrypted on the way down, every block authenticated (``restore_corrupted_data`` otherwise);
5. files that hold keys outside the range, or whose keys change (``remove_prefix``/``add_prefix``), are
   rewritten into new SSTs there too; all others are ingested as they are;
6. under the commit lock: clear the destination range and ingest the files (moved, not copied), in a
   new version; reads of the range at older versions get ``transaction_too_old``. Nothing goes through
   the mutation log;
7. release the lock (when this call took it) and remove the scratch folder, whatever happened.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from embedded_cluster import bulk
from embedded_cluster.cancel import Cancellation, check_flag
from embedded_cluster.faults import FaultRegistry
from embedded_cluster.ingest import IngestFile
from embedded_cluster.knobs import Knobs
from embedded_cluster.secondary import WorkerPool, range_bytes
from embedded_cluster.storage import Storage
from fdbcore import errors, naming
from fdbcore.cluster.interface import BulkLoadResult
from fdbcore.container import BackupContainer, open_container
from fdbcore.encryption import EncryptionSettings
from fdbcore.formats.bulkdump_manifest import CHECKSUM_SHA256, BatchManifest, JobManifestEntry, entries_covering
from fdbcore.formats.sst import SstWriter, read_sst, sha256_file, verify_sst
from fdbcore.keys import USER_END, KeyRange, printable, strinc

log = logging.getLogger(__name__)

#: The range-lock owner of loads that take their own lock (FDB's ``"BulkLoad"``).
BULKLOAD_OWNER = "BulkLoad"
REQUIRED_KNOBS = ("shard_encode_location_metadata", "enable_read_lock_on_range")
#: Batch manifests read at once per call (small files; the data files are staged in worker processes).
MANIFEST_READS = 8
_REWRITE_CHUNK = 4096


def check_configuration(knobs: Knobs) -> None:
    """FDB's precondition (its #13345 stalls silently without it): both knobs on."""
    for name in REQUIRED_KNOBS:
        if not getattr(knobs, name):
            raise errors.BulkloadInvalidConfiguration(
                f"BulkLoad requires --knob_{name}=1. Restart cluster with this knob enabled."
            )


@dataclass(frozen=True, slots=True)
class KeyRewrite:
    """``remove_prefix`` then ``add_prefix``, as a restore applies them to every key."""

    remove: bytes = b""
    add: bytes = b""

    @property
    def identity(self) -> bool:
        return not self.remove and not self.add

    def key(self, key: bytes) -> bytes:
        return self.add + key[len(self.remove) :]

    def range(self, r: KeyRange) -> KeyRange:
        """Where the keys of ``r`` land. Every key of ``r`` must carry ``remove`` (``r`` lies within the
        prefix's range), and the result must be user keys."""
        if self.remove:
            inside = r.begin.startswith(self.remove) and r.end <= strinc(self.remove)
            if not inside:
                raise errors.InvalidOptionValue(
                    f"remove_prefix {printable(self.remove)} is not a prefix of every key in {r}"
                )
        begin = self.key(r.begin)
        if r.end.startswith(self.remove):
            end = self.key(r.end)
        else:  # r.end == strinc(remove): the end of everything the prefix holds
            end = strinc(self.add) if self.add else USER_END
        dest = KeyRange(begin, end)
        if dest.end > USER_END:
            raise errors.KeyOutsideLegalRange(f"BulkLoad would write {dest}, beyond the user keys (\\xff)")
        return dest


@dataclass(frozen=True, slots=True)
class LoadRequest:
    job_id: str
    range: KeyRange
    url: str
    manifest_paths: tuple[str, ...]
    root: str
    rewrite: KeyRewrite
    lock_owner: str | None
    encryption: EncryptionSettings | None = None

    @property
    def what(self) -> str:
        return f"BulkLoad of {self.range} (job {self.job_id})"


@dataclass(frozen=True, slots=True)
class _Staged:
    """A downloaded, verified data file: what to ingest from it (None: no key to load) and its key count."""

    file: IngestFile | None
    key_count: int


@dataclass(frozen=True, slots=True)
class _StageCall:
    """One data file to stage, as a worker process receives it (the key file's path, never the key)."""

    url: str
    credential_files: tuple[str, ...]
    encryption: EncryptionSettings | None
    source: str
    local: str
    manifest: BatchManifest
    range: KeyRange
    rewrite: KeyRewrite
    work_dir: str
    flag: str
    what: str


# --- worker-process entry points ---------------------------------------------------------------------


def verify_data_file(path: str, batch: KeyRange, key_count: int, total_bytes: int, tmp_dir: str) -> None:
    """Read an SST through (``file_corrupt`` on any damage) and check its count, bytes and key range."""
    stats = verify_sst(path, expected_key_count=key_count, expected_bytes=total_bytes, tmp_dir=tmp_dir)
    for key in (stats.first_key, stats.last_key):
        if key is not None and not batch.contains(key):
            raise errors.FileCorrupt(f"SST file {path} holds key {printable(key)} outside its batch range {batch}")


def rewrite_data_file(
    src: str, dst: str, keep: KeyRange, rewrite: KeyRewrite, tmp_dir: str, cancel_flag: str
) -> tuple[int, int] | None:
    """Write the keys of ``src`` inside ``keep``, rewritten, into ``dst``; their count and bytes, or
    None (and no file) when there are none."""
    writer = SstWriter(dst)
    try:
        chunk: list[tuple[bytes, bytes]] = []
        for key, value in read_sst(src, keep, tmp_dir=tmp_dir):
            chunk.append((rewrite.key(key), value))
            if len(chunk) == _REWRITE_CHUNK:
                check_flag(cancel_flag, f"rewriting {src}")
                writer.add_many(chunk)
                chunk = []
        writer.add_many(chunk)
        info = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return None if info is None else (info.key_count, info.total_bytes)


def stage_data_file(call: _StageCall) -> _Staged:
    """Download one data file, prove it intact, and rewrite it if its keys change or stick out.

    Runs in a worker process: the bytes are copied, hashed and rewritten away from the server's
    interpreter, whose request threads a live cluster's workload waits on."""
    m, what = call.manifest, call.what
    check_flag(call.flag, what)
    cipher = None if call.encryption is None else call.encryption.cipher()
    container = open_container(call.url, credential_files=call.credential_files, cipher=cipher)
    try:
        container.download_file(call.source, call.local)
    except errors.FileNotFound:
        raise errors.BulkloadTaskFailed(f"{what}: data file {call.source} is missing") from None
    try:
        _verify(m, call.local, call.work_dir)
    except errors.FileCorrupt as exc:
        raise errors.BulkloadTaskFailed(f"{what}: data file {call.source} is corrupt: {exc.message}") from None
    if call.rewrite.identity and call.range.contains_range(m.range):
        return _Staged(IngestFile(call.local, m.range, m.total_bytes), m.key_count)
    keep = m.range.intersection(call.range)
    assert keep is not None  # the manifest was chosen because it overlaps the range
    rewritten = f"{call.local}-rewritten.sst"
    counted = rewrite_data_file(call.local, rewritten, keep, call.rewrite, call.work_dir, call.flag)
    os.unlink(call.local)
    if counted is None:
        return _Staged(None, 0)
    keys, nbytes = counted
    return _Staged(IngestFile(rewritten, call.rewrite.range(keep), nbytes), keys)


def _verify(m: BatchManifest, local: str, work_dir: str) -> None:
    if m.checksum_method == CHECKSUM_SHA256:
        actual = sha256_file(local)
        if actual != m.checksum_value:
            raise errors.FileCorrupt(f"its SHA-256 is {actual}; the manifest says {m.checksum_value}")
    elif m.checksum_method:
        raise errors.FileCorrupt(f"unknown checksum method {m.checksum_method!r}")
    else:
        verify_data_file(local, m.range, m.key_count, m.total_bytes, work_dir)


# --- the server side ---------------------------------------------------------------------------------


class BulkLoadService:
    def __init__(
        self, storage: Storage, pool: WorkerPool, faults: FaultRegistry, credential_files: Sequence[str]
    ) -> None:
        self.storage = storage
        self.pool = pool
        self.faults = faults
        self.credential_files = tuple(credential_files)
        self._loading: list[KeyRange] = []
        self._lock = threading.Lock()

    def request_of(self, r: dict[str, Any]) -> LoadRequest:
        paths = tuple(r["manifests"])
        job_id = bulk.check_uid("job_id", r["job_id"])
        for path in paths:
            parsed = naming.parse_bulkdump_path(path)
            if parsed is None or parsed.kind != naming.BulkDumpFileKind.MANIFEST or parsed.path.count("/") != 3:
                raise errors.BulkloadFilesetInvalidFilepath(
                    f"{path!r} is not a batch manifest path <job>/<task>/<batch>/<version>-manifest.txt"
                )
            if parsed.job_id != job_id:
                raise errors.BulkloadFilesetInvalidFilepath(f"batch manifest {path} is not part of job {job_id}")
        request = LoadRequest(
            job_id=job_id,
            range=bulk.user_range(r["begin"], r["end"], "BulkLoad"),
            url=r["url"],
            manifest_paths=paths,
            root=bulk.dataset_root(r["root"]),
            rewrite=KeyRewrite(r["remove_prefix"], r["add_prefix"]),
            lock_owner=r["lock_owner"],
            encryption=EncryptionSettings.from_wire(r.get("encryption")),
        )
        if not paths:
            raise errors.BulkloadDatasetNotCoverRequiredRange(f"{request.what}: no batch manifests given")
        return request

    def load(self, r: dict[str, Any], cancellation: Cancellation) -> BulkLoadResult:
        check_configuration(self.storage.knobs)
        request = self.request_of(r)
        dest = request.rewrite.range(request.range)
        cipher = None if request.encryption is None else request.encryption.cipher()
        container = open_container(request.url, credential_files=self.credential_files, cipher=cipher)
        with self._claim(dest, request.what):
            owner = request.lock_owner or BULKLOAD_OWNER
            if request.lock_owner:
                self.storage.locks.check_held(dest, request.lock_owner)
            else:
                self.storage.locks.lock_exclusive(dest, BULKLOAD_OWNER)
            try:
                bulk.act_on_fault(self.faults, "bulk_load", dest, cancellation, request.what)
                with bulk.scratch(self.storage.data_dir, "load-") as work:
                    return self._load(request, dest, owner, container, work, cancellation)
            finally:
                if not request.lock_owner:
                    self.storage.locks.unlock(dest, BULKLOAD_OWNER)

    def _count(self, ranges: Sequence[KeyRange]) -> list[int]:
        """Bytes in each range, counted by the worker processes (not in the server's interpreter)."""
        data_dir = str(self.storage.data_dir)
        return self.pool.map(range_bytes, [(data_dir, r.begin, r.end) for r in ranges])

    @contextmanager
    def _claim(self, dest: KeyRange, what: str) -> Iterator[None]:
        """No two loads into overlapping ranges at once, whatever lock they run under."""
        with self._lock:
            for other in self._loading:
                if other.intersects(dest):
                    raise errors.RangeLockReject(f"{what}: a BulkLoad into {other} is in progress")
            self._loading.append(dest)
        try:
            yield
        finally:
            with self._lock:
                self._loading.remove(dest)

    def _load(
        self,
        request: LoadRequest,
        dest: KeyRange,
        owner: str,
        container: BackupContainer,
        work: bulk.Scratch,
        cancellation: Cancellation,
    ) -> BulkLoadResult:
        with ThreadPoolExecutor(MANIFEST_READS, thread_name_prefix="bulkload") as threads:
            manifests = list(threads.map(lambda p: self._manifest(container, request.root, p), request.manifest_paths))
        by_path = {m.manifest_relative_path: m for m in manifests}
        entries = entries_covering([JobManifestEntry.of(m) for m in manifests], request.range)
        needed = [by_path[e.manifest_relative_path] for e in entries]
        cancellation.check(request.what)
        calls = [self._stage_call(request, m, i, work) for i, m in enumerate(needed) if m.data_file_name]
        staged = self._stage_all(calls, work, cancellation, request.what)
        files = [s.file for s in staged if s.file is not None]
        cancellation.check(request.what)
        version = self.storage.ingest.replace(dest, files, lock_owner=owner, count=self._count)
        result = BulkLoadResult(dest, sum(s.key_count for s in staged), sum(f.bytes for f in files), len(files))
        log.info(
            "%s: %d keys, %d bytes from %d files into %s at version %d",
            request.what,
            result.keys_loaded,
            result.bytes_loaded,
            result.files_ingested,
            dest,
            version,
        )
        return result

    @staticmethod
    def _manifest(container: BackupContainer, root: str, path: str) -> BatchManifest:
        full = naming.within_root(root, path)
        try:
            manifest = BatchManifest.parse(container.read(full), full)
        except errors.FileNotFound:
            raise errors.BulkloadTaskFailed(f"batch manifest {full} is missing") from None
        if manifest.manifest_relative_path != path:
            raise errors.BulkloadTaskFailed(f"batch manifest {full} names itself {manifest.manifest_relative_path}")
        return manifest

    def _stage_call(self, request: LoadRequest, m: BatchManifest, index: int, work: bulk.Scratch) -> _StageCall:
        return _StageCall(
            url=request.url,
            credential_files=self.credential_files,
            encryption=request.encryption,
            source=naming.within_root(request.root, f"{m.relative_path}/{m.data_file_name}"),
            local=str(work.path / f"{index}.sst"),
            manifest=m,
            range=request.range,
            rewrite=request.rewrite,
            work_dir=str(work.path),
            flag=str(work.flag),
            what=request.what,
        )

    def _stage_all(
        self, calls: Sequence[_StageCall], work: bulk.Scratch, cancellation: Cancellation, what: str
    ) -> list[_Staged]:
        """Stage every file in the worker processes; on the first failure stop the others and wait for
        them, so that none still writes into the scratch folder once it is removed."""
        jobs = [self.pool.submit(stage_data_file, call) for call in calls]
        try:
            return [cancellation.wait_for(job, work.flag, what) for job in jobs]
        except BaseException:
            work.flag.touch()
            for job in jobs:
                job.cancel()
            wait(jobs)
            raise
