"""Per-process handles a worker needs: job state in Redis, cluster drivers and containers.

Everything is created lazily and cached per process id, because Celery's prefork pool forks
workers after import: a gRPC channel or boto3 client made before the fork must not be reused in
the child (ecosystem notes §1.4, item 8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import redis

from config import Settings, get_settings
from fdbcore.cluster import ClusterDriver, connect
from fdbcore.container import BackupContainer, open_container
from fdbcore.encryption import EncryptionSettings
from workers import trace
from workers.backup.job import BackupJob
from workers.encryption import StoredJob
from workers.restore.job import RestoreJob
from workers.state import JobStore, connect_state


@dataclass
class Context:
    settings: Settings
    redis: redis.Redis
    _clusters: dict[str, ClusterDriver] = field(default_factory=dict)
    _containers: dict[tuple[str, tuple[str, ...], EncryptionSettings | None], BackupContainer] = field(
        default_factory=dict
    )

    @cached_property
    def backups(self) -> JobStore[BackupJob]:
        return JobStore(self.redis, "backup", BackupJob)

    @cached_property
    def restores(self) -> JobStore[RestoreJob]:
        return JobStore(self.redis, "restore", RestoreJob)

    def cluster(self, cluster_file: str) -> ClusterDriver:
        driver = self._clusters.get(cluster_file)
        if driver is None:
            driver = self._clusters[cluster_file] = connect(cluster_file)
        return driver

    def container(self, job: StoredJob, url: str | None = None) -> BackupContainer:
        """The job's container (or the one at ``url``, a continuous backup's earlier destination); an
        encrypted backup's decrypts and encrypts with this host's copy of the key file, which must hold
        the key the job was started with (``invalid_encryption_key_file``)."""
        settings = job.encryption
        url = url or job.url
        key = (url, tuple(job.credential_files), settings)
        c = self._containers.get(key)
        if c is None:
            cipher = None if settings is None else settings.cipher()
            c = open_container(url, credential_files=job.credential_files, cipher=cipher)
            self._containers[key] = c
        return c


_context: Context | None = None
_pid = 0


def context() -> Context:
    """This process's context (a new one after a fork)."""
    global _context, _pid
    if _context is None or _pid != os.getpid():
        settings = get_settings()
        _context = Context(settings, connect_state(settings.state_url))
        _pid = os.getpid()
        trace.configure(settings.log_dir)
    return _context
