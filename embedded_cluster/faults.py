"""Fault hooks for tests: make BulkDump, BulkLoad or a range lock of a chosen range fail or stall a
number of times.

Off unless the server runs with ``--knob_enable_fault_injection=1``. A fault matches any task whose
range intersects the fault's range (a BulkLoad's destination range); each match uses up one of its
``times``, after which calls behave again. The bulk operations ask :meth:`FaultRegistry.take` before
working on a range and act on the answer (:func:`~embedded_cluster.bulk.act_on_fault`):

- ``fail``: the call fails with ``bulkdump_task_failed`` (1243) or ``bulkload_task_failed`` (1238)
  before it touches data (a BulkLoad already holds its range lock, and releases it);
- ``stall``: the call sleeps ``stall_seconds`` (0: until its caller's deadline passes or the caller
  goes away), then does its work; a BulkLoad stalls holding its range lock.

``lock_range`` faults hold or refuse a client's range lock (``range_lock_failed``, 1241) the same way,
so a test can catch a restore at the moment it takes its destination.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from fdbcore import errors
from fdbcore.keys import KeyRange

OPERATIONS = ("bulk_dump", "bulk_load", "lock_range")
ACTIONS = ("fail", "stall")


@dataclass(frozen=True, slots=True)
class Fault:
    operation: str
    range: KeyRange
    action: str
    times: int
    stall_seconds: float = 0.0

    def public(self) -> dict[str, object]:
        return {
            "operation": self.operation,
            "range": [self.range.begin.hex(), self.range.end.hex()],
            "action": self.action,
            "times": self.times,
            "stall_seconds": self.stall_seconds,
        }


class FaultRegistry:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(self, fault: Fault) -> None:
        if not self.enabled:
            raise errors.ClientInvalidOperation(
                "fault injection is off; start the server with --knob_enable_fault_injection=1"
            )
        if fault.operation not in OPERATIONS or fault.action not in ACTIONS:
            raise errors.InvalidOptionValue(
                f"fault needs an operation in {OPERATIONS} and an action in {ACTIONS}, "
                f"not {fault.operation!r}/{fault.action!r}"
            )
        if fault.times <= 0 or fault.stall_seconds < 0:
            raise errors.InvalidOptionValue("a fault needs times > 0 and stall_seconds >= 0")
        with self._lock:
            self._faults.append(fault)

    def take(self, operation: str, range: KeyRange) -> Fault | None:
        """The first armed fault for ``operation`` on a range intersecting ``range``, used up once."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.operation == operation and fault.range.intersects(range):
                    if fault.times == 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = replace(fault, times=fault.times - 1)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def public(self) -> list[dict[str, object]]:
        with self._lock:
            return [f.public() for f in self._faults]
