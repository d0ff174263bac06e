"""One retry policy for every task: FDB's "retry forever" for transient errors.

The decision is made here and nowhere else. A worker step raises whatever went wrong; a retryable
error (``FDBError.retryable``: connection loss, timeouts, ``transaction_too_old``, throttling
surfaced by the container, ...) schedules the task again, without limit, with exponential backoff
and full jitter capped at ``retry_backoff_max`` — far below the broker's visibility timeout, so a
retry's countdown never outlives its message. Any other error goes to the step's failure handler,
which records it in the job (failing the backup or restore as policy says); without a handler it
propagates and fails the task.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar, overload

from celery import Task

from config import get_settings
from fdbcore.errors import FDBError, ensure_fdb_error

T = TypeVar("T")
F = TypeVar("F")


def backoff(retries: int, cap: float) -> float:
    return random.uniform(0, min(cap, 0.5 * 2**retries))


@overload
def run(task: Task[Any, Any], fn: Callable[..., T], *args: Any) -> T: ...


@overload
def run(task: Task[Any, Any], fn: Callable[..., T], *args: Any, on_failure: Callable[[FDBError], F]) -> T | F: ...


def run(
    task: Task[Any, Any], fn: Callable[..., T], *args: Any, on_failure: Callable[[FDBError], F] | None = None
) -> T | F:
    """Call ``fn(*args)``; on a retryable error schedule this task again, on any other error return
    ``on_failure(error)`` (or let it propagate when there is no handler)."""
    try:
        return fn(*args)
    except Exception as raised:
        exc = ensure_fdb_error(raised)
        if exc.retryable:
            cap = get_settings().retry_backoff_max
            raise task.retry(exc=exc, countdown=backoff(task.request.retries, cap)) from raised
        if on_failure is None:
            raise
        return on_failure(exc)
