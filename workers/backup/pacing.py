"""Spreading one range-file snapshot over its interval, the way FDB's snapshot dispatcher does.

FDB (``BackupSnapshotDispatchTask``) gives each snapshot a target end version, ``interval`` seconds
after its begin, and every time its dispatcher wakes it sends enough shard tasks that the share of
shards sent matches the share of the interval gone by (``countAllShards * timeElapsed``); an
interval of 0 (the default first snapshot) sends everything at once. Here the backup's log chain is
the dispatcher: every round (``FDBBR_LOG_FLUSH_INTERVAL`` seconds) it sends the tasks that are due,
task ``i`` of ``n`` becoming due ``interval * i / n`` seconds after the snapshot began, so the first
goes at once and the last after ``(n - 1) / n`` of the interval.
"""

from __future__ import annotations

import math


def tasks_due(total: int, elapsed: float, interval: float) -> int:
    """How many of a snapshot's ``total`` tasks should have been sent ``elapsed`` seconds in."""
    if total <= 0:
        return 0
    if interval <= 0 or elapsed >= interval:
        return total
    return min(total, max(1, math.floor(total * max(elapsed, 0.0) / interval) + 1))


def progress_pct(elapsed: float, interval: float) -> float:
    """FDB's ``Progress:`` figure: the share of the snapshot's interval gone by (may pass 100)."""
    return 100.0 if interval <= 0 else 100.0 * elapsed / interval
