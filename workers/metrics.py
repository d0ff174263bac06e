"""Prometheus metrics of the fleet: every series an operator needs to watch backup and restore.

Celery's prefork pool runs tasks in child processes, so the metrics use prometheus_client's
multiprocess mode: each process writes to ``PROMETHEUS_MULTIPROC_DIR`` (set by the launcher, wiped at
fleet start) and the worker's main process serves the merged view on ``FDBBR_METRICS_PORT``.
Without that directory the metrics still work, per process, which is what tests of the service
layer see.

The design's key metrics map to series as follows (PromQL in ``docs/monitoring.md``):

- BulkDump completion rate: ``fdbbr_bulkdump_snapshots_total{outcome}``
- BulkLoad success rate: ``fdbbr_bulkload_restores_total{outcome}``
- fallback usage: ``fdbbr_fallback_total{side}``
- throughput by method: ``fdbbr_snapshot_throughput_bytes_per_second{operation, method}``
- dual-dataset size overhead: ``fdbbr_dual_dataset_overhead_ratio``
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

BYTES_WRITTEN = Counter("fdbbr_bytes_written", "Bytes written, by phase.", ["phase"])
BYTES_READ = Counter("fdbbr_bytes_read", "Bytes read, by phase.", ["phase"])
FILES_WRITTEN = Counter("fdbbr_files_written", "Files written to backup containers, by phase.", ["phase"])
FILES_READ = Counter("fdbbr_files_read", "Files read from backup containers, by phase.", ["phase"])
TASK_RETRIES = Counter("fdbbr_task_retries", "Task retries, by task name.", ["task"])
TASK_FAILURES = Counter("fdbbr_task_failures", "Tasks that failed for good, by task name.", ["task"])
BULKDUMP_SNAPSHOTS = Counter(
    "fdbbr_bulkdump_snapshots", "BulkDump snapshots of backups, by outcome (complete, failed, timed_out).", ["outcome"]
)
BULKLOAD_RESTORES = Counter(
    "fdbbr_bulkload_restores", "Snapshot phases of BulkLoad restores, by outcome (complete, failed).", ["outcome"]
)
FALLBACKS = Counter(
    "fdbbr_fallback",
    "Range-file fallbacks: a backup in mode both whose BulkDump failed (side=backup); a range-file restore "
    "that completed for a backup whose BulkLoad restore had failed (side=restore).",
    ["side"],
)
THROUGHPUT = Gauge(
    "fdbbr_snapshot_throughput_bytes_per_second",
    "Throughput of the most recent snapshot phase, by operation (backup, restore) and method.",
    ["operation", "method"],
    multiprocess_mode="mostrecent",
)
DUAL_OVERHEAD = Gauge(
    "fdbbr_dual_dataset_overhead_ratio",
    "Bytes of a mode-both backup's two snapshots over the range-file snapshot alone (latest backup).",
    multiprocess_mode="mostrecent",
)


def observe_throughput(operation: str, method: str, nbytes: int, seconds: float) -> None:
    if seconds > 0:
        THROUGHPUT.labels(operation, method).set(nbytes / seconds)


def serve(port: int, address: str) -> None:
    """Serve ``/metrics`` with every pool process's values merged (when in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        start_http_server(port, addr=address, registry=registry)
    else:
        start_http_server(port, addr=address)
