"""Whole partitioned-log blocks turned into encoded mutations without a Python step per record.

Log replay reads millions of records, and most blocks hold records of one layout: the same record
length, key length and value length (a workload's keys and values are often of fixed size). Such a
block is a matrix, one row per record, so numpy slices out every field at once and builds the
msgpack columns of :class:`~fdbcore.encoded_mutations.EncodedMutations` directly from the block's
bytes. :func:`uniform_block` does that, or returns ``None`` for any block it cannot take whole (mixed
layouts, checksummed or compact records, anything malformed), which the caller then decodes record by
record with :func:`~fdbcore.formats.partitioned_log.decode_partitioned_log_block`, the reference
decoder that also names every error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fdbcore.encoded_mutations import EncodedMutations, bin_header
from fdbcore.formats.framing import PAD, PARTITIONED_LOG_VERSION
from fdbcore.formats.partitioned_log import LogMutation, decode_partitioned_log_block
from fdbcore.mutations import MutationType

_HEADER = struct.Struct("<I")
_U32_BE = struct.Struct(">I")
_U32_LE = struct.Struct("<I")
#: A record: BE int64 version, BE uint32 subsequence, BE uint32 message length, then the message:
#: type byte, LE uint32 param1 length, param1, LE uint32 param2 length, param2.
_RECORD_HEAD = 16
_MESSAGE_MIN = 9
Matrix = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class UniformBlock:
    """A block whose records share one layout, as encoded mutations plus what a replayer checks."""

    mutations: EncodedMutations
    #: ``(version, subsequence)`` of the first and the last record, in file order.
    first: tuple[int, int]
    last: tuple[int, int]
    #: Smallest and largest version of any record.
    min_version: int
    max_version: int
    #: Smallest and largest param1 (key, or clear-range begin).
    min_key: bytes
    max_key: bytes
    #: The mutation types present.
    kinds: frozenset[int]
    block: bytes
    what: str

    def records(self) -> list[LogMutation]:
        """The records one by one, as the reference decoder gives them."""
        return decode_partitioned_log_block(self.block, self.what)


def uniform_block(block: bytes, what: str) -> UniformBlock | None:
    """``block`` as a :class:`UniformBlock`, or ``None`` when its records do not all share one plain
    layout (or anything about it is unusual: the reference decoder then deals with it)."""
    pos = _HEADER.size
    end = len(block)
    if end < pos + _RECORD_HEAD + _MESSAGE_MIN or _HEADER.unpack_from(block)[0] != PARTITIONED_LOG_VERSION:
        return None
    if block[pos] == PAD:
        return None
    length = _U32_BE.unpack_from(block, pos + 12)[0]
    n1 = _U32_LE.unpack_from(block, pos + 17)[0]
    stride = _RECORD_HEAD + length
    if length < _MESSAGE_MIN or _MESSAGE_MIN + n1 > length or pos + stride > end:
        return None
    n2 = length - _MESSAGE_MIN - n1
    rows = np.frombuffer(block, np.uint8, count=(end - pos) // stride * stride, offset=pos).reshape(-1, stride)
    padded = np.flatnonzero(rows[:, 0] == PAD)  # a version's first byte is never 0xFF
    count = int(padded[0]) if len(padded) else len(rows)
    rows = rows[:count]
    if block[pos + count * stride :].count(PAD) != end - pos - count * stride:
        return None
    p1_at, p2_at = _RECORD_HEAD + 5, _RECORD_HEAD + _MESSAGE_MIN + n1
    if not (
        _same(rows, 12, 16)  # message length
        and _same(rows, 17, 21)  # param1 length
        and _same(rows, p2_at - 4, p2_at)  # param2 length
        and _U32_LE.unpack_from(block, pos + p2_at - 4)[0] == n2
    ):
        return None
    types = rows[:, _RECORD_HEAD]
    kinds = frozenset(int(t) for t in np.flatnonzero(np.bincount(types, minlength=256)))
    if max(kinds) >= MutationType.MAX_ATOMIC_OP:
        return None  # checksum flags or invalid types: the reference decoder verifies or names them
    if MutationType.CLEAR_RANGE in kinds and n2 == 0 and n1:
        return None  # compact single-key clears: the reference decoder expands them
    versions = np.ascontiguousarray(rows[:, :8]).view(">i8").ravel()
    subs = np.ascontiguousarray(rows[:, 8:12]).view(">u4").ravel()
    keys = rows[:, p1_at : p1_at + n1]
    min_key, max_key = _key_bounds(keys)
    mutations = EncodedMutations(
        count,
        types.tobytes(),
        _bin_column(keys),
        _bin_column(rows[:, p2_at : p2_at + n2]),
        count * (12 + n1 + n2),
    )
    return UniformBlock(
        mutations=mutations,
        first=(int(versions[0]), int(subs[0])),
        last=(int(versions[-1]), int(subs[-1])),
        min_version=int(versions.min()),
        max_version=int(versions.max()),
        min_key=min_key,
        max_key=max_key,
        kinds=kinds,
        block=block,
        what=what,
    )


def _same(rows: Matrix, begin: int, end: int) -> bool:
    """Every row holds the same bytes in ``[begin, end)``."""
    return bool((rows[:, begin:end] == rows[0, begin:end]).all())


def _key_bounds(keys: Matrix) -> tuple[bytes, bytes]:
    """The smallest and largest row of equal-length keys (numpy's fixed-width byte strings compare
    byte by byte, which for keys of one length is the keys' order)."""
    width = keys.shape[1]
    if width == 0:
        return b"", b""
    as_strings = np.ascontiguousarray(keys).view(f"S{width}").ravel()
    return keys[as_strings.argmin()].tobytes(), keys[as_strings.argmax()].tobytes()


def _bin_column(values: Matrix) -> bytes:
    """Each row as a msgpack ``bin``, concatenated."""
    head = np.frombuffer(bin_header(values.shape[1]), np.uint8)
    out = np.empty((values.shape[0], len(head) + values.shape[1]), np.uint8)
    out[:, : len(head)] = head
    out[:, len(head) :] = values
    return out.tobytes()
