"""Mutation-log captures: what FDB's TLogs and backup workers give a backup.

A capture is registered for key ranges at a version V0; from then on every commit's mutations that
touch those ranges are retained, in the same RocksDB write batch as the commit itself, until the
consumer pops them. Mutations are retained as the commit proxy would log them: atomic ops stay atomic
ops, versionstamped ops are already resolved to ``SetValue``, and clears are clipped to the capture's
ranges.

Storage layout (column family ``mlog``): one entry per (capture, commit version),
``<capture id> \\x00 <8-byte big-endian version>`` -> msgpack ``[types, params1, params2]`` of that
commit's captured mutations. The subsequence of a mutation is its index in that list. Keeping a
commit's mutations in one entry makes logging one write per commit and keeps every read of the log
on a version boundary, which the ``end_version`` contract needs. Capture metadata lives in ``meta``
under ``capture/<id>``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from embedded_cluster.wire import Columns, pack, unpack
from fdbcore import errors
from fdbcore.keys import KeyRange, normalize_ranges
from fdbcore.mutations import MutationType

CAPTURE_PREFIX = b"capture/"
_VERSION = struct.Struct(">q")


def check_capture_id(capture_id: str) -> bytes:
    encoded = capture_id.encode()
    if not encoded or len(encoded) > 200 or not capture_id.isprintable() or "\x00" in capture_id:
        raise errors.InvalidOptionValue(f"capture id {capture_id!r} must be 1-200 printable characters")
    return encoded


def log_prefix(capture_id: str) -> bytes:
    return check_capture_id(capture_id) + b"\x00"


def log_key(capture_id: str, version: int) -> bytes:
    return log_prefix(capture_id) + _VERSION.pack(version)


def version_of_log_key(key: bytes) -> int:
    return int(_VERSION.unpack(key[-8:])[0])


@dataclass(slots=True)
class Capture:
    id: str
    ranges: list[KeyRange]
    begin_version: int
    #: Entries below this version were popped.
    popped_version: int = 0

    def meta_key(self) -> bytes:
        return CAPTURE_PREFIX + check_capture_id(self.id)

    def encode(self) -> bytes:
        ranges = [[r.begin, r.end] for r in self.ranges]
        return pack([ranges, self.begin_version, self.popped_version])

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> Capture:
        ranges, begin_version, popped = unpack(value)
        return cls(key[len(CAPTURE_PREFIX) :].decode(), [KeyRange(b, e) for b, e in ranges], begin_version, popped)

    @classmethod
    def new(cls, capture_id: str, ranges: Sequence[KeyRange], begin_version: int) -> Capture:
        check_capture_id(capture_id)
        merged = normalize_ranges(ranges)
        if not merged:
            raise errors.InvalidOptionValue(f"capture {capture_id!r} needs at least one non-empty range")
        return cls(capture_id, merged, begin_version)

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ranges": [[r.begin.hex(), r.end.hex()] for r in self.ranges],
            "begin_version": self.begin_version,
            "popped_version": self.popped_version,
        }

    def select(self, columns: Columns, span: tuple[bytes, bytes]) -> Columns:
        """The part of a commit's mutations this capture retains (clears clipped to its ranges).

        ``span`` is the smallest range holding every key the commit touches; when one of the capture's
        ranges contains it, the whole commit is retained without looking at each mutation.
        """
        types, p1s, p2s = columns
        lo, hi = span
        if any(r.begin <= lo and hi <= r.end for r in self.ranges):
            return columns
        out_t: list[int] = []
        out_1: list[bytes] = []
        out_2: list[bytes] = []
        for t, a, b in zip(types, p1s, p2s, strict=True):
            if t == MutationType.CLEAR_RANGE:
                for r in self.ranges:
                    begin, end = max(a, r.begin), min(b, r.end)
                    if begin < end:
                        out_t.append(t)
                        out_1.append(begin)
                        out_2.append(end)
            elif any(r.begin <= a < r.end for r in self.ranges):
                out_t.append(t)
                out_1.append(a)
                out_2.append(b)
        return out_t, out_1, out_2


def encode_entry(columns: Columns) -> bytes:
    return pack(columns)


def decode_entry(blob: bytes) -> Columns:
    types, p1s, p2s = unpack(blob)
    return types, p1s, p2s
