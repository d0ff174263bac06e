"""One retry policy for every task: FDB's "retry forever" for transient errors.

Retryable errors (``FDBError.retryable``: connection loss, timeouts, ``transaction_too_old``,
throttling surfaced by the container, ...) are retried without limit, with exponential backoff and
full jitter capped at ``retry_backoff_max`` — far below the broker's visibility timeout, so a retry's
countdown never outlives its message. Anything else propagates and fails the task.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task

from config import get_settings
from fdbcore.errors import FDBError

T = TypeVar("T")


def backoff(retries: int, cap: float) -> float:
    return random.uniform(0, min(cap, 0.5 * 2**retries))


def run(task: Task[Any, Any], fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)``; on a retryable error, schedule this task again and stop."""
    try:
        return fn(*args)
    except FDBError as exc:
        if not exc.retryable:
            raise
        cap = get_settings().retry_backoff_max
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, cap)) from exc
