"""Spreading one range-file snapshot over its interval, the way FDB's snapshot dispatcher does.

FDB (``BackupSnapshotDispatchTask``) gives each snapshot a target end version, ``interval`` seconds
after its begin, and every time its dispatcher wakes it sends enough shard tasks that, by its next
wake-up, the share of shards sent matches the share of the interval gone by
(``countAllShards * (nextDispatchVersion - begin) / (targetEnd - begin)``); an interval of 0 (the
default first snapshot) sends everything at once. Here the backup's log chain is the dispatcher:
every round (``FDBBR_LOG_FLUSH_INTERVAL`` seconds, the ``window`` to the next wake-up) it sends the
tasks that are due, task ``i`` of ``n`` becoming due one window before ``interval * (i + 1) / n``
seconds into the snapshot, so the last is sent one window before the interval ends.
"""

from __future__ import annotations

import math


def tasks_due(total: int, elapsed: float, interval: float, window: float) -> int:
    """How many of a snapshot's ``total`` tasks should have been sent ``elapsed`` seconds in, when the
    dispatcher wakes again ``window`` seconds later."""
    if total <= 0:
        return 0
    if interval <= 0:
        return total
    return max(0, min(total, math.floor(total * (max(elapsed, 0.0) + window) / interval)))


def progress_pct(elapsed: float, interval: float) -> float:
    """FDB's ``Progress:`` figure: the share of the snapshot's interval gone by (may pass 100)."""
    return 100.0 if interval <= 0 else 100.0 * elapsed / interval
