"""A client workload for restores into a live cluster: reads and writes outside the restored ranges.

:class:`Workload` runs in a thread at a fixed rate of operations (point reads, short range reads,
sets, clears) on keys under its own prefix, keeps a model of what it wrote, and checks every read
against it, so "the other ranges kept serving" is checked key by key, not assumed. It records each
operation's latency (from the moment it was due, so a stall counts for every operation it delays) and
every error, per phase (``before``, ``during``, ``after``, as the caller sets :attr:`Workload.phase`).
An error is also filed under every phase its operation overlapped: a read whose version was taken
just before the server was killed fails after the restart, and that failure belongs to the outage.

A write whose outcome is unknown (the connection broke during the commit, e.g. the server was
killed) leaves the key with two possible values until a read settles it.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fdbcore import errors
from fdbcore.cluster import connect
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.keys import KeyRange, key_after, strinc
from fdbcore.mutations import clear, set_value

_ABSENT = None


@dataclass
class PhaseStats:
    latencies: list[float] = field(default_factory=list)
    #: When each operation was due (unix time), to place it among a restore's own phases.
    due: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency in seconds (0 without operations)."""
        return percentile(self.latencies, p)

    def between(self, begin: float, end: float) -> list[float]:
        """Latencies of the operations due in ``[begin, end)`` (unix time)."""
        return [lat for at, lat in zip(self.due, self.latencies, strict=True) if begin <= at < end]


def percentile(latencies: Sequence[float], p: float) -> float:
    if not latencies:
        return 0.0
    if len(latencies) == 1:
        return latencies[0]
    return statistics.quantiles(latencies, n=1000, method="inclusive")[max(0, int(p * 10) - 1)]


class Workload:
    """Fixed-rate reads and writes on ``keys`` keys under ``prefix``, checked against a model."""

    def __init__(self, cluster_file: Path, prefix: bytes, *, keys: int = 500, rate: float = 200.0, seed: int = 1):
        self.cluster_file = cluster_file
        self.prefix = prefix
        self.keys = keys
        self.rate = rate
        self.rng = random.Random(seed)
        #: Every phase set so far, in order; the last is the current one.
        self._phases = ["before"]
        #: Every error, with the phases its operation overlapped.
        self._failures: list[tuple[tuple[str, ...], str]] = []
        self.stats: dict[str, PhaseStats] = {}
        #: Every value a key may hold now: one when known, two after a commit of unknown outcome.
        self.model: dict[bytes, set[bytes | None]] = {}
        self.mismatches: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._driver: ClusterDriver | None = None

    @property
    def phase(self) -> str:
        return self._phases[-1]

    @phase.setter
    def phase(self, name: str) -> None:
        self._phases.append(name)

    @property
    def range(self) -> KeyRange:
        return KeyRange(self.prefix, strinc(self.prefix))

    def key(self, i: int) -> bytes:
        return self.prefix + b"%06d" % i

    def fill(self) -> None:
        """Write every key once (the model starts known)."""
        driver = connect(self.cluster_file)
        try:
            batch = [set_value(self.key(i), self.rng.randbytes(32)) for i in range(self.keys)]
            driver.commit(batch)
            for m in batch:
                self.model[m.param1] = {m.param2}
        finally:
            driver.close()

    def start(self) -> Workload:
        if not self.model:
            self.fill()
        self._thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive(), "the workload thread did not stop"

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the operations ---------------------------------------------------------------------------

    def _run(self) -> None:
        self._driver = connect(self.cluster_file)
        try:
            due = time.monotonic()
            while not self._stop.is_set():
                due += 1 / self.rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                first = len(self._phases) - 1
                stats = self.stats.setdefault(self._phases[first], PhaseStats())
                try:
                    self._one(self._driver)
                except errors.FDBError as exc:
                    error = f"{exc.name} ({exc.code}): {exc.message}"
                    stats.errors.append(error)
                    self._failures.append((tuple(self._phases[first:]), error))
                now = time.monotonic()
                stats.latencies.append(now - due)
                stats.due.append(time.time() - (now - due))
        finally:
            self._driver.close()

    def _one(self, driver: ClusterDriver) -> None:
        roll = self.rng.random()
        i = self.rng.randrange(self.keys)
        if roll < 0.4:
            self._check(self.key(i), driver.get(self.key(i), driver.get_read_version()))
        elif roll < 0.55:
            begin, end = self.key(i), self.key(i + 8)
            got = dict(driver.get_range(begin, end, driver.get_read_version()).kvs)
            for k in sorted(k for k in self.model if begin <= k < end):
                self._check(k, got.get(k))
        else:
            key = self.key(i)
            value = self.rng.randbytes(32) if roll < 0.9 else _ABSENT
            mutation = set_value(key, value) if value is not None else clear(key)
            try:
                driver.commit([mutation])
            except (errors.CommitUnknownResult, errors.ConnectionFailed):
                self.model[key] = self.model[key] | {value}
                raise
            self.model[key] = {value}

    def _check(self, key: bytes, value: bytes | None) -> None:
        possible = self.model[key]
        if value not in possible:
            self.mismatches.append(f"{key!r}: read {value!r}, the workload wrote {possible!r}")
        else:
            self.model[key] = {value}

    # --- results ----------------------------------------------------------------------------------

    def errors(self, phases: Sequence[str] | None = None) -> list[str]:
        """Errors of the operations that overlapped any of ``phases`` (all errors without)."""
        return [e for spanned, e in self._failures if phases is None or set(spanned) & set(phases)]

    def check_final(self, driver: ClusterDriver) -> None:
        """The workload's keys hold what it wrote (every read agreed, too); it did some of each op."""
        assert not self.mismatches, self.mismatches[:5]
        got = dict(read_range(driver, self.range))
        for key, possible in self.model.items():
            assert got.get(key) in possible, f"{key!r} holds {got.get(key)!r}; the workload wrote {possible!r}"
        assert set(got) <= set(self.model), "keys the workload never wrote appeared under its prefix"
        assert sum(len(s.latencies) for s in self.stats.values()) > 20, "the workload barely ran"


def read_range(driver: ClusterDriver, r: KeyRange, version: int | None = None) -> list[tuple[bytes, bytes]]:
    """All pairs of ``r``: at ``version``, or chunk by chunk at the newest version."""
    out: list[tuple[bytes, bytes]] = []
    begin = r.begin
    while True:
        at = version if version is not None else driver.get_read_version()
        chunk = driver.get_range(begin, r.end, at, limit_bytes=1 << 20)
        out += chunk.kvs
        if not chunk.more:
            return out
        begin = key_after(chunk.kvs[-1][0])
