"""Server knobs of the embedded cluster, given as ``--knob_NAME=VALUE`` like ``fdbserver``'s.

Names are normalized to lowercase with underscores (``--knob-Shard-Count 8`` and
``--knob_shard_count=8`` are the same knob). Every knob is an integer; booleans are 0/1 and also
accept ``true``/``false``. Unknown names are refused, so a misspelt knob cannot silently do nothing.

Two knobs carry FDB's own names and meaning: ``shard_encode_location_metadata`` and
``enable_read_lock_on_range`` (both 0 by default, both required by BulkLoad), and
``max_read_transaction_life_versions`` is FDB's MVCC window. The rest are this stand-in's own.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fdbcore import errors

MIB = 1 << 20


def _knob(default: int, doc: str) -> int:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class Knobs:
    """The knob values a server runs with (defaults unless overridden on the command line)."""

    max_read_transaction_life_versions: int = _knob(
        5_000_000, "MVCC window in versions: reads and read-conflict checks older than this fail (FDB knob)"
    )
    shard_count: int = _knob(4, "number of user-key shards a new data directory starts with")
    shard_target_bytes: int = _knob(32 * MIB, "a shard larger than this is split at its byte midpoint")
    commit_fsync: int = _knob(
        0,
        "1: fsync the WAL on every commit (survives power loss); 0: a commit is in the OS page cache "
        "when acknowledged, which survives a crash or kill -9 of the server but not of the machine",
    )
    idle_commit_interval_ms: int = _knob(
        100, "when nothing commits for this long, commit an empty batch so versions keep advancing"
    )
    timekeeper_max_age_seconds: int = _knob(7 * 86400, "how long time-to-version entries are kept")
    mvcc_clear_range_keys_max: int = _knob(
        100_000,
        "a clear_range removing more keys does not list them for the MVCC window (which keeps such "
        "commits cheap); reads of that range at older versions then fail with transaction_too_old",
    )
    bulkdump_parallelism: int = _knob(
        0, "worker processes for BulkDump tasks, BulkLoad checks and rewrites, shard digests (0 = one per CPU core)"
    )
    bulkdump_batch_bytes: int = _knob(
        100 * MIB, "BulkDump cuts a batch once its keys and values reach this many bytes (FDB SS_BULKDUMP_BATCH_BYTES)"
    )
    enable_fault_injection: int = _knob(0, "1: accept fault-injection requests (tests only)")
    shard_encode_location_metadata: int = _knob(0, "FDB knob; BulkLoad requires 1")
    enable_read_lock_on_range: int = _knob(0, "FDB knob; BulkLoad requires 1")

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> Knobs:
        known = {f.name for f in dataclasses.fields(cls)}
        parsed: dict[str, int] = {}
        for raw_name, raw_value in values.items():
            name = normalize_name(raw_name)
            if name not in known:
                raise errors.InvalidOption(f"unknown knob {raw_name!r}; known knobs: {', '.join(sorted(known))}")
            parsed[name] = _parse_int(name, raw_value)
        knobs = cls(**parsed)
        knobs.validate()
        return knobs

    def validate(self) -> None:
        positive = ("max_read_transaction_life_versions", "shard_count", "shard_target_bytes", "bulkdump_batch_bytes")
        for name in positive:
            if getattr(self, name) <= 0:
                raise errors.InvalidOptionValue(f"knob {name} must be positive")
        for name in ("idle_commit_interval_ms", "timekeeper_max_age_seconds", "bulkdump_parallelism"):
            if getattr(self, name) < 0:
                raise errors.InvalidOptionValue(f"knob {name} must not be negative")

    def as_strings(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @property
    def worker_processes(self) -> int:
        return self.bulkdump_parallelism or os.cpu_count() or 1

    @staticmethod
    def describe() -> list[tuple[str, int, str]]:
        """(name, default, meaning) of every knob, for ``--help``."""
        return [(f.name, int(f.default), str(f.metadata["doc"])) for f in dataclasses.fields(Knobs)]  # type: ignore[arg-type]


def normalize_name(name: str) -> str:
    """``--knob-Shard-Count`` / ``knob_shard_count`` / ``shard-count`` -> ``shard_count``."""
    name = name.lstrip("-").lower().replace("-", "_")
    return name.removeprefix("knob_")


def _parse_int(name: str, text: str) -> int:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return 1
    if lowered in ("false", "no", "off"):
        return 0
    try:
        return int(lowered.replace("_", ""), 0)
    except ValueError:
        raise errors.InvalidOptionValue(f"knob {name} needs an integer value, not {text!r}") from None


def parse_knob_args(args: Sequence[str]) -> dict[str, str]:
    """Collect ``--knob_NAME=VALUE``, ``--knob_NAME VALUE`` and ``--knob-name[=]VALUE`` arguments."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not (arg.startswith("--knob_") or arg.startswith("--knob-")):
            raise errors.InvalidOption(f"unexpected argument {arg!r} (knobs are given as --knob_NAME=VALUE)")
        if "=" in arg:
            name, value = arg.split("=", 1)
        elif i + 1 < len(args):
            name, value = arg, args[i + 1]
            i += 1
        else:
            raise errors.InvalidOptionValue(f"knob {arg!r} has no value")
        out[normalize_name(name)] = value
        i += 1
    return out
