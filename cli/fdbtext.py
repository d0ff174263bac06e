"""FDB's human-readable text helpers, so our output reads exactly like ``fdbbackup``'s.

Each function mirrors one in FDB (``flow/include/flow/Util.h``, ``fdbclient/FileBackupAgent.cpp``,
``BackupAgentBase::formatTime``); the names say which.
"""

from __future__ import annotations

import time


def format_bytes_human(n: int) -> str:
    """``formatBytesHumanReadable``: binary units, two decimals, plain bytes below 1 KB."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} bytes"


def format_duration_human(seconds: int) -> str:
    """``formatDurationHumanReadable``."""
    if seconds >= 3600:
        hours, mins = seconds // 3600, (seconds % 3600) // 60
        return f"{hours} hours {mins} minutes" if mins else f"{hours} hours"
    if seconds >= 60:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def format_bytes_progress(done: int, total: int | None) -> str:
    """``formatBytesProgress``: ``done (human) / total (human)``."""
    text = f"{done} ({format_bytes_human(done)})"
    if total is not None:
        text += f" / {total} ({format_bytes_human(total)})"
    return text


def seconds_to_time_format(seconds: int) -> str:
    """``secondsToTimeFormat`` used in the error list of ``fdbbackup status``."""
    if seconds >= 86400:
        return f"{seconds / 86400:.2f} day(s)"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} hour(s)"
    if seconds >= 60:
        return f"{seconds / 60:.2f} minute(s)"
    return f"{seconds} second(s)"


def format_time(epoch: float | None) -> str:
    """``BackupAgentBase::formatTime``: local time as ``%Y/%m/%d.%H:%M:%S%z``; ``N/A`` when unknown."""
    if epoch is None:
        return "N/A"
    return time.strftime("%Y/%m/%d.%H:%M:%S%z", time.localtime(epoch))


def version_to_string(version: int | None) -> str:
    return "N/A" if version is None else str(version)
