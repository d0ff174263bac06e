"""The Celery application: the backup agent's TaskBucket.

Configured for long, redeliverable I/O tasks (ecosystem notes §1.4): late acks with
reject-on-worker-lost (a killed worker's task runs again), prefetch 1, a visibility timeout above
the longest task, chord bookkeeping that outlives the longest snapshot, JSON only, explicit task
names and queues, and time limits. Every task is idempotent because any of them may run twice.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task, signals
from kombu import Queue

from config import get_settings
from workers import metrics

#: One queue per kind of work, so deployments can size worker pools per role.
QUEUES = (
    "backup",  # control: start, snapshot dispatch, finish steps
    "bulkdump",  # per-shard BulkDump requests (the cluster does the work)
    "rangefile",  # range-file snapshot tasks (CPU and I/O in the worker)
    "mutationlog",  # the event-driven mutation-log capture chain
    "restore",  # control: plan, verify, prerequisites, finish
    "bulkload",  # per-shard BulkLoad requests
    "replay",  # range-file restore and log-partition replay
)


class FleetTask(Task):  # type: ignore[type-arg]
    """Base of every fleet task: no retry limit (FDB's "retry forever"; ``retry(max_retries=None)``
    alone means "use the task's limit", which Celery defaults to 3)."""

    max_retries = None


#: Seconds kombu's redelivery sweep holds its Redis mutex at most. A worker killed during a sweep
#: leaves the mutex held until it expires, and kombu's default (5 minutes) held up every redelivery
#: that long (a fault test's restore waited out its whole timeout); a sweep takes milliseconds.
UNACKED_MUTEX_EXPIRE = 30


def transport_options() -> dict[str, int]:
    s = get_settings()
    opts = {"visibility_timeout": s.visibility_timeout, "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE}
    if s.redelivery_sweep:
        opts.update(unacked_restore_interval=s.redelivery_sweep, unacked_restore_throttle=1)
    return opts


def make_app() -> Celery[FleetTask]:
    s = get_settings()
    app = Celery(
        "fdbbr",
        broker=s.broker_url,
        backend=s.result_backend,
        include=["tasks.backup", "tasks.restore"],
        task_cls=FleetTask,
    )
    app.conf.update(
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="backup",
        task_create_missing_queues=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(),
        result_backend_transport_options={"visibility_timeout": s.visibility_timeout},
        result_expires=s.result_expires,
        result_chord_expires=s.chord_expires,
        task_soft_time_limit=s.soft_time_limit,
        task_time_limit=s.task_time_limit,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app


app = make_app()


@signals.worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """The worker's main process serves the pool's merged metrics (see :mod:`workers.metrics`)."""
    s = get_settings()
    if s.metrics_port:
        metrics.serve(s.metrics_port, s.metrics_address)


@signals.task_retry.connect
def _count_retry(sender: Any = None, **_: Any) -> None:
    metrics.TASK_RETRIES.labels(getattr(sender, "name", "unknown")).inc()


@signals.task_failure.connect
def _count_failure(sender: Any = None, **_: Any) -> None:
    metrics.TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()
