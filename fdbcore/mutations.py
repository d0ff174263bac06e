"""FDB mutations: type codes (``MutationRef::Type``) and the mutation value type.

For a ``ClearRange`` mutation, ``param1`` is the begin key and ``param2`` the (exclusive) end key.
For every other type, ``param1`` is the key and ``param2`` the value or atomic-op operand.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class MutationType(IntEnum):
    SET_VALUE = 0
    CLEAR_RANGE = 1
    ADD_VALUE = 2
    DEBUG_KEY_RANGE = 3
    DEBUG_KEY = 4
    NO_OP = 5
    AND = 6
    OR = 7
    XOR = 8
    APPEND_IF_FITS = 9
    AVAILABLE_FOR_REUSE = 10
    RESERVED_FOR_LOG_PROTOCOL_MESSAGE = 11
    MAX = 12
    MIN = 13
    SET_VERSIONSTAMPED_KEY = 14
    SET_VERSIONSTAMPED_VALUE = 15
    BYTE_MIN = 16
    BYTE_MAX = 17
    MIN_V2 = 18
    AND_V2 = 19
    COMPARE_AND_CLEAR = 20
    RESERVED_FOR_SPAN_CONTEXT_MESSAGE = 21
    RESERVED_FOR_OTEL_SPAN_CONTEXT_MESSAGE = 22
    ENCRYPTED_OR_PARTITION_MAP = 23  # 7.4: Encrypted; 8.0: Reserved_For_PartitionMapMessage
    MAX_ATOMIC_OP = 24  # sentinel: valid types are < 24


#: Types whose effect depends on the current value (``ATOMIC_MASK`` in FDB).
ATOMIC_TYPES = frozenset(
    {
        MutationType.ADD_VALUE,
        MutationType.AND,
        MutationType.OR,
        MutationType.XOR,
        MutationType.APPEND_IF_FITS,
        MutationType.MAX,
        MutationType.MIN,
        MutationType.SET_VERSIONSTAMPED_KEY,
        MutationType.SET_VERSIONSTAMPED_VALUE,
        MutationType.BYTE_MIN,
        MutationType.BYTE_MAX,
        MutationType.MIN_V2,
        MutationType.AND_V2,
        MutationType.COMPARE_AND_CLEAR,
    }
)

#: The two ops whose key or value gets the commit's versionstamp; proxies turn them into ``SetValue``.
VERSIONSTAMP_TYPES = frozenset({MutationType.SET_VERSIONSTAMPED_KEY, MutationType.SET_VERSIONSTAMPED_VALUE})

#: Operation names as the ``embedded-cluster exec`` JSON and the driver API spell them.
OP_NAMES: dict[str, MutationType] = {
    "set": MutationType.SET_VALUE,
    # One key: ``["clear", key]`` means ``ClearRange(key, keyAfter(key))`` (see :func:`clear`).
    "clear": MutationType.CLEAR_RANGE,
    "clear_range": MutationType.CLEAR_RANGE,
    "add": MutationType.ADD_VALUE,
    "bit_and": MutationType.AND_V2,
    "bit_or": MutationType.OR,
    "bit_xor": MutationType.XOR,
    "append_if_fits": MutationType.APPEND_IF_FITS,
    "max": MutationType.MAX,
    "min": MutationType.MIN_V2,
    "byte_min": MutationType.BYTE_MIN,
    "byte_max": MutationType.BYTE_MAX,
    "compare_and_clear": MutationType.COMPARE_AND_CLEAR,
    "set_versionstamped_key": MutationType.SET_VERSIONSTAMPED_KEY,
    "set_versionstamped_value": MutationType.SET_VERSIONSTAMPED_VALUE,
}


class Mutation(NamedTuple):
    type: int
    param1: bytes
    param2: bytes

    def byte_size(self) -> int:
        """Bytes as FDB counts them in a mutation list: 12-byte header plus both params."""
        return 12 + len(self.param1) + len(self.param2)


def set_value(key: bytes, value: bytes) -> Mutation:
    return Mutation(MutationType.SET_VALUE, key, value)


def clear_range(begin: bytes, end: bytes) -> Mutation:
    return Mutation(MutationType.CLEAR_RANGE, begin, end)


def clear(key: bytes) -> Mutation:
    """A single-key clear, which FDB represents as ``ClearRange(key, keyAfter(key))``."""
    return Mutation(MutationType.CLEAR_RANGE, key, key + b"\x00")
