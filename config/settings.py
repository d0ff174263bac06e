"""Fleet settings, read once from the environment.

Precedence is defaults < environment. Every process of the fleet (CLIs, workers, Flower) reads the
same variables, so one ``deploy/`` environment file configures them all. Nothing secret lives here:
S3 credentials come from FDB's blob-credentials files (``FDB_BLOB_CREDENTIALS``) or boto3's chain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

ENV_PREFIX = "FDBBR_"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {ENV_PREFIX}{name}={raw!r} is not an integer") from None


def _redis_db(url: str, db: int) -> str:
    """``redis://host:port`` plus a database number, replacing any number already there."""
    base, _, tail = url.rstrip("/").rpartition("/")
    if base.startswith("redis") and tail.isdigit():
        url = base
    return f"{url.rstrip('/')}/{db}"


@dataclass(frozen=True)
class Settings:
    #: Redis server holding the broker (db 0), task results (db 1) and backup/restore state (db 2).
    redis_url: str = "redis://127.0.0.1:6379"
    #: Seconds before an unacknowledged task is redelivered; must exceed the longest task.
    visibility_timeout: int = 2 * 3600
    #: Hard limit for one task; tasks are chunked to stay far below it.
    task_time_limit: int = 3600
    #: How long chord bookkeeping lives; must exceed the longest snapshot (else the callback never runs).
    chord_expires: int = 30 * 24 * 3600
    #: How long task results are kept.
    result_expires: int = 7 * 24 * 3600
    #: Upper bound of the exponential retry backoff, in seconds (kept far below the visibility timeout).
    retry_backoff_max: int = 60
    #: Seconds between two rounds of the mutation-log capture task.
    log_flush_interval: float = 2.0
    #: Default deadline for a backup's BulkDump, in seconds (FDB's BULKDUMP_JOB_TIMEOUT).
    bulkdump_deadline: int = 86400
    #: Directory for JSON-lines trace events ("" = no trace files).
    log_dir: str = ""
    #: Seconds between the broker's sweeps for unacknowledged tasks of dead workers (0 = kombu's
    #: default of 10 s x 10). A killed worker's task runs again after visibility_timeout + one sweep.
    redelivery_sweep: int = 0
    #: Re-read and hash every BulkDump SST at backup time. Off: the backup checks each batch's manifest
    #: (with the SHA-256 the cluster recorded while writing) and its data file's size; every BulkLoad
    #: restore hashes all data files before it touches the destination either way.
    verify_dump_content: bool = False
    #: Port of a worker's Prometheus ``/metrics`` endpoint (0 = none) and the address it listens on.
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"

    @property
    def soft_time_limit(self) -> int:
        """When a task is asked to stop: a tenth (at most 60 s) before it is killed."""
        return max(1, self.task_time_limit - max(1, min(60, self.task_time_limit // 10)))

    @property
    def broker_url(self) -> str:
        return os.environ.get(ENV_PREFIX + "BROKER_URL") or _redis_db(self.redis_url, 0)

    @property
    def result_backend(self) -> str:
        return os.environ.get(ENV_PREFIX + "RESULT_BACKEND") or _redis_db(self.redis_url, 1)

    @property
    def state_url(self) -> str:
        return os.environ.get(ENV_PREFIX + "STATE_URL") or _redis_db(self.redis_url, 2)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests start new processes to change them)."""
    return Settings(
        redis_url=_env("REDIS_URL", Settings.redis_url),
        visibility_timeout=_env_int("VISIBILITY_TIMEOUT", Settings.visibility_timeout),
        task_time_limit=_env_int("TASK_TIME_LIMIT", Settings.task_time_limit),
        chord_expires=_env_int("CHORD_EXPIRES", Settings.chord_expires),
        result_expires=_env_int("RESULT_EXPIRES", Settings.result_expires),
        retry_backoff_max=_env_int("RETRY_BACKOFF_MAX", Settings.retry_backoff_max),
        log_flush_interval=float(_env("LOG_FLUSH_INTERVAL", str(Settings.log_flush_interval))),
        bulkdump_deadline=_env_int("BULKDUMP_DEADLINE", Settings.bulkdump_deadline),
        log_dir=_env("LOG_DIR", ""),
        redelivery_sweep=_env_int("REDELIVERY_SWEEP", 0),
        verify_dump_content=_env_int("VERIFY_DUMP_CONTENT", 0) == 1,
        metrics_port=_env_int("METRICS_PORT", 0),
        metrics_address=_env("METRICS_ADDRESS", Settings.metrics_address),
    )
