"""The task layer's policy: which errors are retried, which go to a step's failure handler, and the
Celery settings every deployment relies on (pure logic: the tasks themselves run in the fleet tests)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

import tasks.backup
import tasks.restore
from config import get_settings
from fdbcore import errors
from tasks import retry
from tasks.app import QUEUES, UNACKED_MUTEX_EXPIRE, app, transport_options


class Retried(Exception):
    def __init__(self, countdown: float) -> None:
        self.countdown = countdown


class FakeTask:
    """Only what retry.run touches: ``request.retries`` and ``retry()``."""

    class request:
        retries = 6

    def retry(self, exc: BaseException, countdown: float) -> Retried:
        return Retried(countdown)


def _raise(exc: BaseException) -> None:
    raise exc


def test_retryable_errors_are_retried_with_capped_jittered_backoff() -> None:
    for _ in range(50):
        with pytest.raises(Retried) as caught:
            retry.run(FakeTask(), _raise, errors.TimedOut("slow"), on_failure=pytest.fail)  # type: ignore[arg-type]
        assert 0 <= caught.value.countdown <= min(get_settings().retry_backoff_max, 0.5 * 2**FakeTask.request.retries)


def test_other_errors_go_to_the_handler_as_fdb_errors() -> None:
    seen: list[errors.FDBError] = []
    out = retry.run(FakeTask(), _raise, errors.RestoreCorruptedData("bad"), on_failure=seen.append)  # type: ignore[arg-type]
    assert out is None and seen[0].name == "restore_corrupted_data"
    retry.run(FakeTask(), _raise, KeyError("x"), on_failure=seen.append)  # type: ignore[arg-type]
    assert seen[1].name == "internal_error" and "KeyError" in seen[1].message


def test_without_a_handler_the_error_fails_the_task() -> None:
    with pytest.raises(KeyError):
        retry.run(FakeTask(), _raise, KeyError("x"))  # type: ignore[arg-type]
    assert retry.run(FakeTask(), lambda: 7) == 7  # type: ignore[arg-type]


def test_backoff_grows_to_its_cap() -> None:
    assert max(retry.backoff(0, 100) for _ in range(200)) <= 0.5
    assert max(retry.backoff(20, 3.0) for _ in range(200)) <= 3.0


@pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")  # still what apply_async routes by
def test_every_task_is_named_on_an_explicit_queue_with_redelivery_safe_settings() -> None:
    conf: Any = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_create_missing_queues is False
    assert tasks.backup.start.name == "backup.start" and tasks.restore.start.name == "restore.start"
    ours = {name: task for name, task in app.tasks.items() if name.split(".")[0] in ("backup", "restore")}
    assert len(ours) >= 16
    for name, task in ours.items():
        assert task.queue in QUEUES, f"{name} has no explicit queue"
        assert task.max_retries is None, f"{name} must retry forever"


def test_a_sweep_mutex_left_by_a_killed_worker_expires_soon(redis_url: str) -> None:
    """kombu's redelivery sweep takes a Redis mutex; a worker killed while holding it blocked every
    redelivery for kombu's default 5 minutes. The broker connection must carry the shorter expiry."""
    probe = Celery(broker=f"{redis_url}/0")
    probe.conf.broker_transport_options = transport_options()
    with probe.connection_for_write() as conn:
        channel: Any = conn.default_channel
        assert channel.unacked_mutex_expire == UNACKED_MUTEX_EXPIRE <= 30
