"""Commit versions and the timekeeper (time <-> version map).

Versions behave like FDB's: int64, about 1,000,000 per second of wall time, strictly increasing per
commit. A restart is a recovery: the first version jumps ahead of the last persisted one by at least
``MAX_VERSIONS_IN_FLIGHT`` (100,000,000) or by the wall time that passed while the server was down,
whichever is larger, so versions never go backwards and stay roughly proportional to time.

The timekeeper keeps about one (unix second, version) entry per second, like FDB's
``\\xff\\x02/timeKeeper/map/``, so a restore ``--timestamp`` can be turned into a version.
"""

from __future__ import annotations

import struct
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable

from fdbcore import errors

VERSIONS_PER_SECOND = 1_000_000
#: FDB's ``MAX_VERSIONS_IN_FLIGHT``: how far a recovery moves the version forward.
RECOVERY_VERSION_JUMP = 100_000_000

_VERSION_RECORD = struct.Struct(">qd")  # last committed version, unix time of that commit


def encode_version_record(version: int, wall: float) -> bytes:
    return _VERSION_RECORD.pack(version, wall)


def decode_version_record(data: bytes) -> tuple[int, float]:
    version, wall = _VERSION_RECORD.unpack(data)
    return int(version), float(wall)


class VersionClock:
    """Hands out commit versions; the caller serializes commits and reports each one."""

    def __init__(
        self,
        last_version: int,
        last_wall: float | None,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        downtime = max(0.0, wall() - last_wall) if last_wall is not None else 0.0
        #: The recovery version: the first version this run commits. Nothing older is readable.
        self.start_version = last_version + max(RECOVERY_VERSION_JUMP, int(downtime * VERSIONS_PER_SECOND))
        self._monotonic = monotonic
        self._t0 = monotonic()
        self.last_committed = last_version

    def next_version(self) -> int:
        """The version for the next commit: the clock's, or one past the last if commits outran it."""
        clock = self.start_version + int((self._monotonic() - self._t0) * VERSIONS_PER_SECOND)
        return max(self.last_committed + 1, clock)

    def committed(self, version: int) -> None:
        if version <= self.last_committed:
            raise errors.InternalError(f"version {version} does not advance past {self.last_committed}")
        self.last_committed = version


# --- timekeeper -----------------------------------------------------------------------------------

TIMEKEEPER_PREFIX = b"tk/"
_SECOND = struct.Struct(">q")


def timekeeper_key(second: int) -> bytes:
    return TIMEKEEPER_PREFIX + _SECOND.pack(second)


class Timekeeper:
    """An in-memory copy of the persisted (second -> version) entries, for lookups and for pacing."""

    def __init__(self, entries: Iterable[tuple[bytes, bytes]], max_age_seconds: int) -> None:
        self._seconds = array("q")
        self._versions = array("q")
        for key, value in entries:
            self._seconds.append(_SECOND.unpack(key[len(TIMEKEEPER_PREFIX) :])[0])
            self._versions.append(_SECOND.unpack(value)[0])
        self._max_age = max_age_seconds

    def entry_due(self, wall: float) -> int | None:
        """The second to record for a commit at ``wall``, or ``None`` if this second already has one."""
        second = int(wall)
        if self._seconds and second <= self._seconds[-1]:
            return None
        return second

    def recorded(self, second: int, version: int) -> None:
        self._seconds.append(second)
        self._versions.append(version)

    def expired_before(self, wall: float) -> int | None:
        """The second before which entries have aged out, or ``None`` when none have."""
        if not self._seconds:
            return None
        cutoff = int(wall) - self._max_age
        return cutoff if self._seconds[0] < cutoff else None

    def forget_before(self, second: int) -> None:
        stale = bisect_left(self._seconds, second)
        del self._seconds[:stale]
        del self._versions[:stale]

    def version_at_time(self, unix_time: float) -> int:
        """FDB's ``timeKeeperVersionFromDatetime``: the last entry before ``unix_time`` (or the first
        after it), moved by the time difference at 1,000,000 versions per second."""
        if not self._seconds:
            raise errors.BackupError("the timekeeper has no entries to turn a time into a version")
        t = int(unix_time)
        i = bisect_left(self._seconds, t) - 1
        if i < 0:
            i = 0
        return max(0, self._versions[i] + (t - self._seconds[i]) * VERSIONS_PER_SECOND)

    def time_at_version(self, version: int) -> int | None:
        """FDB's ``timeKeeperEpochsFromVersion``: the entry with the last version <= ``version`` (or the
        first entry), moved by the version difference; ``None`` without entries."""
        if not self._seconds:
            return None
        i = bisect_right(self._versions, version) - 1
        if i < 0:
            i = 0
        return int(self._seconds[i] + (version - self._versions[i]) // VERSIONS_PER_SECOND)

    def summary(self) -> dict[str, int]:
        if not self._seconds:
            return {"entries": 0}
        return {
            "entries": len(self._seconds),
            "first_time": self._seconds[0],
            "first_version": self._versions[0],
            "last_time": self._seconds[-1],
            "last_version": self._versions[-1],
        }
